-- 0050: planning. Named drafts (plans) of station or traffic jurisdictions or joint war
-- zones, their areas (geometry that may be invalid while it is being edited: validation
-- reports it), patrol-car posts proposed for joint zones, and the time rules that make
-- published versions follow one another without overlap.

CREATE EXTENSION IF NOT EXISTS btree_gist;

-- Two versions of one organisation's jurisdiction of one kind (or of one joint zone code)
-- are never in force at the same time. Periods are half-open [valid_from, valid_to).
ALTER TABLE jurisdiction ADD CONSTRAINT jurisdiction_versions_do_not_overlap
    EXCLUDE USING gist (organisation_id WITH =, kind WITH =,
                        tstzrange(valid_from, valid_to, '[)') WITH &&);
ALTER TABLE joint_zone ADD CONSTRAINT joint_zone_versions_do_not_overlap
    EXCLUDE USING gist (code WITH =, tstzrange(valid_from, valid_to, '[)') WITH &&);

CREATE TABLE plan (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind            text NOT NULL CHECK (kind IN ('station', 'traffic', 'joint_zone')),
    status          text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'archived')),
    author          text NOT NULL,
    description     text NOT NULL DEFAULT '',
    -- how the draft was made: a copy of the published layout, a proposal, a rollback copy
    origin          text NOT NULL DEFAULT 'copy'
                    CHECK (origin IN ('copy', 'empty', 'voronoi', 'balanced', 'mclp', 'rollback')),
    parent_plan_id  bigint REFERENCES plan (id) ON DELETE SET NULL,
    based_on_at     timestamptz NOT NULL DEFAULT now(),  -- the published versions copied were in force then
    effective_from  timestamptz,                          -- set when published
    published_at    timestamptz,
    published_by    text,
    publish_reason  text,
    superseded_by   bigint REFERENCES plan (id) ON DELETE SET NULL,
    objective       jsonb NOT NULL DEFAULT '{}'::jsonb,   -- a proposal's stated objective and values
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (status <> 'published' OR (effective_from IS NOT NULL AND published_at IS NOT NULL))
);
CREATE INDEX plan_kind_status_idx ON plan (kind, status);

-- One area of a draft: an organisation's jurisdiction (station / traffic plans) or a joint
-- zone (joint_zone plans). The geometry has no validity check on purpose.
CREATE TABLE plan_area (
    id                 bigserial PRIMARY KEY,
    plan_id            bigint NOT NULL REFERENCES plan (id) ON DELETE CASCADE,
    organisation_id    bigint REFERENCES organisation (id) ON DELETE RESTRICT,
    zone_code          text,
    name               text,
    name_en            text,
    centre_org_id      bigint REFERENCES organisation (id) ON DELETE RESTRICT,
    member_ids         bigint[] NOT NULL DEFAULT '{}',
    geom               geometry(MultiPolygon, 4326),
    source_version_id  bigint,   -- the jurisdiction / joint_zone row it was copied from
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((organisation_id IS NULL) <> (zone_code IS NULL)),
    CHECK (zone_code IS NULL OR centre_org_id IS NOT NULL),
    UNIQUE (plan_id, organisation_id),
    UNIQUE (plan_id, zone_code)
);
CREATE INDEX plan_area_plan_idx ON plan_area (plan_id);
CREATE INDEX plan_area_geom_gix ON plan_area USING gist (geom);

-- Patrol-car posts of a joint-zone plan (MCLP proposals): by time-of-day period.
CREATE TABLE plan_post (
    id               bigserial PRIMARY KEY,
    plan_id          bigint NOT NULL REFERENCES plan (id) ON DELETE CASCADE,
    zone_code        text NOT NULL,
    period           text NOT NULL,          -- e.g. '06-12'
    start_hour       integer NOT NULL CHECK (start_hour BETWEEN 0 AND 23),
    end_hour         integer NOT NULL CHECK (end_hour BETWEEN 1 AND 24),
    rank             integer NOT NULL CHECK (rank >= 1),
    road_node_id     bigint,
    geom             geometry(Point, 4326) NOT NULL,
    covered_incidents integer NOT NULL DEFAULT 0,   -- newly covered by this post (greedy gain)
    UNIQUE (plan_id, zone_code, period, rank)
);
CREATE INDEX plan_post_plan_idx ON plan_post (plan_id);
CREATE INDEX plan_post_geom_gix ON plan_post USING gist (geom);

-- Grid ownership changes a published station plan makes, applied when it takes effect.
CREATE TABLE plan_grid_change (
    plan_id          bigint NOT NULL REFERENCES plan (id) ON DELETE CASCADE,
    grid_id          bigint NOT NULL REFERENCES grid (id) ON DELETE CASCADE,
    from_org_id      bigint REFERENCES organisation (id) ON DELETE SET NULL,
    to_org_id        bigint NOT NULL REFERENCES organisation (id) ON DELETE CASCADE,
    applied_at       timestamptz,
    PRIMARY KEY (plan_id, grid_id)
);

-- The organisation whose jurisdiction of a kind ('station' | 'traffic') contains a point
-- at a time, from the versions in force then (dispatch ownership, time travel).
CREATE FUNCTION jurisdiction_owner_at(p_kind text, p_geom geometry, p_at timestamptz)
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT j.organisation_id FROM jurisdiction j
    WHERE j.kind = p_kind AND j.valid_from <= p_at AND (j.valid_to IS NULL OR j.valid_to > p_at)
      AND ST_Intersects(j.geom, p_geom)
    ORDER BY j.organisation_id LIMIT 1
$$;

-- The joint zone (row id) containing a point at a time.
CREATE FUNCTION joint_zone_at(p_geom geometry, p_at timestamptz)
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT z.id FROM joint_zone z
    WHERE z.geom IS NOT NULL AND z.valid_from <= p_at AND (z.valid_to IS NULL OR z.valid_to > p_at)
      AND ST_Intersects(z.geom, p_geom)
    ORDER BY z.code LIMIT 1
$$;

INSERT INTO data_version (area) VALUES ('plans') ON CONFLICT DO NOTHING;
CREATE TRIGGER plan_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON plan
    FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version('plans');
CREATE TRIGGER plan_area_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON plan_area
    FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version('plans');

-- Make an edited area usable for set operations: valid, polygons only, without the parts
-- smaller than p_min_m2 (measured in the metric CRS p_srid); NULL when nothing is left.
CREATE FUNCTION plan_clean_area(p_geom geometry, p_srid integer, p_min_m2 double precision)
RETURNS geometry LANGUAGE sql IMMUTABLE AS $$
    SELECT ST_Multi(ST_Collect(d.geom ORDER BY d.path))
    FROM ST_Dump(ST_CollectionExtract(ST_MakeValid(p_geom), 3)) d
    WHERE ST_Area(ST_Transform(d.geom, p_srid)) >= p_min_m2
$$;

-- A geometry stored in WGS84 (straight edges in longitude/latitude) in the metric CRS, with
-- its edges first cut into pieces of at most 0.0005 degrees (about 50 m), so that long edges
-- keep their WGS84 shape: an edge straight in longitude/latitude bows by about a metre over
-- 10 km in Gauss-Krüger, which would otherwise show as false gaps and overlaps.
CREATE FUNCTION plan_metric(p_geom geometry, p_srid integer)
RETURNS geometry LANGUAGE sql IMMUTABLE AS $$
    SELECT ST_Transform(ST_Segmentize(p_geom, 0.0005), p_srid)
$$;
