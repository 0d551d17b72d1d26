-- Capabilities an instance asked for on top of the default set (a JSON array of names
-- such as "NET_RAW"), checked against an allowlist when it is created.
ALTER TABLE instances ADD COLUMN capabilities_add TEXT NOT NULL DEFAULT '[]';
