-- hosts
-- Coding hosts that run `claw-runner serve`. A host is added with a
-- one-time enrolment token (only its SHA-256 is kept); enrolling gives it
-- a key derived from the gateway's hosts secret and `key_salt`, so the
-- database holds nothing that signs. Revoked hosts stay, so their key is
-- never accepted again. Runs a host started name it.
CREATE TABLE hosts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT,
    token_expires_at INTEGER,
    key_salt TEXT,
    created_at INTEGER NOT NULL,
    enrolled_at INTEGER,
    revoked_at INTEGER,
    last_seen_at INTEGER,
    info TEXT
);
CREATE UNIQUE INDEX hosts_token ON hosts (token_hash) WHERE token_hash IS NOT NULL;
ALTER TABLE runs ADD COLUMN host_id TEXT REFERENCES hosts(id) ON DELETE SET NULL;
ALTER TABLE runs ADD COLUMN workspace TEXT;
