-- Object storage: buckets, their objects (data on disk, named by file_id, never by key),
-- multipart uploads in progress, and S3 access keys (secrets encrypted with the master key).

CREATE TABLE buckets (
    id          TEXT PRIMARY KEY,
    -- Globally unique, as in S3.
    name        TEXT NOT NULL UNIQUE,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    -- The bucket policy document as sent (NULL: none).
    policy      TEXT,
    -- 1 when the policy allows anonymous s3:GetObject.
    public_read BIGINT NOT NULL DEFAULT 0,
    -- CORS rules (JSON), lifecycle rules (JSON).
    cors        TEXT,
    lifecycle   TEXT,
    -- NULL: never versioned; 'Enabled' or 'Suspended'.
    versioning  TEXT,
    created_by  TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX buckets_project ON buckets (project_id);

CREATE TABLE objects (
    bucket_id    TEXT NOT NULL REFERENCES buckets(id) ON DELETE CASCADE,
    -- The S3 key (UTF-8, up to 1024 bytes); listed in byte order (the "C" collation;
    -- SQLite's default BINARY collation is byte order already).
    key          TEXT COLLATE "C" NOT NULL,
    file_id      TEXT NOT NULL,
    size         BIGINT NOT NULL,
    etag         TEXT NOT NULL,
    -- Content-Type, Cache-Control, Content-Disposition, Content-Encoding, Content-Language,
    -- user metadata: one JSON object.
    headers      TEXT,
    parts        BIGINT,
    modified_at  BIGINT NOT NULL,
    -- 'null' unless written while versioning was enabled.
    version_id   TEXT NOT NULL DEFAULT 'null',
    -- 1: the current version is a delete marker (file_id is '', size 0).
    delete_marker BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket_id, key)
);

-- Noncurrent versions (and delete markers) of versioned buckets; the current version of
-- each key is its row in objects.
CREATE TABLE object_versions (
    bucket_id     TEXT NOT NULL REFERENCES buckets(id) ON DELETE CASCADE,
    key           TEXT COLLATE "C" NOT NULL,
    version_id    TEXT NOT NULL,
    file_id       TEXT NOT NULL,
    size          BIGINT NOT NULL,
    etag          TEXT NOT NULL,
    headers       TEXT,
    parts         BIGINT,
    modified_at   BIGINT NOT NULL,
    delete_marker BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket_id, key, version_id)
);

CREATE TABLE multipart_uploads (
    id          TEXT PRIMARY KEY,
    bucket_id   TEXT NOT NULL REFERENCES buckets(id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    headers     TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX multipart_uploads_bucket ON multipart_uploads (bucket_id, key);

CREATE TABLE multipart_parts (
    upload_id    TEXT NOT NULL REFERENCES multipart_uploads(id) ON DELETE CASCADE,
    part_number  BIGINT NOT NULL,
    size         BIGINT NOT NULL,
    etag         TEXT NOT NULL,
    modified_at  BIGINT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);

CREATE TABLE s3_keys (
    -- The access key id.
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    description  TEXT,
    -- nonce || AES-256-GCM ciphertext of the secret, hex.
    secret_enc   TEXT NOT NULL,
    -- JSON array of bucket names; NULL or [] for all.
    buckets      TEXT,
    read_only    BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX s3_keys_user ON s3_keys (user_id);
