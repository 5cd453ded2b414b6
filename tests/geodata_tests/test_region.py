"""Regions of several counties (issue 16): Binzhou on a coarse lattice, connected across county
lines, stations inside their real outlines, counts scaling with area and density, bad input."""

from __future__ import annotations

import json

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner
from scipy.sparse.csgraph import connected_components
from support.database import TEST_DB, create_test_database, with_dbname

from geodata import region as regions
from gisapp.core import db
from gisapp.core.config import Settings
from gisapp.core.errors import ValidationError

COARSE = 2000.0  # lattice metres: a few thousand arcs, so the test stays short


@pytest.fixture(scope="module")
def binzhou(server_url):
    url = create_test_database(server_url, TEST_DB + "_region")
    s = Settings.from_env()
    params = regions.load_region_params(roads__lattice_m=COARSE)
    with db.connect(url) as conn:
        summary = regions.load_region(conn, "binzhou", params, s, processes=2, log=lambda m: None)
        conn.commit()
    with db.connect(url, autocommit=True) as conn:
        yield conn, summary, s


def test_binzhou_has_its_seven_counties_and_zouping(binzhou):
    conn, summary, _ = binzhou
    names = {r["name"] for r in conn.execute("SELECT name FROM county")}
    assert len(names) == 7 and "邹平市" in names
    assert summary["counties"] == 7
    assert conn.execute("SELECT count(*) AS n FROM unit").fetchone()["n"] == summary["units"]
    n = conn.execute("SELECT count(*) AS n FROM road_edge").fetchone()["n"]
    assert summary["directed_arcs"] == 2 * n


def test_network_is_strongly_connected_across_county_lines(binzhou):
    conn, summary, s = binzhou
    from routing.graph import load_graph

    g = load_graph(conn, s.road_speed_kmh, s.metric_srid)
    assert g.forward.matrix.nnz == summary["directed_arcs"]
    k, _ = connected_components(g.forward.matrix, directed=True, connection="strong")
    assert k == 1
    # national roads join junctions of different counties
    cross = conn.execute(
        "SELECT count(*) AS n FROM road_edge e JOIN road_node a ON a.id = e.source JOIN road_node b ON b.id = e.target "
        "JOIN county ca ON ST_Intersects(ca.geom, a.geom) JOIN county cb ON ST_Intersects(cb.geom, b.geom) "
        "WHERE e.road_class = 'national' AND ca.adcode <> cb.adcode").fetchone()["n"]
    assert cross >= 6
    assert conn.execute("SELECT count(*) AS n FROM road_edge WHERE road_class = 'expressway'").fetchone()["n"] > 0


def test_every_station_lies_inside_its_county(binzhou):
    conn, _, _ = binzhou
    rows = conn.execute(
        "SELECT o.code, ST_Within(o.hq, c.geom) AS inside FROM organisation o "
        "JOIN county c ON o.code LIKE 'R' || c.adcode || '-PS%' WHERE o.kind = 'station'").fetchall()
    assert len(rows) == conn.execute("SELECT count(*) AS n FROM organisation WHERE kind = 'station'").fetchone()["n"]
    assert rows and all(r["inside"] for r in rows), [r["code"] for r in rows if not r["inside"]]
    # jurisdictions tile each county (union equal to the outline within 0.5%)
    bad = conn.execute(
        "SELECT c.name, abs(ST_Area(ST_Union(j.geom)::geography) / ST_Area(c.geom::geography) - 1) AS d "
        "FROM county c JOIN organisation o ON o.code LIKE 'R' || c.adcode || '-PS%' "
        "JOIN jurisdiction j ON j.organisation_id = o.id AND j.kind = 'station' GROUP BY c.name, c.geom").fetchall()
    assert len(bad) == 7 and all(r["d"] < 0.005 for r in bad), bad


def test_units_scale_with_area(binzhou):
    conn, _, _ = binzhou
    rows = conn.execute(
        "SELECT c.name, ST_Area(c.geom::geography) / 1e6 AS km2, count(u.id) AS units FROM county c "
        "JOIN organisation o ON o.code LIKE 'R' || c.adcode || '-%' JOIN unit u ON u.organisation_id = o.id "
        "GROUP BY c.name, c.geom ORDER BY km2").fetchall()
    per_km2 = [r["units"] / r["km2"] for r in rows]
    assert max(per_km2) / min(per_km2) < 2.0, rows
    assert rows[-1]["units"] > rows[0]["units"]


def test_arcs_scale_with_the_lattice_density():
    s = Settings.from_env()
    coarse = regions.generate_region("binzhou", regions.load_region_params(roads__lattice_m=COARSE), s,
                                     processes=1, log=lambda m: None)
    fine = regions.generate_region("binzhou", regions.load_region_params(roads__lattice_m=COARSE / 2), s,
                                   processes=1, log=lambda m: None)
    assert 3.0 < fine.directed_count() / coarse.directed_count() < 5.0
    assert len(fine.counties) == len(coarse.counties) == 7
    # deterministic, and the same whether the counties are built in parallel or not
    again = regions.generate_region("binzhou", regions.load_region_params(roads__lattice_m=COARSE), s,
                                    processes=2, log=lambda m: None)
    assert np.array_equal(again.node_xy, coarse.node_xy) and np.array_equal(again.edge_u, coarse.edge_u)
    assert np.array_equal(again.edge_v, coarse.edge_v) and list(again.edge_class) == list(coarse.edge_class)
    assert [len(c.units) for c in again.counties] == [len(c.units) for c in coarse.counties]


def test_unknown_region_names_the_valid_ones():
    with pytest.raises(ValidationError) as e:
        regions.region_counties("atlantis")
    assert e.value.key == "region.unknown" and e.value.field == "region"
    assert "binzhou" in e.value.message("en") and "shandong" in e.value.message("zh")
    from gisapp.cli import main

    res = CliRunner().invoke(main, ["load-demo", "--region", "atlantis", "--no-history"])
    assert res.exit_code != 0
    assert "binzhou" in res.output and "shandong" in res.output


def test_invalid_outline_names_the_county_and_writes_nothing(binzhou, tmp_path):
    conn, summary, s = binzhou
    fc = json.loads(regions.COUNTIES_PATH.read_text(encoding="utf-8"))
    for f in fc["features"]:
        if f["properties"]["district_name"] == "惠民县":  # a self-intersecting bow tie
            f["geometry"] = {"type": "Polygon", "coordinates": [[[117.4, 37.4], [117.6, 37.6], [117.6, 37.4],
                                                                 [117.4, 37.6], [117.4, 37.4]]]}
    bad = tmp_path / "counties.geojson"
    bad.write_text(json.dumps(fc, ensure_ascii=False), encoding="utf-8")
    before = conn.execute("SELECT count(*) AS n FROM road_edge").fetchone()["n"]
    with db.connect(conn.info.dsn) as c2:
        with pytest.raises(ValidationError) as e:
            regions.load_region(c2, "binzhou", regions.load_region_params(roads__lattice_m=COARSE), s,
                                processes=1, counties_path=bad, log=lambda m: None)
        c2.rollback()
    assert e.value.key == "region.bad_outline" and "惠民县" in e.value.message("zh")
    assert "惠民县" in e.value.message("en")
    assert conn.execute("SELECT count(*) AS n FROM road_edge").fetchone()["n"] == before == summary["road_edges"]


def test_region_database_is_cached_by_fingerprint(server_url):
    s = Settings.from_env()
    params = regions.load_region_params(roads__lattice_m=4000.0)
    name = TEST_DB + "_region_cache"
    with psycopg.connect(with_dbname(server_url, "postgres"), autocommit=True) as admin:
        admin.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))
    url, first = regions.ensure_region_database(server_url, "binzhou", name, params, s, processes=1,
                                                log=lambda m: None)
    assert first is not None and first["counties"] == 7
    again_url, again = regions.ensure_region_database(server_url, "binzhou", name, params, s, processes=1,
                                                      log=lambda m: None)
    assert again is None and again_url == url
    with psycopg.connect(url) as c:
        assert c.execute("SELECT params->>'fingerprint' FROM dataset_meta WHERE layer = 'region'").fetchone()[0] \
            == regions.fingerprint("binzhou", params)


def test_zouping_reference_after_a_region_keeps_only_zouping(binzhou):
    conn, _, _ = binzhou
    from geodata.reference import COUNTY_ADCODE, load_reference

    with db.connect(conn.info.dsn) as c2:
        load_reference(c2)
        rows = c2.execute("SELECT adcode FROM county").fetchall()
        meta = c2.execute("SELECT count(*) AS n FROM dataset_meta WHERE layer = 'region'").fetchone()["n"]
        c2.rollback()
    assert [r["adcode"] for r in rows] == [COUNTY_ADCODE] and meta == 0
    assert conn.execute("SELECT count(*) AS n FROM county").fetchone()["n"] == 7
