-- Background jobs (issue 15): the queue of long work (replays) that runner processes claim with
-- SELECT ... FOR UPDATE SKIP LOCKED (gisapp.core.jobs). A job is written whole at its end: the
-- result and status 'done' in one statement, or 'failed' with its keyed reason; a runner's
-- heartbeat tells a live job from one whose runner died (the maintenance sweep fails those).
CREATE TABLE job (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind ~ '^[a-z_]{1,40}$'),
    params          jsonb NOT NULL DEFAULT '{}'::jsonb,
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    progress        double precision NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    message         text NOT NULL DEFAULT '',
    error_key       text,
    error           jsonb,            -- {"key", "field", "message_zh", "message_en"}
    result          jsonb,
    created_by      text NOT NULL,    -- username (as in audit_log.actor)
    organisation_id bigint REFERENCES organisation (id) ON DELETE SET NULL,
    runner          text,             -- host:pid of the runner that claimed it
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    heartbeat       timestamptz,
    CHECK ((status = 'done') = (result IS NOT NULL)),
    CHECK (status <> 'failed' OR error_key IS NOT NULL),
    CHECK ((status IN ('done', 'failed', 'cancelled')) = (finished_at IS NOT NULL))
);
CREATE INDEX job_queued_idx ON job (created_at, id) WHERE status = 'queued';
CREATE INDEX job_running_idx ON job (heartbeat) WHERE status = 'running';
CREATE INDEX job_kind_idx ON job (kind, created_at DESC);
