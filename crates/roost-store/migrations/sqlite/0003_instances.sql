-- Compute: images, instances, address leases on the default network, and the
-- per-instance metric samples the sampler records.

CREATE TABLE images (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    -- '' for builtin images every project sees (not NULL, so UNIQUE holds).
    project_id    TEXT NOT NULL,
    source        TEXT NOT NULL,
    description   TEXT,
    status        TEXT NOT NULL,
    status_reason TEXT,
    digest        TEXT,
    size_bytes    BIGINT,
    spec          TEXT,
    created_by    TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE instances (
    id             TEXT PRIMARY KEY,
    project_id     TEXT NOT NULL REFERENCES projects(id),
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL,
    image_id       TEXT NOT NULL REFERENCES images(id),
    cpus_milli     BIGINT NOT NULL,
    memory_bytes   BIGINT NOT NULL,
    command        TEXT,
    env            TEXT NOT NULL,
    labels         TEXT NOT NULL,
    restart_policy TEXT NOT NULL,
    desired        TEXT NOT NULL,
    status         TEXT NOT NULL,
    status_reason  TEXT,
    ip             TEXT,
    exit_code      BIGINT,
    restart_count  BIGINT NOT NULL DEFAULT 0,
    created_by     TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    started_at     BIGINT,
    UNIQUE (project_id, name)
);
CREATE INDEX instances_project_created ON instances (project_id, created_at, id);

CREATE TABLE ip_leases (
    network     TEXT NOT NULL,
    ip          TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (network, ip)
);
CREATE UNIQUE INDEX ip_leases_instance ON ip_leases (network, instance_id);

CREATE TABLE instance_samples (
    instance_id   TEXT NOT NULL,
    resolution    BIGINT NOT NULL,
    time          BIGINT NOT NULL,
    cpu_percent   DOUBLE PRECISION NOT NULL,
    memory_bytes  BIGINT NOT NULL,
    pids          BIGINT NOT NULL,
    net_rx_bytes  BIGINT NOT NULL,
    net_tx_bytes  BIGINT NOT NULL,
    PRIMARY KEY (instance_id, resolution, time)
);
