-- The audit page and GET /api/v1/audit read the log newest first, by time range, actor or action.
CREATE INDEX IF NOT EXISTS audit_log_at_idx ON audit_log (at DESC, id DESC);
CREATE INDEX IF NOT EXISTS audit_log_actor_at_idx ON audit_log (actor, at DESC);
CREATE INDEX IF NOT EXISTS audit_log_action_at_idx ON audit_log (action, at DESC);
