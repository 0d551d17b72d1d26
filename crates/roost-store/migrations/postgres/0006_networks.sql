-- VPC networks, instance NICs (the IPAM: one address per network, unique), peering,
-- security groups with their rules and members, and port forwards.

CREATE TABLE networks (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    name        TEXT NOT NULL,
    cidr        TEXT NOT NULL,
    gateway     TEXT NOT NULL,
    bridge      TEXT NOT NULL UNIQUE,
    nat         BIGINT NOT NULL,
    dns         BIGINT NOT NULL,
    is_default  BIGINT NOT NULL,
    created_by  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

-- One row per peering, the smaller id first.
CREATE TABLE network_peers (
    network_a   TEXT NOT NULL REFERENCES networks(id),
    network_b   TEXT NOT NULL REFERENCES networks(id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (network_a, network_b)
);

CREATE TABLE instance_nics (
    instance_id TEXT NOT NULL REFERENCES instances(id),
    network_id  TEXT NOT NULL REFERENCES networks(id),
    idx         BIGINT NOT NULL,
    ip          TEXT NOT NULL,
    mac         TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (instance_id, network_id),
    UNIQUE (network_id, ip),
    UNIQUE (instance_id, idx)
);

CREATE TABLE security_groups (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    name        TEXT NOT NULL,
    description TEXT,
    is_default  BIGINT NOT NULL,
    created_by  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE security_group_rules (
    id              TEXT PRIMARY KEY,
    group_id        TEXT NOT NULL REFERENCES security_groups(id),
    direction       TEXT NOT NULL,
    protocol        TEXT NOT NULL,
    ports           TEXT,
    cidr            TEXT,
    remote_group_id TEXT REFERENCES security_groups(id),
    description     TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX security_group_rules_group ON security_group_rules (group_id, created_at);

CREATE TABLE instance_security_groups (
    instance_id TEXT NOT NULL REFERENCES instances(id),
    group_id    TEXT NOT NULL REFERENCES security_groups(id),
    PRIMARY KEY (instance_id, group_id)
);

CREATE TABLE port_forwards (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL REFERENCES projects(id),
    instance_id   TEXT NOT NULL REFERENCES instances(id),
    host_port     BIGINT NOT NULL,
    instance_port BIGINT NOT NULL,
    protocol      TEXT NOT NULL,
    created_by    TEXT,
    created_at    BIGINT NOT NULL,
    UNIQUE (host_port, protocol)
);

-- Leases on the single default network are replaced by instance_nics; instances
-- get a NIC on their project's default network when they next start.
DROP TABLE ip_leases;
