"""Bad input to the replay: a keyed 4xx naming the field, in both languages; and the posts roster."""

from __future__ import annotations

import pytest
from support.replay import PERIOD

from gisapp import replay
from gisapp.core import db
from gisapp.core.errors import GisappError, NotFound, ValidationError
from gisapp.core.i18n import MESSAGES
from gisapp.planning.proposals import propose_posts


def _err(fn, *args) -> GisappError:
    with pytest.raises(GisappError) as e:
        fn(*args)
    err = e.value
    assert err.key in MESSAGES, err.key
    assert err.message("zh") and err.message("en")
    return err


@pytest.mark.parametrize(("body", "field", "key", "status"), [
    ([], "scenario", "err.not_object", 400),
    ({"name": 5}, "scenario.name", "err.not_string", 400),
    ({"boundaries": "in_force"}, "scenario.boundaries", "err.not_object", 400),
    ({"boundaries": {"kind": "tomorrow"}}, "scenario.boundaries.kind", "err.one_of", 400),
    ({"boundaries": {"kind": "at", "date": "2024-13-01"}}, "scenario.boundaries.date", "err.replay.not_date", 400),
    ({"boundaries": {"kind": "at"}}, "scenario.boundaries.date", "err.required", 400),
    ({"boundaries": {"kind": "plan", "plan_id": "7"}}, "scenario.boundaries.plan_id", "err.not_id", 400),
    ({"boundaries": {"kind": "plan", "plan_id": 999999}}, "scenario.boundaries.plan_id", "err.replay.unknown_plan", 404),
    ({"participation": {"kind": "stations", "stations": "PS-1"}}, "scenario.participation.stations",
     "err.not_array", 400),
    ({"participation": {"kind": "stations", "stations": ["NO-SUCH"]}}, "scenario.participation.stations",
     "err.replay.unknown_org", 404),
    ({"roster": {"kind": "posts", "proposal_id": 999999}}, "scenario.roster.proposal_id",
     "err.replay.unknown_proposal", 404),
    ({"roster": {"kind": "recorded", "cars_scale": "2"}}, "scenario.roster.cars_scale", "err.not_number", 400),
    ({"roster": {"kind": "recorded", "cars_scale": 3.0}}, "scenario.roster.cars_scale", "err.range", 400),
    ({"roster": {"kind": "recorded", "cars_scale": True}}, "scenario.roster.cars_scale", "err.not_number", 400),
])
def test_a_bad_scenario_names_the_field(replay_world, body, field, key, status):
    with db.connect(replay_world["url"]) as conn:
        err = _err(replay.parse_scenario, conn, body)
    assert (err.field, err.key, err.status) == (field, key, status)


@pytest.mark.parametrize(("body", "field", "key", "status"), [
    ("2024", "period", "err.not_object", 400),
    ({"from": "2024-03-01"}, "period.to", "err.required", 400),
    ({"from": "2024-03-01", "to": "01/03/2024"}, "period.to", "err.replay.not_date", 400),
    ({"from": "2024-03-02", "to": "2024-03-01"}, "period.to", "err.replay.period_reversed", 400),
    ({"from": "2021-03-01", "to": "2024-03-01"}, "period.to", "err.replay.period_too_long", 400),
    ({"from": "1990-01-01", "to": "1990-12-31"}, "period", "err.replay.no_incidents", 422),
])
def test_a_bad_period_names_the_field(replay_world, body, field, key, status):
    with db.connect(replay_world["url"]) as conn:
        err = _err(replay.parse_period, conn, body)
    assert (err.field, err.key, err.status) == (field, key, status)


def test_a_period_of_three_years_less_a_day_is_accepted(replay_world):
    with db.connect(replay_world["url"]) as conn:
        start, end = replay.parse_period(conn, {"from": "2021-03-02", "to": "2024-03-01"})
    assert (end - start).days == 1096


def test_a_roster_without_units_is_refused(replay_world):
    with db.connect(replay_world["url"]) as conn:
        conn.execute("DELETE FROM unit")
        err = _err(replay.parse_scenario, conn, {"name": "empty"})
        conn.rollback()
    assert isinstance(err, ValidationError) and (err.field, err.key, err.status) == ("scenario.roster",
                                                                                   "err.replay.no_units", 422)


def test_different_periods_are_not_compared(replay_world):
    with db.connect(replay_world["url"]) as conn:
        sc = replay.parse_scenario(conn, {"name": "b"})
        a = replay.run(conn, replay_world["settings"], sc, *replay.parse_period(conn, PERIOD))
        # a period without the 13:00 accident: one incident less
        start, end = replay.parse_period(conn, PERIOD)
        b = replay.run(conn, replay_world["settings"], sc, start, end.replace(hour=12) - (end - start))
    err = _err(replay.compare, a, b)
    assert err.key == "err.replay.different_periods"


@pytest.mark.slow
def test_patrol_posts_of_a_proposal_are_where_the_cars_wait(demo_database_url, demo_settings):
    with db.connect(demo_database_url) as conn:
        zone = conn.execute("SELECT code FROM joint_zone WHERE valid_to IS NULL ORDER BY code LIMIT 1").fetchone()
        plan = propose_posts(conn, {"username": "t_planner", "role": "planner"}, {"zone_code": zone["code"], "cars": 2},
                             demo_settings)
        last = conn.execute("SELECT max(reported_at AT TIME ZONE 'Asia/Shanghai')::date AS d FROM incident").fetchone()
        period = {"from": last["d"].replace(day=1).isoformat(), "to": last["d"].isoformat()}
        start, end = replay.parse_period(conn, period)
        posts = replay.parse_scenario(conn, {"name": "posts", "roster": {"kind": "posts", "proposal_id": plan["id"]}})
        base = replay.run(conn, demo_settings, replay.parse_scenario(conn, {"name": "b"}), start, end)
        res = replay.run(conn, demo_settings, posts, start, end)
        # a plan of another kind is not a post proposal
        err = _err(replay.parse_scenario, conn, {"roster": {"kind": "posts", "proposal_id": 10 ** 9}})
        conn.rollback()
    assert isinstance(err, NotFound)
    assert posts.to_json()["roster"] == {"kind": "posts", "cars_scale": 1.0, "proposal_id": plan["id"]}
    c = replay.compare(base, res, n_boot=100)
    # the cars wait elsewhere: arrival times change, owners do not
    assert c["changed_owner"]["count"] == 0
    assert c["delta"]["mean_arrival_s"]["value"] != 0
