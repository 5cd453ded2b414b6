-- 0110 (issue 15): a station's part in traffic management and a station-squadron merger
-- (交所合一) are versioned facts, like jurisdictions: a change closes the version in force
-- (valid_to) and inserts a new one; any instant's participation can be read back.
-- organisation.takes_part_in_traffic / merged stay as the version in force now (kept by
-- gisapp.dispatch.participation when a version is written).
CREATE TABLE organisation_participation (
    id                    bigserial PRIMARY KEY,
    organisation_id       bigint NOT NULL REFERENCES organisation (id) ON DELETE CASCADE,
    takes_part_in_traffic boolean NOT NULL,
    merged                boolean NOT NULL,
    valid_from            timestamptz NOT NULL,
    valid_to              timestamptz,
    note                  text,
    created_by            text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (valid_to IS NULL OR valid_to > valid_from),
    EXCLUDE USING gist (organisation_id WITH =, tstzrange(valid_from, valid_to, '[)') WITH &&)
);
CREATE INDEX organisation_participation_org_idx ON organisation_participation (organisation_id, valid_from);

-- What exists today has always been so, until a version says otherwise.
INSERT INTO organisation_participation (organisation_id, takes_part_in_traffic, merged, valid_from, note)
SELECT id, takes_part_in_traffic, merged, '1900-01-01 00:00+00', 'initial'
FROM organisation WHERE kind IN ('station', 'squadron');

-- An organisation written with its flags (the demo, the admin, a bench) keeps its history:
-- inserted, it has taken part so since ever; its flags changed, the version in force closes now
-- and a new one opens. Code that writes versions itself (a dated change, the demo's programme
-- history) sets gisapp.participation_sync = 'off' for its transaction.
CREATE FUNCTION organisation_participation_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('gisapp.participation_sync', true), '') = 'off'
       OR NEW.kind NOT IN ('station', 'squadron') THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO organisation_participation (organisation_id, takes_part_in_traffic, merged, valid_from, note)
        VALUES (NEW.id, NEW.takes_part_in_traffic, NEW.merged, '1900-01-01 00:00+00', 'initial');
    ELSIF (NEW.takes_part_in_traffic, NEW.merged) IS DISTINCT FROM (OLD.takes_part_in_traffic, OLD.merged)
          OR NOT EXISTS (SELECT 1 FROM organisation_participation WHERE organisation_id = NEW.id) THEN
        UPDATE organisation_participation SET valid_to = now()
         WHERE organisation_id = NEW.id AND valid_to IS NULL AND valid_from < now();
        DELETE FROM organisation_participation WHERE organisation_id = NEW.id AND valid_from >= now();
        INSERT INTO organisation_participation (organisation_id, takes_part_in_traffic, merged, valid_from, note)
        VALUES (NEW.id, NEW.takes_part_in_traffic, NEW.merged,
                CASE WHEN EXISTS (SELECT 1 FROM organisation_participation WHERE organisation_id = NEW.id)
                     THEN now() ELSE '1900-01-01 00:00+00' END, 'organisation updated');
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER organisation_participation_sync AFTER INSERT OR UPDATE OF takes_part_in_traffic, merged, kind
    ON organisation FOR EACH ROW EXECUTE FUNCTION organisation_participation_sync();
