-- Issue 12: server-side sessions (the cookie carries only a random token; its sha256 is the id)
-- and log-in attempts (throttling per account and per client address).

CREATE TABLE user_session (
    id            text PRIMARY KEY,              -- sha256 hex of the cookie's token
    user_id       bigint NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,          -- the absolute timeout
    client_address text,
    user_agent    text,
    ended_at      timestamptz,
    end_reason    text CHECK (end_reason IN ('logout', 'idle', 'expired', 'ended_by_admin', 'deactivated')),
    CHECK ((ended_at IS NULL) = (end_reason IS NULL))
);
CREATE INDEX user_session_user_idx ON user_session (user_id, created_at DESC);
CREATE INDEX user_session_open_idx ON user_session (user_id) WHERE ended_at IS NULL;

CREATE TABLE login_attempt (
    id             bigserial PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    username       text NOT NULL,
    client_address text,
    success        boolean NOT NULL
);
CREATE INDEX login_attempt_user_idx ON login_attempt (lower(username), at DESC);
CREATE INDEX login_attempt_address_idx ON login_attempt (client_address, at DESC);
