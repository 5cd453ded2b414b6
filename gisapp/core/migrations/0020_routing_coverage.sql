-- 0020 (routing): per-edge road length within its coverage target, for area summaries, and
-- the target that applied (main roads and rural roads have different targets).
ALTER TABLE road_coverage
    ADD COLUMN target_s double precision,                -- the edge's target (main or rural road)
    ADD COLUMN station_within_m double precision,        -- metres of the edge reached from stations within target
    ADD COLUMN unit_within_m double precision;           -- metres reached from available units within target
