-- 0010: indexes on foreign keys that reloading the demo (and ownership queries) walk.
-- Without them, deleting the previous demo's incidents checks every row by a sequential scan.
CREATE INDEX IF NOT EXISTS incident_duplicate_of_idx ON incident (duplicate_of) WHERE duplicate_of IS NOT NULL;
CREATE INDEX IF NOT EXISTS incident_traffic_idx ON incident (traffic_org_id, reported_at);
CREATE INDEX IF NOT EXISTS incident_grid_idx ON incident (grid_id);
CREATE INDEX IF NOT EXISTS incident_joint_zone_idx ON incident (joint_zone_id);
CREATE INDEX IF NOT EXISTS dispatch_leg_unit_idx ON dispatch_leg (unit_id);
CREATE INDEX IF NOT EXISTS dispatch_leg_fallback_idx ON dispatch_leg (fallback_from_org_id)
    WHERE fallback_from_org_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS grid_staff_org_idx ON grid_staff (organisation_id);
CREATE INDEX IF NOT EXISTS grid_jurisdiction_idx ON grid (jurisdiction_id);
CREATE INDEX IF NOT EXISTS incident_event_leg_idx ON incident_event (leg_id);
