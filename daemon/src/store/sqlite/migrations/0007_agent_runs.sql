-- agent runs
-- A run may drive an agent (Claude Code) instead of a raw command: which
-- agent, its model and permission mode, the tools it may use without
-- asking, and the agent's own id of its session once it started. Commands
-- gain a kind: a shell command, a prompt for the agent, or an interrupt.
ALTER TABLE runs ADD COLUMN agent TEXT;
ALTER TABLE runs ADD COLUMN model TEXT;
ALTER TABLE runs ADD COLUMN permission_mode TEXT;
ALTER TABLE runs ADD COLUMN allowed_tools TEXT;
ALTER TABLE runs ADD COLUMN agent_session_id TEXT;
ALTER TABLE commands ADD COLUMN kind TEXT NOT NULL DEFAULT 'command';
