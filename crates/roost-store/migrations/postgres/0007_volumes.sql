-- Block storage: volumes (one attachment each), snapshots, backup policies, instance
-- snapshots and the clone lineage of instances.

CREATE TABLE volumes (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    name        TEXT NOT NULL,
    size_bytes  BIGINT NOT NULL,
    filesystem  TEXT NOT NULL,
    format      TEXT NOT NULL,
    -- The attachment: the instance, the path inside it, read-only or not.
    instance_id TEXT REFERENCES instances(id),
    mount_path  TEXT,
    read_only   BIGINT NOT NULL,
    cloned_from TEXT,
    created_by  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (project_id, name)
);
CREATE INDEX volumes_instance ON volumes (instance_id);

-- Snapshots outlive their volume (a clone source); volume_id is not a foreign key.
CREATE TABLE snapshots (
    id                   TEXT PRIMARY KEY,
    project_id           TEXT NOT NULL REFERENCES projects(id),
    name                 TEXT NOT NULL,
    volume_id            TEXT NOT NULL,
    size_bytes           BIGINT NOT NULL,
    description          TEXT,
    policy_id            TEXT,
    instance_snapshot_id TEXT,
    created_by           TEXT,
    created_at           BIGINT NOT NULL,
    UNIQUE (project_id, name)
);
CREATE INDEX snapshots_volume ON snapshots (volume_id, created_at);
CREATE INDEX snapshots_policy ON snapshots (policy_id, created_at);

CREATE TABLE backup_policies (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects(id),
    name         TEXT NOT NULL,
    volume_id    TEXT NOT NULL REFERENCES volumes(id),
    cron         TEXT NOT NULL,
    keep         BIGINT NOT NULL,
    last_run_at  BIGINT,
    last_result  TEXT,
    last_error   TEXT,
    next_run_at  BIGINT,
    created_by   TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE instance_snapshots (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects(id),
    name         TEXT NOT NULL,
    instance_id  TEXT NOT NULL,
    rootfs_bytes BIGINT NOT NULL,
    description  TEXT,
    created_by   TEXT,
    created_at   BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

-- Which instance an instance was cloned from (kept beside the instances table so its
-- columns stay as they are).
CREATE TABLE instance_lineage (
    instance_id TEXT PRIMARY KEY,
    cloned_from TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
