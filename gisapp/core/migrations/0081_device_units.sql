-- 0081 (issue 12): devices are bound to their unit. A `device` account names its one unit
-- (app_user.unit_id, now required); a `gateway` account reports for an explicit list of units
-- (gateway_unit) and for no other.
INSERT INTO role (name, description) VALUES
    ('gateway', 'a gateway that reports positions for a listed set of units')
ON CONFLICT (name) DO NOTHING;

CREATE TABLE gateway_unit (
    user_id  bigint NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    unit_id  bigint NOT NULL REFERENCES unit (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, unit_id)
);
CREATE INDEX gateway_unit_unit_idx ON gateway_unit (unit_id);
