-- idempotency keys
-- The answer of each mutating human-API request that carried an
-- Idempotency-Key, per user, so that a retry gets the same answer and does
-- nothing again. A row without a status is a request still being answered.
CREATE TABLE idempotency_keys (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    status INTEGER,
    content_type TEXT,
    body BLOB,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX idx_idempotency_keys_created ON idempotency_keys(created_at);
