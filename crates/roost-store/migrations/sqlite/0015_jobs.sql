-- Jobs: an operation whose work is a list of named steps, each with its undo
-- (roost-control's `jobs`). What a restart needs to resume or unwind one lives on the
-- operation's row: the parameters it was started with, the state its completed steps
-- produced (both JSON), the step it is at and whether it is undoing its steps.
-- Operations without steps leave these empty.
ALTER TABLE operations ADD COLUMN job_params TEXT;
ALTER TABLE operations ADD COLUMN job_state TEXT;
-- The step (0-based) running, or, while unwinding, the next one to undo; steps before it
-- have completed.
ALTER TABLE operations ADD COLUMN job_step BIGINT;
ALTER TABLE operations ADD COLUMN job_steps BIGINT;
ALTER TABLE operations ADD COLUMN job_step_name TEXT;
ALTER TABLE operations ADD COLUMN job_unwinding BIGINT NOT NULL DEFAULT 0;
CREATE INDEX operations_unfinished ON operations (status);
