-- 0090 (issue 13): every leg worked by the people who own it.
--   * role duty_officer: bound to one organisation (app_user.station_id), like a chief;
--   * a leg's outcome (a code of the rules file's list) and closing note, its first-feedback note;
--   * hand-back: a leg goes back to the dispatcher (status handed_back, terminal, with the
--     reason); the incident is flagged as needing an owner until it is re-dispatched; the new
--     leg keeps the first dispatch of its role as the start of its feedback and closure clocks;
--   * a leg's unit requirements beyond a capability (unit kinds, minimum crew);
--   * an incident's outcome (closed without dispatch, or its primary leg's).
INSERT INTO role (name, description) VALUES
    ('duty_officer', 'duty officer of one organisation: works the legs of that organisation at its desk')
ON CONFLICT (name) DO NOTHING;

DO $$
DECLARE c record;
BEGIN
    FOR c IN SELECT conname FROM pg_constraint
             WHERE conrelid = 'app_user'::regclass AND contype = 'c'
               AND pg_get_constraintdef(oid) LIKE '%chief%' LOOP
        EXECUTE format('ALTER TABLE app_user DROP CONSTRAINT %I', c.conname);
    END LOOP;
END $$;
ALTER TABLE app_user ADD CONSTRAINT app_user_bound_role_check
    CHECK (role NOT IN ('chief', 'duty_officer') OR station_id IS NOT NULL);

ALTER TABLE dispatch_leg DROP CONSTRAINT IF EXISTS dispatch_leg_status_check;
ALTER TABLE dispatch_leg ADD CONSTRAINT dispatch_leg_status_check CHECK (status IN
    ('dispatched', 'signed_off', 'en_route', 'arrived', 'first_feedback', 'closed', 'cancelled', 'handed_back'));

ALTER TABLE dispatch_leg
    ADD COLUMN outcome text,
    ADD COLUMN outcome_note text,
    ADD COLUMN first_feedback_note text,
    ADD COLUMN handed_back_at timestamptz,
    ADD COLUMN hand_back_reason text,
    -- the first dispatch of this role for the incident: the feedback and closure clocks run from it
    ADD COLUMN first_dispatched_at timestamptz,
    ADD COLUMN redispatch_of bigint REFERENCES dispatch_leg (id),
    ADD COLUMN unit_kinds text[],
    ADD COLUMN min_crew integer CHECK (min_crew IS NULL OR min_crew BETWEEN 1 AND 20),
    ADD CONSTRAINT dispatch_leg_closed_outcome_check CHECK (outcome IS NULL OR status = 'closed'),
    ADD CONSTRAINT dispatch_leg_handed_back_check CHECK ((status = 'handed_back') = (handed_back_at IS NOT NULL));

ALTER TABLE incident
    ADD COLUMN outcome text,
    ADD COLUMN outcome_note text,
    ADD COLUMN needs_owner boolean NOT NULL DEFAULT false,
    ADD COLUMN needs_owner_reason text;

CREATE INDEX dispatch_leg_org_id_idx ON dispatch_leg (organisation_id, id DESC);
