-- 0140 (issue 14, reports at scale): a leg carries its incident's type, channel and road area, so
-- that a year of legs is counted, filtered and grouped from the leg index alone instead of joining
-- 40,000 legs to as many wide incident rows (the join was half the time of a year's report).
-- Kept by triggers, never written by the application: set from the incident when a leg is
-- written or moved to another incident (a merge), and followed when the incident's type,
-- channel or road area change. tests/support/reports_pandas.py recomputes the figures from
-- incident itself, so a copy out of step would show as a difference.
ALTER TABLE dispatch_leg ADD COLUMN incident_type text, ADD COLUMN incident_channel text,
                         ADD COLUMN incident_road_area text;

UPDATE dispatch_leg l SET incident_type = i.type, incident_channel = i.channel, incident_road_area = i.road_area
FROM incident i WHERE i.id = l.incident_id;

CREATE FUNCTION dispatch_leg_incident_columns() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT i.type, i.channel, i.road_area INTO NEW.incident_type, NEW.incident_channel, NEW.incident_road_area
    FROM incident i WHERE i.id = NEW.incident_id;
    RETURN NEW;
END $$;
CREATE TRIGGER dispatch_leg_incident_columns BEFORE INSERT OR UPDATE OF incident_id ON dispatch_leg
    FOR EACH ROW EXECUTE FUNCTION dispatch_leg_incident_columns();

CREATE FUNCTION incident_leg_columns() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE dispatch_leg SET incident_type = NEW.type, incident_channel = NEW.channel,
                            incident_road_area = NEW.road_area
    WHERE incident_id = NEW.id;
    RETURN NULL;
END $$;
-- (any UPDATE: road_area also changes when a BEFORE trigger re-derives it from a moved geom)
CREATE TRIGGER incident_leg_columns AFTER UPDATE ON incident
    FOR EACH ROW WHEN ((OLD.type, OLD.channel, OLD.road_area) IS DISTINCT FROM (NEW.type, NEW.channel, NEW.road_area))
    EXECUTE FUNCTION incident_leg_columns();

-- the report index of 0102, with the three columns
DROP INDEX dispatch_leg_report_idx;
CREATE INDEX dispatch_leg_report_idx ON dispatch_leg (dispatched_at)
    INCLUDE (organisation_id, incident_id, status, role, outcome, first_dispatched_at, signed_off_at,
             arrived_at, first_feedback_at, closed_at, incident_type, incident_channel, incident_road_area);
