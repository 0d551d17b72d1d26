-- Responses of create requests sent with an Idempotency-Key, replayed for retries.
CREATE TABLE idempotency_keys (
    credential   TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       BIGINT,
    body         TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (credential, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
