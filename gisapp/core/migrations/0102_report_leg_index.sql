-- 0102 (issue 14): the legs of a period with every column the report figures read, so that a year of
-- legs is read from one narrow index (an index-only scan once vacuumed) instead of the wide leg rows.
CREATE INDEX dispatch_leg_report_idx ON dispatch_leg (dispatched_at)
    INCLUDE (organisation_id, incident_id, status, role, outcome, first_dispatched_at, signed_off_at,
             arrived_at, first_feedback_at, closed_at);
