-- Credentials made with an API token keep the token's limits (issue 18): a key made with
-- an expiring token ends with it, one made with a token restricted to a project reaches
-- only that project. S3 keys are limited to buckets by id, so a bucket deleted and made
-- again under the same name is not reachable with a key made for the old one.

ALTER TABLE s3_keys ADD COLUMN expires_at BIGINT;
ALTER TABLE s3_keys ADD COLUMN project_id TEXT;
-- JSON array of bucket ids the key is limited to; NULL: not limited. `buckets` keeps the
-- names the buckets had when the key was made, for display.
ALTER TABLE s3_keys ADD COLUMN bucket_ids TEXT;
-- Keys limited by name before: to the buckets that have those names now (none left: an
-- empty list, which reaches nothing).
UPDATE s3_keys SET bucket_ids = (
    SELECT json_group_array(b.id) FROM json_each(s3_keys.buckets) AS j JOIN buckets AS b ON b.name = j.value
) WHERE buckets IS NOT NULL AND buckets <> '[]';

ALTER TABLE sandbox_keys ADD COLUMN expires_at BIGINT;

ALTER TABLE ssh_keys ADD COLUMN project_id TEXT;
ALTER TABLE ssh_keys ADD COLUMN expires_at BIGINT;
