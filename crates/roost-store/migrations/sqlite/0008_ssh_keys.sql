-- SSH public keys a user keeps (the private half of a generated key is never stored),
-- and what an instance gets at its first boot.
CREATE TABLE ssh_keys (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (user_id, name)
);
CREATE TABLE instance_first_boot (
    instance_id TEXT PRIMARY KEY REFERENCES instances(id) ON DELETE CASCADE,
    ssh_keys    TEXT NOT NULL,
    user_data   TEXT,
    done_at     BIGINT
);
