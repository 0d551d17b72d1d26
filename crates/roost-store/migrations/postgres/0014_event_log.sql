-- The durable event log: every event a change raises is appended in the change's own
-- transaction, so the live stream, `Last-Event-ID` replay and (later) webhooks and other
-- servers read one ordered history. The head row hands out sequence numbers; updating
-- it first locks it until the commit, so events become visible in sequence order.

CREATE TABLE event_head (
    id  BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL
);
INSERT INTO event_head (id, seq) VALUES (1, 0);

CREATE TABLE event_log (
    seq           BIGINT PRIMARY KEY,
    time          BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    -- Who may see it: `admins`, `user:<id>` or `project:<id>`.
    audience      TEXT NOT NULL,
    data          TEXT
);
CREATE INDEX event_log_time ON event_log (time);
