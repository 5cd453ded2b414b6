-- 0001: the whole domain schema (names from the glossary in shared/domain/BRIEF.md).
-- Geometry is stored in EPSG:4326; every geometry column has a type, an SRID, a GiST
-- index and a validity check, so the database rejects bad geometry on its own too.

CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS pgrouting;

-- Provenance of every layer: what is real, what is synthetic, and where it came from.
CREATE TABLE dataset_meta (
    layer        text PRIMARY KEY,
    source       text NOT NULL,
    synthetic    boolean NOT NULL,
    licence      text,
    attribution  text,
    params       jsonb NOT NULL DEFAULT '{}'::jsonb,
    loaded_at    timestamptz NOT NULL DEFAULT now()
);

-- The county outline (real) and its towns / sub-districts (real names and codes).
CREATE TABLE county (
    id       bigserial PRIMARY KEY,
    adcode   text NOT NULL UNIQUE,
    name     text NOT NULL,
    name_en  text,
    geom     geometry(MultiPolygon, 4326) NOT NULL
             CHECK (ST_IsValid(geom) AND NOT ST_IsEmpty(geom))
);
CREATE INDEX county_geom_gix ON county USING gist (geom);

CREATE TABLE town (
    id        bigserial PRIMARY KEY,
    code      text NOT NULL UNIQUE,
    name      text NOT NULL,
    name_en   text,
    kind      text NOT NULL CHECK (kind IN ('subdistrict', 'town')),
    -- hand-placed approximation of the town seat: synthetic
    geom      geometry(Point, 4326) CHECK (geom IS NULL OR ST_IsValid(geom)),
    location_synthetic boolean NOT NULL DEFAULT true
);
CREATE INDEX town_geom_gix ON town USING gist (geom);

-- Organisations: stations, squadrons, the accident section, the command centre.
CREATE TABLE organisation (
    id        bigserial PRIMARY KEY,
    code      text NOT NULL UNIQUE,
    name      text NOT NULL,
    name_en   text,
    kind      text NOT NULL
              CHECK (kind IN ('station', 'squadron', 'accident_section', 'command_centre')),
    merged    boolean NOT NULL DEFAULT false,                 -- 交所合一
    takes_part_in_traffic boolean NOT NULL DEFAULT false,
    parent_id bigint REFERENCES organisation (id) ON DELETE SET NULL,
    town_code text REFERENCES town (code) ON DELETE SET NULL,
    phone     text,
    hq        geometry(Point, 4326) CHECK (hq IS NULL OR ST_IsValid(hq)),
    synthetic boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (parent_id IS NULL OR parent_id <> id),
    CHECK (NOT merged OR kind IN ('station', 'squadron'))
);
CREATE INDEX organisation_hq_gix ON organisation USING gist (hq);
CREATE INDEX organisation_kind_idx ON organisation (kind);

-- Jurisdictions are versioned: a change closes the version in force (valid_to) and
-- inserts a new one. Rows are never overwritten, so any date's boundaries can be shown.
CREATE TABLE jurisdiction (
    id              bigserial PRIMARY KEY,
    organisation_id bigint NOT NULL REFERENCES organisation (id) ON DELETE RESTRICT,
    kind            text NOT NULL CHECK (kind IN ('station', 'traffic')),
    version         integer NOT NULL CHECK (version >= 1),
    name            text,
    geom            geometry(MultiPolygon, 4326) NOT NULL
                    CHECK (ST_IsValid(geom) AND NOT ST_IsEmpty(geom)),
    valid_from      timestamptz NOT NULL DEFAULT now(),
    valid_to        timestamptz,
    author          text NOT NULL,
    reason          text NOT NULL,
    plan_id         bigint,           -- the published plan that produced this version, if any
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organisation_id, kind, version),
    CHECK (valid_to IS NULL OR valid_to >= valid_from)
);
CREATE INDEX jurisdiction_geom_gix ON jurisdiction USING gist (geom);
CREATE INDEX jurisdiction_current_idx ON jurisdiction (kind, organisation_id) WHERE valid_to IS NULL;
CREATE INDEX jurisdiction_period_idx ON jurisdiction (kind, valid_from, valid_to);

-- Joint war zones (联合战区): a centre station plus member organisations; versioned the same way.
CREATE TABLE joint_zone (
    id               bigserial PRIMARY KEY,
    code             text NOT NULL,
    name             text NOT NULL,
    name_en          text,
    centre_org_id    bigint NOT NULL REFERENCES organisation (id) ON DELETE RESTRICT,
    version          integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    geom             geometry(MultiPolygon, 4326)
                     CHECK (geom IS NULL OR (ST_IsValid(geom) AND NOT ST_IsEmpty(geom))),
    valid_from       timestamptz NOT NULL DEFAULT now(),
    valid_to         timestamptz,
    author           text NOT NULL DEFAULT 'system',
    reason           text NOT NULL DEFAULT 'initial',
    plan_id          bigint,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (code, version),
    CHECK (valid_to IS NULL OR valid_to >= valid_from)
);
CREATE INDEX joint_zone_geom_gix ON joint_zone USING gist (geom);

CREATE TABLE joint_zone_member (
    joint_zone_id   bigint NOT NULL REFERENCES joint_zone (id) ON DELETE CASCADE,
    organisation_id bigint NOT NULL REFERENCES organisation (id) ON DELETE RESTRICT,
    role            text NOT NULL DEFAULT 'member' CHECK (role IN ('centre', 'member')),
    PRIMARY KEY (joint_zone_id, organisation_id)
);

-- Patrol work grids (警格) inside a station's jurisdiction, with assigned staff.
CREATE TABLE grid (
    id              bigserial PRIMARY KEY,
    code            text NOT NULL UNIQUE,
    name            text NOT NULL,
    organisation_id bigint NOT NULL REFERENCES organisation (id) ON DELETE RESTRICT,
    jurisdiction_id bigint REFERENCES jurisdiction (id) ON DELETE SET NULL,
    geom            geometry(MultiPolygon, 4326) NOT NULL
                    CHECK (ST_IsValid(geom) AND NOT ST_IsEmpty(geom)),
    synthetic       boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX grid_geom_gix ON grid USING gist (geom);
CREATE INDEX grid_org_idx ON grid (organisation_id);

CREATE TABLE grid_staff (
    id              bigserial PRIMARY KEY,
    grid_id         bigint NOT NULL REFERENCES grid (id) ON DELETE CASCADE,
    person_name     text NOT NULL,
    role            text NOT NULL CHECK (role IN ('traffic_officer', 'station_officer', 'grid_worker')),
    organisation_id bigint REFERENCES organisation (id) ON DELETE SET NULL,
    phone_masked    text
);
CREATE INDEX grid_staff_grid_idx ON grid_staff (grid_id);

-- Road network. A row is one road segment between two nodes; oneway rows may only be
-- travelled from source to target. Lengths are metres measured in the metric CRS.
CREATE TABLE road_node (
    id      bigserial PRIMARY KEY,
    geom    geometry(Point, 4326) NOT NULL CHECK (ST_IsValid(geom)),
    osm_id  bigint
);
CREATE INDEX road_node_geom_gix ON road_node USING gist (geom);

CREATE TABLE road_edge (
    id          bigserial PRIMARY KEY,
    source      bigint NOT NULL REFERENCES road_node (id) ON DELETE RESTRICT,
    target      bigint NOT NULL REFERENCES road_node (id) ON DELETE RESTRICT,
    road_class  text NOT NULL CHECK (road_class IN
                ('expressway', 'national', 'provincial', 'county', 'township', 'village',
                 'ramp', 'urban', 'other')),
    name        text,
    speed_kmh   double precision CHECK (speed_kmh IS NULL OR (speed_kmh > 0 AND speed_kmh <= 200)),
    oneway      boolean NOT NULL DEFAULT false,
    bridge      boolean NOT NULL DEFAULT false,
    length_m    double precision NOT NULL CHECK (length_m >= 0),
    geom        geometry(LineString, 4326) NOT NULL CHECK (ST_IsValid(geom) AND NOT ST_IsEmpty(geom)),
    osm_way_id  bigint,
    synthetic   boolean NOT NULL DEFAULT true
);
CREATE INDEX road_edge_geom_gix ON road_edge USING gist (geom);
CREATE INDEX road_edge_source_idx ON road_edge (source);
CREATE INDEX road_edge_target_idx ON road_edge (target);
CREATE INDEX road_edge_class_idx ON road_edge (road_class);

-- A version stamp that changes whenever the road network changes (routing rebuilds on it).
CREATE TABLE road_network_version (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    version    bigint NOT NULL DEFAULT 1,
    changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO road_network_version DEFAULT VALUES;

CREATE FUNCTION bump_road_network_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE road_network_version SET version = version + 1, changed_at = now();
    RETURN NULL;
END $$;

CREATE TRIGGER road_edge_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON road_edge
    FOR EACH STATEMENT EXECUTE FUNCTION bump_road_network_version();

CREATE TABLE village (
    id          bigserial PRIMARY KEY,
    code        text NOT NULL UNIQUE,
    name        text NOT NULL,
    town_code   text REFERENCES town (code) ON DELETE SET NULL,
    population  integer NOT NULL DEFAULT 0 CHECK (population >= 0),
    geom        geometry(Point, 4326) NOT NULL CHECK (ST_IsValid(geom)),
    synthetic   boolean NOT NULL DEFAULT true
);
CREATE INDEX village_geom_gix ON village USING gist (geom);

-- Units (patrol cars, squadron cars and motorcycles, accident-section cars).
CREATE TABLE unit (
    id               bigserial PRIMARY KEY,
    code             text NOT NULL UNIQUE,          -- call sign
    name             text NOT NULL,
    organisation_id  bigint NOT NULL REFERENCES organisation (id) ON DELETE RESTRICT,
    kind             text NOT NULL CHECK (kind IN
                     ('patrol_car', 'traffic_car', 'motorcycle', 'accident_car', 'command_car')),
    capabilities     text[] NOT NULL DEFAULT '{}',
    status           text NOT NULL DEFAULT 'available' CHECK (status IN
                     ('available', 'assigned', 'en_route', 'on_scene', 'off_duty', 'out_of_service')),
    shift            text NOT NULL DEFAULT 'day' CHECK (shift IN ('day', 'night', 'all_day')),
    crew             integer NOT NULL DEFAULT 2 CHECK (crew BETWEEN 0 AND 20),
    last_position    geometry(Point, 4326) CHECK (last_position IS NULL OR ST_IsValid(last_position)),
    last_position_at timestamptz,
    current_leg_id   bigint,
    synthetic        boolean NOT NULL DEFAULT true,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX unit_position_gix ON unit USING gist (last_position);
CREATE INDEX unit_status_idx ON unit (status);

CREATE TABLE unit_position (
    id           bigserial PRIMARY KEY,
    unit_id      bigint NOT NULL REFERENCES unit (id) ON DELETE CASCADE,
    geom         geometry(Point, 4326) NOT NULL CHECK (ST_IsValid(geom)),
    reported_at  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    speed_kmh    double precision,
    heading_deg  double precision,
    UNIQUE (unit_id, reported_at)
);
CREATE INDEX unit_position_time_idx ON unit_position (unit_id, reported_at DESC);
CREATE INDEX unit_position_geom_gix ON unit_position USING gist (geom);

-- Incidents (警情) on the one 110 + 122 platform.
CREATE SEQUENCE incident_code_seq;
CREATE TABLE incident (
    id                bigserial PRIMARY KEY,
    code              text NOT NULL UNIQUE DEFAULT
                      ('JQ' || to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD')
                       || lpad(nextval('incident_code_seq')::text, 7, '0')),
    channel           text NOT NULL CHECK (channel IN ('110', '122')),
    type              text NOT NULL,
    severity          text NOT NULL DEFAULT 'none' CHECK (severity IN ('none', 'minor', 'injury', 'fatal')),
    geom              geometry(Point, 4326) NOT NULL CHECK (ST_IsValid(geom)),
    address           text,
    caller_masked     text,
    description       text,
    reported_at       timestamptz NOT NULL,
    status            text NOT NULL DEFAULT 'open' CHECK (status IN
                      ('open', 'dispatched', 'closed', 'merged', 'cancelled')),
    station_org_id    bigint REFERENCES organisation (id),
    traffic_org_id    bigint REFERENCES organisation (id),
    grid_id           bigint REFERENCES grid (id) ON DELETE SET NULL,
    joint_zone_id     bigint REFERENCES joint_zone (id) ON DELETE SET NULL,
    outside_county    boolean NOT NULL DEFAULT false,
    duplicate_of      bigint REFERENCES incident (id),
    idempotency_key   text UNIQUE,
    closed_at         timestamptz,
    synthetic         boolean NOT NULL DEFAULT false,
    created_by        text,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incident_geom_gix ON incident USING gist (geom);
CREATE INDEX incident_reported_idx ON incident (reported_at);
CREATE INDEX incident_status_idx ON incident (status) WHERE status IN ('open', 'dispatched');
CREATE INDEX incident_station_idx ON incident (station_org_id, reported_at);

-- Dispatch legs: one incident may go to two organisations at once (一警双派).
CREATE TABLE dispatch_leg (
    id                 bigserial PRIMARY KEY,
    incident_id        bigint NOT NULL REFERENCES incident (id) ON DELETE CASCADE,
    organisation_id    bigint NOT NULL REFERENCES organisation (id),
    unit_id            bigint REFERENCES unit (id) ON DELETE SET NULL,
    role               text NOT NULL CHECK (role IN ('primary', 'specialist')),
    status             text NOT NULL DEFAULT 'dispatched' CHECK (status IN
                       ('dispatched', 'signed_off', 'en_route', 'arrived', 'first_feedback', 'closed', 'cancelled')),
    dispatched_at      timestamptz NOT NULL DEFAULT now(),
    signed_off_at      timestamptz,
    en_route_at        timestamptz,
    arrived_at         timestamptz,
    first_feedback_at  timestamptz,
    closed_at          timestamptz,
    fallback_from_org_id bigint REFERENCES organisation (id),
    rule_version       text,
    CHECK (signed_off_at IS NULL OR signed_off_at >= dispatched_at),
    CHECK (closed_at IS NULL OR closed_at >= dispatched_at)
);
CREATE INDEX dispatch_leg_incident_idx ON dispatch_leg (incident_id);
CREATE INDEX dispatch_leg_org_idx ON dispatch_leg (organisation_id, dispatched_at);
CREATE INDEX dispatch_leg_open_idx ON dispatch_leg (status) WHERE status <> 'closed';

ALTER TABLE unit ADD CONSTRAINT unit_current_leg_fk
    FOREIGN KEY (current_leg_id) REFERENCES dispatch_leg (id) ON DELETE SET NULL;

-- The incident event log is append-only: updates and deletes are refused.
CREATE TABLE incident_event (
    id           bigserial PRIMARY KEY,
    incident_id  bigint NOT NULL REFERENCES incident (id) ON DELETE CASCADE,
    leg_id       bigint REFERENCES dispatch_leg (id) ON DELETE CASCADE,
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,
    client       text,
    kind         text NOT NULL,
    data         jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX incident_event_incident_idx ON incident_event (incident_id, id);

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER incident_event_append_only BEFORE UPDATE OR DELETE ON incident_event
    FOR EACH ROW WHEN (pg_trigger_depth() = 0) EXECUTE FUNCTION refuse_change();

-- One-window service points (一窗通办).
CREATE TABLE service_point (
    id              bigserial PRIMARY KEY,
    code            text NOT NULL UNIQUE,
    name            text NOT NULL,
    organisation_id bigint REFERENCES organisation (id) ON DELETE SET NULL,
    services        text[] NOT NULL DEFAULT '{}',
    opening_hours   text,
    geom            geometry(Point, 4326) NOT NULL CHECK (ST_IsValid(geom)),
    synthetic       boolean NOT NULL DEFAULT true
);
CREATE INDEX service_point_geom_gix ON service_point USING gist (geom);

-- Accounts, roles, API tokens, audit log.
CREATE TABLE role (
    name        text PRIMARY KEY,
    description text NOT NULL
);
INSERT INTO role (name, description) VALUES
    ('admin', 'administers users and every layer'),
    ('dispatcher', 'takes incidents, dispatches units, moves the lifecycle'),
    ('planner', 'drafts and publishes jurisdictions, joint zones and grids'),
    ('chief', 'station chief: views and manages the grids of one station'),
    ('viewer', 'reads maps and data'),
    ('device', 'a unit terminal that reports positions');

CREATE TABLE app_user (
    id            bigserial PRIMARY KEY,
    username      text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9_.-]{2,64}$'),
    display_name  text NOT NULL DEFAULT '',
    password_hash text NOT NULL,
    role          text NOT NULL REFERENCES role (name),
    station_id    bigint REFERENCES organisation (id) ON DELETE SET NULL,
    unit_id       bigint REFERENCES unit (id) ON DELETE SET NULL,
    language      text NOT NULL DEFAULT 'zh' CHECK (language IN ('zh', 'en')),
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (role <> 'chief' OR station_id IS NOT NULL)
);

CREATE TABLE api_token (
    id           bigserial PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    name         text NOT NULL,
    token_hash   text NOT NULL UNIQUE,     -- sha256 of the token; the token itself is shown once
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);

CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,
    action     text NOT NULL,
    entity     text NOT NULL,
    entity_id  text,
    client     text,
    detail     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_entity_idx ON audit_log (entity, entity_id);

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW WHEN (pg_trigger_depth() = 0) EXECUTE FUNCTION refuse_change();
