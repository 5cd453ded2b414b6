-- 0030: live dispatch. The live event table behind the SSE stream (ids handed out in commit
-- order, so a client resuming with Last-Event-ID replays exactly what it missed), and the
-- incident / leg columns the intake and the SLA sweeper need.

-- One counter row: taking the next id locks the row until the transaction ends, so ids are
-- contiguous (a rolled-back transaction gives its id back) and increase in commit order.
CREATE TABLE live_event_counter (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    last_id  bigint NOT NULL DEFAULT 0
);
INSERT INTO live_event_counter DEFAULT VALUES;

CREATE TABLE live_event (
    id           bigint PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    type         text NOT NULL,                 -- incident.created, leg.updated, unit.moved, ...
    incident_id  bigint,
    data         jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX live_event_at_idx ON live_event (at);

CREATE TRIGGER live_event_append_only BEFORE UPDATE ON live_event
    FOR EACH ROW WHEN (pg_trigger_depth() = 0) EXECUTE FUNCTION refuse_change();

-- Append an event and notify every listening worker. Call it as the last statement of a
-- transaction: it holds the counter row until commit.
CREATE FUNCTION live_emit(p_type text, p_data jsonb, p_incident_id bigint DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_at timestamptz;
    v_payload text;
BEGIN
    UPDATE live_event_counter SET last_id = last_id + 1 RETURNING last_id INTO v_id;
    v_at := clock_timestamp();  -- after the counter lock: the event's time is as close to commit as can be
    INSERT INTO live_event (id, at, type, incident_id, data) VALUES (v_id, v_at, p_type, p_incident_id, p_data);
    v_payload := json_build_object('id', v_id, 'type', p_type,
                                   'at', extract(epoch FROM v_at), 'data', p_data)::text;
    IF octet_length(v_payload) > 7900 THEN
        -- NOTIFY payloads are limited to 8000 bytes: listeners read the row instead.
        v_payload := json_build_object('id', v_id, 'type', p_type)::text;
    END IF;
    PERFORM pg_notify('gisapp_live', v_payload);
    RETURN v_id;
END $$;

-- Incident intake: the jurisdiction versions in force at reported_at, how the location was
-- found, possible duplicates, the idempotency request fingerprint.
ALTER TABLE incident
    ADD COLUMN station_jurisdiction_id bigint REFERENCES jurisdiction (id),
    ADD COLUMN traffic_jurisdiction_id bigint REFERENCES jurisdiction (id),
    ADD COLUMN location_source text NOT NULL DEFAULT 'point'
        CHECK (location_source IN ('point', 'village', 'road', 'road_intersection', 'town')),
    ADD COLUMN duplicate_candidates bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN idempotency_hash text,
    ADD COLUMN rule_version text;

-- Legs: cancellation time, and which SLA clocks already raised an overdue event.
ALTER TABLE dispatch_leg
    ADD COLUMN cancelled_at timestamptz,
    ADD COLUMN capability text,
    ADD COLUMN sla_flagged text[] NOT NULL DEFAULT '{}';

CREATE INDEX dispatch_leg_dispatched_idx ON dispatch_leg (dispatched_at);
CREATE INDEX incident_event_at_idx ON incident_event (at);
