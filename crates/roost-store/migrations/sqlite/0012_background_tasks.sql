-- Background tasks: one row per task name. The lease (holder, lease_expires_at) says
-- which server runs the task; a server takes it when it is free or expired and renews it
-- while it runs the task. The other columns are the last activation's status, so every
-- server can show it, and a run asked of a server that does not hold the lease
-- (wake_requested_at) reaches the holder.

CREATE TABLE background_tasks (
    name              TEXT PRIMARY KEY,
    description       TEXT NOT NULL,
    period_ms         BIGINT NOT NULL,
    holder            TEXT,
    lease_expires_at  BIGINT NOT NULL,
    wake_requested_at BIGINT,
    runs              BIGINT NOT NULL,
    last_server       TEXT,
    last_started_at   BIGINT,
    last_elapsed_ms   BIGINT,
    last_ok           BIGINT,
    last_details      TEXT,
    next_run_at       BIGINT
);
