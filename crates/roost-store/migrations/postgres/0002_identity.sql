-- Identity and tenancy: projects, memberships, quotas, token project restriction,
-- operation ownership by project, and the audit archive's record.

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE project_members (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user ON project_members (user_id);

-- One row per limited resource; no row means unlimited.
CREATE TABLE project_quotas (
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    resource    TEXT NOT NULL,
    limit_value BIGINT NOT NULL,
    PRIMARY KEY (project_id, resource)
);

ALTER TABLE api_tokens ADD COLUMN project_id TEXT REFERENCES projects(id) ON DELETE CASCADE;
ALTER TABLE operations ADD COLUMN project_id TEXT;

-- Entries moved out of the store by retention: the chain continues from head_hash.
CREATE TABLE audit_archives (
    id         TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    path       TEXT NOT NULL,
    first_seq  BIGINT NOT NULL,
    last_seq   BIGINT NOT NULL,
    head_hash  TEXT NOT NULL
);

CREATE INDEX audit_log_time ON audit_log (time);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
