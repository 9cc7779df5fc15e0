-- approvals
-- An agent's request for a person's decision (a tool to use, questions to
-- answer, a plan to approve), made from its `approval_request` event: who
-- decided, how and when, and the command that carries the decision to the
-- runner. A run may set how long its requests wait.
ALTER TABLE runs ADD COLUMN approval_timeout_secs INTEGER;
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
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    decided_by TEXT,
    decided_at INTEGER,
    scope TEXT,
    message TEXT,
    answers TEXT,
    command_id TEXT,
    UNIQUE (run_id, request_id)
);
CREATE INDEX approvals_by_status ON approvals (status, created_at);
