-- 0101 (issue 14): indexes of the report queries.
--   * the incident columns the reports read with a leg (type, channel, road area, status), so a
--     year of legs joins a narrow index instead of the wide incident rows;
--   * the closed legs of an incident (incidents closed without dispatch: "has no closed leg").
-- (dispatch_leg (dispatched_at) and incident (reported_at) exist since 0030 and 0001.)
CREATE INDEX incident_report_idx ON incident (id) INCLUDE (type, channel, road_area, status, station_org_id,
                                                          traffic_org_id, grid_id, reported_at);
CREATE INDEX dispatch_leg_closed_incident_idx ON dispatch_leg (incident_id) WHERE status = 'closed';
