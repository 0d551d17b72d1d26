-- Sandbox templates built from a base template plus setup commands. The template's name,
-- project, status, digest and size live on its image row (so sandboxes and instances
-- resolve it like any image); this row holds how it was built and its cache counters.

CREATE TABLE sandbox_templates (
    image_id     TEXT PRIMARY KEY REFERENCES images(id),
    project_id   TEXT NOT NULL REFERENCES projects(id),
    base         TEXT NOT NULL,
    base_digest  TEXT NOT NULL,
    cache_key    TEXT NOT NULL,
    commands     TEXT NOT NULL,
    build_log    TEXT NOT NULL,
    build_ms     BIGINT,
    hits         BIGINT NOT NULL,
    misses       BIGINT NOT NULL,
    last_used_at BIGINT,
    updated_at   BIGINT NOT NULL
);

CREATE INDEX sandbox_templates_cache ON sandbox_templates (project_id, cache_key);
