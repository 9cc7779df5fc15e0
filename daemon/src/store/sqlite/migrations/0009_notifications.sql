-- notifications
-- Channels that tell people when a run needs them (a browser's push
-- subscription, an ntfy topic, a webhook), each a user's or global, and
-- the outbox: one row per notification and channel, written in the same
-- transaction as the change that causes it, delivered with retries, kept
-- as a dead letter when it cannot be. A run whose runner went silent is
-- reported once.
CREATE TABLE notify_channels (
    id TEXT PRIMARY KEY,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    target TEXT NOT NULL,
    secret TEXT,
    events TEXT NOT NULL,
    scope TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
ALTER TABLE runs ADD COLUMN runner_lost_at INTEGER;
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES notify_channels(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    run_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    done_at INTEGER
);
CREATE INDEX outbox_due ON outbox (status, next_at);
