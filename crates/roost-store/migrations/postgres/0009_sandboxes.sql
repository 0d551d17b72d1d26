-- Sandboxes: ephemeral instances with a TTL, driven through the E2B-compatible API with
-- keys of their own. A sandbox row outlives its instance (ended_at set) so usage per key
-- can be reported.

CREATE TABLE sandbox_keys (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    user_id     TEXT NOT NULL REFERENCES users(id),
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    max_sandboxes        BIGINT NOT NULL,
    creates_per_minute   BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE sandboxes (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects(id),
    key_id       TEXT REFERENCES sandbox_keys(id),
    instance_id  TEXT NOT NULL,
    template     TEXT NOT NULL,
    metadata     TEXT NOT NULL,
    cpus_milli   BIGINT NOT NULL,
    memory_bytes BIGINT NOT NULL,
    started_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    ended_at     BIGINT,
    commands     BIGINT NOT NULL
);

CREATE INDEX sandboxes_key ON sandboxes (key_id, started_at);
CREATE INDEX sandboxes_live ON sandboxes (ended_at, expires_at);
