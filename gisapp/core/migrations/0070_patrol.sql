-- 0070 (patrol coverage): which road segments the units drove along, per local day, from their
-- position reports (routing.patrol.ingest matches reports to the nearest segment). Station
-- chiefs see which roads of their grids were patrolled in the last days, and which were not.
CREATE TABLE patrol_edge_day (
    edge_id  bigint NOT NULL REFERENCES road_edge (id) ON DELETE CASCADE,
    day      date NOT NULL,                 -- local date (Asia/Shanghai) of the reports
    hits     integer NOT NULL CHECK (hits > 0),
    last_at  timestamptz NOT NULL,
    PRIMARY KEY (edge_id, day)
);
CREATE INDEX patrol_edge_day_day_idx ON patrol_edge_day (day);

-- The last unit_position id taken into patrol_edge_day (one row; none: start from the beginning).
CREATE TABLE patrol_watermark (
    singleton         boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_position_id  bigint NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
