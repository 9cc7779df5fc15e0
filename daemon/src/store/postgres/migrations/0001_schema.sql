-- schema: SQLite's tables after its migration 0010
-- The same tables and columns as SQLite's schema after its migrations
-- 0001-0010, in PostgreSQL's types: times are BIGINT Unix milliseconds
-- (nonces: their signed Unix seconds), ids TEXT, JSON kept as the TEXT it
-- arrived as (nothing queries inside it). Event and audit ids come from
-- identity columns. Only SQLite's history is left out: nonces_legacy, the
-- old nonce table, was never written by this schema. Two additions for
-- instances writing at once: the audit chain's head (audit_head), locked
-- by each append, and login failures counted in the database
-- (login_failures).

CREATE TABLE hosts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_hash TEXT,
    token_expires_at BIGINT,
    key_salt TEXT,
    created_at BIGINT NOT NULL,
    enrolled_at BIGINT,
    revoked_at BIGINT,
    last_seen_at BIGINT,
    info TEXT
);
CREATE UNIQUE INDEX hosts_token ON hosts (token_hash) WHERE token_hash IS NOT NULL;

CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL DEFAULT 'pending',
    command TEXT,
    metadata TEXT,
    capability_token_hash TEXT NOT NULL,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    exit_code BIGINT,
    stop_requested_at BIGINT,
    agent TEXT,
    model TEXT,
    permission_mode TEXT,
    allowed_tools TEXT,
    agent_session_id TEXT,
    approval_timeout_secs BIGINT,
    runner_lost_at BIGINT,
    host_id TEXT REFERENCES hosts(id) ON DELETE SET NULL,
    workspace TEXT
);
CREATE INDEX idx_runs_created ON runs (created_at);
CREATE INDEX idx_runs_status ON runs (status, created_at);

CREATE TABLE events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    timestamp BIGINT NOT NULL,
    sequence BIGINT NOT NULL
);
-- One event per (run, sequence), whichever instance stores it.
CREATE UNIQUE INDEX idx_events_run_sequence ON events (run_id, sequence);

CREATE TABLE commands (
    id TEXT PRIMARY KEY,
    -- Commands of a run in the order they were queued (SQLite's rowid).
    queued BIGINT GENERATED ALWAYS AS IDENTITY,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    command TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    result TEXT,
    error TEXT,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    completed_at BIGINT,
    kind TEXT NOT NULL DEFAULT 'command'
);
CREATE INDEX idx_commands_run ON commands (run_id, status, created_at);

CREATE TABLE artifacts (
    id TEXT PRIMARY KEY,
    added BIGINT GENERATED ALWAYS AS IDENTITY,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    filename TEXT NOT NULL,
    path TEXT NOT NULL,
    size BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX idx_artifacts_run ON artifacts (run_id);

-- A replay repeats the signed timestamp as well as the nonce; keyed by
-- time, expiry is a range delete.
CREATE TABLE nonces (
    timestamp BIGINT NOT NULL,
    nonce TEXT NOT NULL,
    PRIMARY KEY (timestamp, nonce)
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    totp_secret TEXT,
    created_at BIGINT NOT NULL,
    totp_pending_secret TEXT,
    totp_last_step BIGINT
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ip TEXT
);
CREATE INDEX idx_sessions_user ON sessions (user_id);

CREATE TABLE audit_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    timestamp BIGINT NOT NULL,
    user_id TEXT,
    action TEXT NOT NULL,
    target TEXT,
    details TEXT,
    ip TEXT,
    username TEXT,
    prev_hash TEXT NOT NULL DEFAULT '',
    hash TEXT NOT NULL DEFAULT ''
);
-- The chain's last hash, one row: an append locks it (FOR UPDATE), so
-- appends from every instance are serialised and each links to the one
-- committed before it.
CREATE TABLE audit_head (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    last_id BIGINT NOT NULL DEFAULT 0,
    hash TEXT NOT NULL DEFAULT ''
);
INSERT INTO audit_head DEFAULT VALUES;

-- Failed logins, by client address and by user name, so that the limit
-- holds over every instance.
CREATE TABLE login_failures (
    key TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX login_failures_key ON login_failures (key, at);

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE idempotency_keys (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    status INTEGER,
    content_type TEXT,
    body BYTEA,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idx_idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    request_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    tool TEXT NOT NULL,
    input TEXT NOT NULL,
    summary TEXT NOT NULL,
    diff TEXT,
    reason TEXT,
    suggestions TEXT,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    decided_by TEXT,
    decided_at BIGINT,
    scope TEXT,
    message TEXT,
    answers TEXT,
    command_id TEXT,
    UNIQUE (run_id, request_id)
);
CREATE INDEX approvals_by_status ON approvals (status, created_at);

CREATE TABLE notify_channels (
    id TEXT PRIMARY KEY,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    target TEXT NOT NULL,
    secret TEXT,
    events TEXT NOT NULL,
    scope TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES notify_channels(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    run_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    done_at BIGINT
);
CREATE INDEX outbox_due ON outbox (status, next_at);
