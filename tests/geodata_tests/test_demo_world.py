"""The generated Zouping demo world: counts, tiling, reachability, rhythm, dispatch rules, SLA rates."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order
from support.database import TEST_DB, copy_database

from geodata.demo import load_params
from gisapp.core import db

PARAMS = load_params()


@pytest.fixture(scope="module")
def demo_conn(server_url, demo_template):
    """The demo exactly as the loader wrote it: a copy of its template of its own, since the
    live tests on the shared demo database add incidents (outside the county, closed without
    dispatch, ...) that these checks of the generator are not about."""
    url = copy_database(server_url, demo_template, TEST_DB + "_demo_pristine")
    with db.connect(url, autocommit=True) as c:
        yield c


def one(conn, q, args=None):
    return conn.execute(q, args or []).fetchone()


def test_counts_match_the_brief(demo_conn):
    c = demo_conn
    assert one(c, "SELECT count(*) AS n FROM village")["n"] == 858
    assert one(c, "SELECT count(*) AS n FROM organisation WHERE kind = 'station'")["n"] == 17
    assert one(c, "SELECT count(*) AS n FROM organisation WHERE kind = 'station' AND takes_part_in_traffic")["n"] == 14
    assert 5 <= one(c, "SELECT count(*) AS n FROM organisation WHERE kind = 'squadron'")["n"] <= 7
    merged = {r["name"] for r in c.execute("SELECT name FROM organisation WHERE kind = 'station' AND merged")}
    assert merged == {"魏桥派出所", "韩店派出所", "好生派出所", "经济开发区派出所"}
    grids = one(c, "SELECT count(*) AS n FROM grid")["n"]
    assert 250 <= grids <= 400
    directed = one(c, "SELECT sum(CASE WHEN oneway THEN 1 ELSE 2 END) AS n FROM road_edge")["n"]
    assert 25_000 <= directed <= 60_000
    units = one(c, "SELECT count(*) AS n FROM unit")["n"]
    assert 100 <= units <= 140
    # the demo year (the last 365 days) holds the brief's yearly volume
    year = "reported_at > (SELECT max(reported_at) FROM incident) - interval '365 days'"
    ch = {r["channel"]: r["n"] for r in c.execute(
        f"SELECT channel, count(*) AS n FROM incident WHERE {year} GROUP BY channel")}
    assert abs(ch["110"] - 30_000) <= 1_500
    acc = one(c, f"SELECT count(*) AS n FROM incident WHERE type = 'traffic_accident' AND {year}")["n"]
    assert abs(acc - 9_000) <= 500
    assert one(c, "SELECT count(*) AS n FROM service_point")["n"] == 17
    # every station has a service point and a current station jurisdiction
    assert one(c, "SELECT count(*) AS n FROM organisation o WHERE kind = 'station' AND NOT EXISTS "
                  "(SELECT 1 FROM jurisdiction j WHERE j.organisation_id = o.id AND j.kind = 'station' "
                  "AND j.valid_to IS NULL)")["n"] == 0


def test_county_organisations_sit_at_the_county_seat(demo_conn):
    for kind in ("accident_section", "command_centre"):
        r = one(demo_conn, "SELECT ST_Distance(hq::geography, ST_MakePoint(117.73, 36.88)::geography) AS d "
                           "FROM organisation WHERE kind = %s", [kind])
        assert r["d"] < 1500, kind


def test_joint_zones_have_their_centres_and_members(demo_conn):
    rows = demo_conn.execute(
        "SELECT z.code, o.name AS centre, (SELECT count(*) FROM joint_zone_member m WHERE m.joint_zone_id = z.id) AS n,"
        " (SELECT count(*) FROM joint_zone_member m JOIN organisation x ON x.id = m.organisation_id "
        "  WHERE m.joint_zone_id = z.id AND x.kind = 'squadron') AS squadrons "
        "FROM joint_zone z JOIN organisation o ON o.id = z.centre_org_id WHERE z.valid_to IS NULL").fetchall()
    assert {r["centre"] for r in rows} == {"魏桥派出所", "青阳派出所", "长山派出所", "好生派出所", "韩店派出所"}
    for r in rows:
        assert r["n"] >= 3 and r["squadrons"] >= 1, r
    # every station is in exactly one zone
    n = one(demo_conn, "SELECT count(*) AS n FROM organisation o WHERE kind = 'station' AND "
                       "(SELECT count(*) FROM joint_zone_member m WHERE m.organisation_id = o.id) <> 1")["n"]
    assert n == 0


@pytest.mark.parametrize("kind", ["station", "traffic"])
def test_jurisdictions_tile_the_county(demo_conn, kind):
    r = one(demo_conn,
            "SELECT ST_Area(ST_Transform((SELECT geom FROM county), 4548)) AS county, "
            "ST_Area(ST_Transform(ST_Union(geom), 4548)) AS union_area, "
            "ST_Area(ST_SymDifference(ST_Transform(ST_Union(geom), 4548), "
            "ST_Transform((SELECT geom FROM county), 4548))) AS diff "
            "FROM jurisdiction WHERE kind = %s AND valid_to IS NULL", [kind])
    assert r["diff"] <= 0.001 * r["county"]
    assert abs(r["union_area"] - r["county"]) <= 0.001 * r["county"]
    ov = demo_conn.execute(
        "SELECT a.id AS a, b.id AS b, ST_Area(ST_Intersection(ST_Transform(a.geom, 4548), ST_Transform(b.geom, 4548)))"
        " AS m2 FROM jurisdiction a JOIN jurisdiction b ON a.id < b.id AND ST_Intersects(a.geom, b.geom) "
        "WHERE a.kind = %s AND b.kind = %s AND a.valid_to IS NULL AND b.valid_to IS NULL", [kind, kind]).fetchall()
    assert ov, "neighbouring jurisdictions must touch"
    worst = max(r["m2"] for r in ov)
    assert worst < 1.0, worst


def test_grids_subdivide_their_station_jurisdiction(demo_conn):
    bad = demo_conn.execute(
        "SELECT g.code FROM grid g JOIN jurisdiction j ON j.id = g.jurisdiction_id "
        "WHERE j.organisation_id <> g.organisation_id OR "
        "ST_Area(ST_Difference(ST_Transform(g.geom, 4548), ST_Transform(j.geom, 4548))) > 1").fetchall()
    assert bad == []
    staff = demo_conn.execute(
        "SELECT g.code, array_agg(DISTINCT s.role) AS roles FROM grid g JOIN grid_staff s ON s.grid_id = g.id "
        "GROUP BY g.code").fetchall()
    assert len(staff) == one(demo_conn, "SELECT count(*) AS n FROM grid")["n"]
    assert all(set(r["roles"]) == {"traffic_officer", "station_officer", "grid_worker"} for r in staff)


def _graph(conn):
    e = conn.execute("SELECT source, target, oneway FROM road_edge").fetchall()
    n = conn.execute("SELECT max(id) AS n FROM road_node").fetchone()["n"] + 1
    s = np.array([r["source"] for r in e])
    t = np.array([r["target"] for r in e])
    two = ~np.array([r["oneway"] for r in e])
    rows = np.concatenate([s, t[two]])
    cols = np.concatenate([t, s[two]])
    return csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))


def test_every_village_is_reachable_from_every_station_and_back(demo_conn):
    g = _graph(demo_conn)
    village_nodes = [r["id"] for r in demo_conn.execute(
        "SELECT (SELECT n.id FROM road_node n ORDER BY n.geom <-> v.geom LIMIT 1) AS id FROM village v")]
    d = demo_conn.execute(
        "SELECT max((SELECT ST_Distance(n.geom::geography, v.geom::geography) FROM road_node n "
        "ORDER BY n.geom <-> v.geom LIMIT 1)) AS d FROM village v").fetchone()["d"]
    assert d < 1.0  # each village centre is a road junction
    station_nodes = [r["id"] for r in demo_conn.execute(
        "SELECT (SELECT n.id FROM road_node n ORDER BY n.geom <-> o.hq LIMIT 1) AS id FROM organisation o "
        "WHERE kind = 'station'")]
    gt = g.T.tocsr()
    for s in station_nodes:
        fwd = set(breadth_first_order(g, s, directed=True, return_predecessors=False).tolist())
        back = set(breadth_first_order(gt, s, directed=True, return_predecessors=False).tolist())
        assert set(village_nodes) <= fwd
        assert set(village_nodes) <= back


def test_road_hierarchy_speeds_and_expressway_access(demo_conn):
    from gisapp.core.config import Settings

    speeds = Settings().road_speed_kmh
    for r in demo_conn.execute("SELECT road_class, min(speed_kmh) AS lo, max(speed_kmh) AS hi, count(*) AS n "
                               "FROM road_edge GROUP BY road_class"):
        assert r["lo"] == r["hi"] == speeds[r["road_class"]]
    classes = {r["road_class"] for r in demo_conn.execute("SELECT DISTINCT road_class FROM road_edge")}
    assert {"expressway", "ramp", "national", "provincial", "county", "township", "village"} <= classes
    # expressway nodes touch only expressway and ramp edges
    bad = one(demo_conn,
              "WITH x AS (SELECT source AS n FROM road_edge WHERE road_class = 'expressway' UNION "
              "SELECT target FROM road_edge WHERE road_class = 'expressway') "
              "SELECT count(*) AS n FROM road_edge e JOIN x ON x.n IN (e.source, e.target) "
              "WHERE e.road_class NOT IN ('expressway', 'ramp')")["n"]
    assert bad == 0
    km = one(demo_conn, "SELECT sum(ST_Length(ST_Intersection(geom, (SELECT geom FROM county))::geography)) / 2000 "
                        "AS km FROM road_edge WHERE road_class = 'expressway'")["km"]
    assert 23 <= km <= 29  # two carriageways, so half the length
    assert one(demo_conn, "SELECT count(*) AS n FROM road_edge WHERE road_class = 'expressway' AND NOT oneway")["n"] == 0
    # curved: main and township roads have more than two vertices
    share = one(demo_conn, "SELECT avg((ST_NPoints(geom) > 2)::int) AS s FROM road_edge "
                           "WHERE road_class IN ('national', 'provincial', 'county', 'township')")["s"]
    assert share > 0.9
    assert one(demo_conn, "SELECT count(*) AS n FROM road_edge WHERE oneway AND road_class = 'urban'")["n"] > 0


def test_river_is_crossed_only_on_bridges(demo_conn):
    from geodata.roads import catmull_rom
    from geodata.world import Proj

    proj = Proj(4548)
    pts = np.array(PARAMS["roads"]["river"]["points"])
    x, y = proj.xy(pts[:, 0], pts[:, 1])
    import shapely

    river = proj.to_lonlat(shapely.LineString(catmull_rom(np.column_stack([x, y]), 12)))
    rows = demo_conn.execute("SELECT bridge, count(*) AS n FROM road_edge WHERE ST_Intersects(geom, "
                             "ST_GeomFromText(%s, 4326)) GROUP BY bridge", [river.wkt]).fetchall()
    by = {r["bridge"]: r["n"] for r in rows}
    assert by.get(False, 0) == 0
    assert 3 <= by.get(True, 0) <= 30


def test_villages_are_denser_on_the_northern_plain(demo_conn):
    r = one(demo_conn,
            "WITH c AS (SELECT geom FROM county), "
            "n AS (SELECT ST_Intersection(geom, ST_MakeEnvelope(117, 36.95, 118, 38, 4326)) AS g FROM c), "
            "s AS (SELECT ST_Intersection(geom, ST_MakeEnvelope(117, 36, 118, 36.80, 4326)) AS g FROM c) "
            "SELECT (SELECT count(*) FROM village v, n WHERE ST_Within(v.geom, n.g)) / "
            "       (SELECT ST_Area(g::geography) / 1e6 FROM n) AS north, "
            "       (SELECT count(*) FROM village v, s WHERE ST_Within(v.geom, s.g)) / "
            "       (SELECT ST_Area(g::geography) / 1e6 FROM s) AS south")
    assert r["north"] > 1.5 * r["south"]
    assert one(demo_conn, "SELECT min(population) AS p FROM village")["p"] > 0


def test_incident_rhythm(demo_conn):
    hours = {r["h"]: r["n"] for r in demo_conn.execute(
        "SELECT extract(hour FROM reported_at AT TIME ZONE 'Asia/Shanghai')::int AS h, count(*) AS n "
        "FROM incident WHERE channel = '110' GROUP BY 1")}
    assert hours[20] > 3 * hours[4]
    acc = {r["h"]: r["n"] for r in demo_conn.execute(
        "SELECT extract(hour FROM reported_at AT TIME ZONE 'Asia/Shanghai')::int AS h, count(*) AS n "
        "FROM incident WHERE type = 'traffic_accident' GROUP BY 1")}
    assert acc[8] > 1.3 * acc[13] and acc[8] > 4 * acc[3]
    month = {r["m"]: r["n"] for r in demo_conn.execute(
        "SELECT extract(month FROM reported_at AT TIME ZONE 'Asia/Shanghai')::int AS m, count(*) AS n "
        "FROM incident WHERE type = 'traffic_accident' GROUP BY 1")}
    assert month[1] + month[2] > 1.1 * (month[4] + month[5])  # winter fog and ice
    dow = {r["d"]: r["n"] for r in demo_conn.execute(
        "SELECT extract(isodow FROM reported_at AT TIME ZONE 'Asia/Shanghai')::int AS d, count(*) AS n "
        "FROM incident WHERE channel = '110' GROUP BY 1")}
    assert dow[6] > 1.1 * dow[2]  # Saturday nights
    # the history starts before the programme's pilot (history.start, local date 2021-06-01)
    first = one(demo_conn, "SELECT min(reported_at) AT TIME ZONE 'Asia/Shanghai' AS t FROM incident")["t"]
    assert first.date().isoformat() in ("2021-06-01", "2021-06-02")
    # before the demo year at a quarter of its rate (history.earlier_rate)
    r = one(demo_conn, "WITH e AS (SELECT max(reported_at) AS t FROM incident) SELECT "
                       "count(*) FILTER (WHERE reported_at > e.t - interval '365 days') AS year, "
                       "count(*) FILTER (WHERE reported_at <= e.t - interval '365 days' "
                       "AND reported_at > e.t - interval '730 days') AS before FROM incident, e")
    assert 0.2 < r["before"] / r["year"] < 0.3
    sev = {r["severity"]: r["n"] for r in demo_conn.execute(
        "SELECT severity, count(*) AS n FROM incident WHERE type = 'traffic_accident' GROUP BY 1")}
    assert set(sev) == {"minor", "injury", "fatal"} and sev["minor"] > sev["injury"] > sev["fatal"]
    types = {r["type"] for r in demo_conn.execute("SELECT DISTINCT type FROM incident WHERE channel = '110'")}
    assert {"theft", "fight", "dispute", "fraud", "public_order", "missing_person", "fire_assist", "other_110"} == types


def test_incident_ownership_is_by_containment(demo_conn):
    bad = one(demo_conn,
              "SELECT count(*) AS n FROM (SELECT * FROM incident ORDER BY id LIMIT 3000) i "
              "JOIN grid g ON g.id = i.grid_id "
              "JOIN jurisdiction js ON js.organisation_id = i.station_org_id AND js.kind = 'station' "
              "JOIN jurisdiction jt ON jt.organisation_id = i.traffic_org_id AND jt.kind = 'traffic' "
              "JOIN joint_zone z ON z.id = i.joint_zone_id "
              "WHERE NOT (ST_Intersects(g.geom, i.geom) AND ST_Intersects(js.geom, i.geom) "
              "AND ST_Intersects(jt.geom, i.geom) AND ST_Intersects(z.geom, i.geom))")["n"]
    assert bad == 0
    assert one(demo_conn, "SELECT count(*) AS n FROM incident WHERE station_org_id IS NULL OR traffic_org_id IS NULL "
                          "OR grid_id IS NULL OR joint_zone_id IS NULL")["n"] == 0
    # the jurisdiction versions in force (columns of the live-dispatch migration)
    assert one(demo_conn, "SELECT count(*) AS n FROM incident i LEFT JOIN jurisdiction s "
                          "ON s.id = i.station_jurisdiction_id LEFT JOIN jurisdiction t ON t.id = i.traffic_jurisdiction_id "
                          "WHERE s.organisation_id IS DISTINCT FROM i.station_org_id OR s.kind <> 'station' "
                          "OR t.organisation_id IS DISTINCT FROM i.traffic_org_id OR t.kind <> 'traffic' "
                          "OR NOT (s.valid_from <= i.reported_at)")["n"] == 0


def test_dispatch_rules_of_the_history(demo_conn):
    """The legs follow the rules with the station's participation in force at the report time and
    the class of the road the incident is on (the squadrons keep the trunk roads and streets)."""
    keep = load_params()["programme"]["squadron_road_classes"]
    rows = demo_conn.execute(
        "SELECT i.severity, i.type, coalesce(p.takes_part_in_traffic, false) AS tr, i.station_org_id, "
        "i.traffic_org_id, rc.road_class, "
        "array_agg(l.role ORDER BY l.role) AS roles, "
        "array_agg(o.kind ORDER BY l.role) AS kinds, "
        "bool_or(l.fallback_from_org_id IS NOT NULL) AS fb, "
        "array_agg(l.organisation_id ORDER BY l.role) AS orgs "
        "FROM incident i JOIN dispatch_leg l ON l.incident_id = i.id JOIN organisation o ON o.id = l.organisation_id "
        "LEFT JOIN organisation_participation p ON p.organisation_id = i.station_org_id "
        "AND p.valid_from <= i.reported_at AND (p.valid_to IS NULL OR p.valid_to > i.reported_at) "
        "LEFT JOIN LATERAL (SELECT e.road_class FROM road_edge e ORDER BY e.geom <-> i.geom LIMIT 1) rc ON true "
        "WHERE i.channel = '122' GROUP BY i.id, p.id, rc.road_class").fetchall()
    assert len(rows) > 20_000
    assert {r["tr"] for r in rows} == {True, False}
    wrong = 0
    for r in rows:
        kept = r["type"] == "traffic_accident" and r["road_class"] in keep
        if r["severity"] in ("injury", "fatal"):
            assert r["roles"] == ["primary", "specialist"]
            assert r["kinds"][1] == "accident_section"
            wrong += r["kinds"][0] != ("squadron" if kept else "station")
        else:
            assert r["roles"] == ["primary"]
            if r["fb"]:
                continue
            expected = r["station_org_id"] if r["tr"] and not kept else r["traffic_org_id"]
            wrong += r["orgs"][0] != expected
    # the generator knows the road it drew; the nearest road segment is that one but for points
    # at a junction of two classes
    assert wrong <= 0.005 * len(rows), wrong
    # every leg has a unit of its own organisation
    assert one(demo_conn, "SELECT count(*) AS n FROM dispatch_leg l JOIN unit u ON u.id = l.unit_id "
                          "WHERE u.organisation_id <> l.organisation_id")["n"] == 0


def test_sla_rates_of_the_history_are_near_the_brief(demo_conn):
    r = one(demo_conn,
            "WITH e AS (SELECT max(reported_at) AS t FROM incident) "
            "SELECT avg((signed_off_at - dispatched_at <= interval '90 seconds')::int) AS sign_off, "
            "avg((coalesce(first_feedback_at - dispatched_at <= interval '5 hours', false))::int) AS feedback, "
            "avg((coalesce(closed_at - dispatched_at <= interval '22 hours', false))::int) AS closed "
            "FROM dispatch_leg, e WHERE dispatched_at <= e.t - interval '22 hours'")
    assert abs(float(r["sign_off"]) - 0.95) <= 0.02
    assert abs(float(r["feedback"]) - 0.97) <= 0.02
    assert abs(float(r["closed"]) - 0.998) <= 0.02
    # timestamps are in lifecycle order
    assert one(demo_conn, "SELECT count(*) AS n FROM dispatch_leg WHERE NOT (dispatched_at <= signed_off_at AND "
                          "signed_off_at <= en_route_at AND en_route_at <= arrived_at AND "
                          "arrived_at <= first_feedback_at AND first_feedback_at <= closed_at) AND status = 'closed'"
               )["n"] == 0
    # incidents close when all their legs have closed
    assert one(demo_conn, "SELECT count(*) AS n FROM incident i WHERE status = 'closed' AND closed_at <> "
                          "(SELECT max(closed_at) FROM dispatch_leg l WHERE l.incident_id = i.id)")["n"] == 0


def test_units_have_capabilities_shifts_and_positions(demo_conn):
    tags = {"accident_qualified", "breathalyser", "camera", "cones", "first_aid", "lights"}
    rows = demo_conn.execute(
        "SELECT u.capabilities, u.shift, o.kind, ST_Distance(u.last_position::geography, o.hq::geography) AS d "
        "FROM unit u JOIN organisation o ON o.id = u.organisation_id").fetchall()
    assert all(set(r["capabilities"]) <= tags and r["capabilities"] for r in rows)
    assert {r["shift"] for r in rows} == {"day", "night", "all_day"}
    assert max(r["d"] for r in rows) < 500
    assert {r["kind"] for r in rows} == {"station", "squadron", "accident_section", "command_centre"}
    qualified = sum("accident_qualified" in r["capabilities"] for r in rows if r["kind"] == "station")
    assert qualified >= 20


def test_every_generated_layer_is_labelled_synthetic(demo_conn):
    meta = {r["layer"]: r for r in demo_conn.execute("SELECT layer, synthetic, params FROM dataset_meta")}
    for layer in ("organisations", "jurisdictions", "joint_zones", "grids", "villages", "road_nodes", "road_edges",
                  "units", "incidents", "dispatch_legs", "service_points"):
        assert meta[layer]["synthetic"] is True, layer
        assert meta[layer]["params"]["seed"] == PARAMS["seed"]
        assert meta[layer]["params"]["parameters"]["villages"]["count"] == 858
    assert meta["county"]["synthetic"] is False and meta["towns"]["synthetic"] is False


def test_stats_report_the_demo(demo_database_url, monkeypatch):
    import json

    from click.testing import CliRunner

    from gisapp.cli import main

    monkeypatch.setenv("GISAPP_DATABASE_URL", demo_database_url)
    r = CliRunner().invoke(main, ["stats", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["counts"]["villages"] == 858
    assert 25_000 <= out["directed_edges"] <= 60_000
    assert set(out["road_km_by_class"]) >= {"expressway", "national", "provincial", "county", "township", "village"}
    assert out["incidents_by_channel"]["110"] > out["incidents_by_channel"]["122"] > 0
    assert out["synthetic_layers"]["road_edges"] is True and out["synthetic_layers"]["county"] is False


def test_the_programme_history_of_participation(demo_conn):
    """The demo's participation versions follow [programme]: nobody before the July 2021 pilot, 7
    remote township stations then, 14 from the widening, 交所合一 in 4 towns from November 2022."""
    def at(day: str, col: str, kind: str = "station") -> set[str]:
        return {r["code"] for r in demo_conn.execute(
            f"SELECT o.code FROM organisation o JOIN organisation_participation p ON p.organisation_id = o.id "
            f"WHERE o.kind = %s AND p.{col} AND p.valid_from <= (%s::date)::timestamp AT TIME ZONE 'Asia/Shanghai' "
            f"AND (p.valid_to IS NULL OR p.valid_to > (%s::date)::timestamp AT TIME ZONE 'Asia/Shanghai')",
            [kind, day, day])}

    assert at("2021-06-30", "takes_part_in_traffic") == set()
    assert len(at("2021-07-01", "takes_part_in_traffic")) == 7
    assert len(at("2022-03-01", "takes_part_in_traffic")) == 14
    assert at("2022-10-31", "merged") == set()
    merged = at("2022-11-01", "merged")
    assert merged == {"PS-371681102", "PS-371681105", "PS-371681004", "PS-KFQ"}
    assert at("2022-11-01", "merged", "squadron") == {"SQ-WQ", "SQ-HD", "SQ-HS", "SQ-KFQ"}
    # the version in force now is the organisation's own flags
    assert one(demo_conn, "SELECT count(*) AS n FROM organisation o JOIN organisation_participation p "
                          "ON p.organisation_id = o.id AND p.valid_to IS NULL WHERE (p.takes_part_in_traffic, p.merged) "
                          "IS DISTINCT FROM (o.takes_part_in_traffic, o.merged)")["n"] == 0
    # the pilot's stations are remote townships: none of the city's seats
    p = load_params()
    city = {("PS-" + k) for k in p["urban"]["city_seats"]}
    assert not (at("2021-07-01", "takes_part_in_traffic") & city)


def test_rules_keep_the_programme_road_classes():
    """The rules file's trunk-road rules and the demo's [programme] name the same road classes."""
    from gisapp.dispatch.rules import load_rules

    keep = set(load_params()["programme"]["squadron_road_classes"])
    rules = load_rules(None)
    named = [r for r in rules.rules if r.road_classes is not None]
    assert named and all(set(r.road_classes) == keep for r in named)
