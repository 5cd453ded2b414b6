-- 0060 (routing, issue 4): a row version on every unit, so a process can keep the units in
-- memory and check them with one cheap aggregate instead of reading them per query.
-- Every insert or update takes a new number from a sequence (a new number even for a second
-- update of the same row in one transaction); the XOR of their hashes over the table changes
-- with any committed change a reader can see, and is consistent with the rows read in the same
-- statement. No row is shared by writers, so concurrent position reports do not queue on it.
CREATE SEQUENCE unit_row_version_seq;
ALTER TABLE unit ADD COLUMN row_version bigint NOT NULL DEFAULT nextval('unit_row_version_seq');

CREATE FUNCTION unit_bump_row_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.row_version := nextval('unit_row_version_seq');
    RETURN NEW;
END $$;

CREATE TRIGGER unit_row_version BEFORE UPDATE ON unit
    FOR EACH ROW EXECUTE FUNCTION unit_bump_row_version();

-- The state of the live coverage in road_coverage: which unit set and road network it was
-- computed from (routing.coverage.refresh_live_if_stale compares them with the current ones).
CREATE TABLE live_coverage_state (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    road_version  bigint NOT NULL,
    unit_count    bigint NOT NULL,
    unit_hash     bigint NOT NULL,
    computed_at   timestamptz NOT NULL DEFAULT now()
);

-- Rows of road_coverage removed (a new network, a reload): the live coverage must be recomputed.
CREATE FUNCTION forget_live_coverage_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM live_coverage_state;
    RETURN NULL;
END $$;

CREATE TRIGGER road_coverage_forget_live AFTER DELETE OR TRUNCATE ON road_coverage
    FOR EACH STATEMENT EXECUTE FUNCTION forget_live_coverage_state();
