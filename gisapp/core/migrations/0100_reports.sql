-- 0100 (issue 14): reports.
--   * role leadership: the command centre and the bureau's leadership read every organisation's
--     figures (reports, maps, dispatch board) and write nothing;
--   * incident.road_area: 'urban' when the road segment nearest to the incident is an urban
--     street (the city's and the town seats' street lattices, road_class 'urban'), 'rural'
--     otherwise; NULL when there is no road at all. Decided when the incident is written (or
--     moved), from the road network then in force; the reports' arrivals urban against rural;
--   * indexes of the report queries (legs by dispatch time with the columns the figures read).
INSERT INTO role (name, description) VALUES
    ('leadership', 'command centre and bureau leadership: reads every organisation''s reports, writes nothing')
ON CONFLICT (name) DO NOTHING;

ALTER TABLE incident ADD COLUMN road_area text CHECK (road_area IN ('urban', 'rural'));

CREATE FUNCTION incident_road_area(p geometry) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN e.road_class = 'urban' THEN 'urban' ELSE 'rural' END
    FROM road_edge e ORDER BY e.geom <-> p LIMIT 1
$$;

CREATE FUNCTION incident_set_road_area() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.geom IS DISTINCT FROM OLD.geom OR NEW.road_area IS NULL THEN
        NEW.road_area := incident_road_area(NEW.geom);
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER incident_road_area BEFORE INSERT OR UPDATE OF geom ON incident
    FOR EACH ROW EXECUTE FUNCTION incident_set_road_area();

UPDATE incident SET road_area = incident_road_area(geom);
