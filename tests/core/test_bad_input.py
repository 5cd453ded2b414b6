"""Bad input gets a 4xx JSON error naming the field and the reason, and writes nothing."""

from __future__ import annotations

import json

import pytest
from support.database import count
from support.samples import make, point, square
from support.server import expect_error


@pytest.fixture(scope="module")
def station_id(users) -> int:
    return users["chief"]["station_id"]



def test_self_intersecting_polygon(login, conn, station_id):
    planner = login("planner")
    before = count(conn, "jurisdiction")
    bowtie = {"type": "Polygon", "coordinates": [[[117.6, 36.9], [117.7, 37.0], [117.7, 36.9], [117.6, 37.0],
                                                   [117.6, 36.9]]]}
    f = make("jurisdictions", station_id)
    f["geometry"] = bowtie
    body = expect_error(planner.post("/api/v1/jurisdictions", json=f), 422, "geometry")
    assert "Self-intersection" in body["reason"]
    assert count(conn, "jurisdiction") == before


def test_latitude_out_of_range(login, conn, station_id):
    before = count(conn, "village")
    f = make("villages", station_id)
    f["geometry"] = point(117.7, 95)
    body = expect_error(login("planner").post("/api/v1/villages", json=f), 400, "geometry")
    assert "latitude 95" in body["reason"]
    assert count(conn, "village") == before


def test_swapped_coordinates(login, conn, station_id):
    before = count(conn, "village")
    f = make("villages", station_id)
    f["geometry"] = point(36.88, 117.73)
    body = expect_error(login("planner").post("/api/v1/villages", json=f), 422, "geometry")
    assert "swapped" in body["reason"]
    # within the valid range but outside the county: refused too
    f["geometry"] = point(120.3, 36.1)
    body = expect_error(login("planner").post("/api/v1/villages", json=f), 422, "geometry")
    assert "outside" in body["reason"]
    assert count(conn, "village") == before


def test_body_over_the_limit(login, conn, station_id):
    before = count(conn, "village")
    f = make("villages", station_id)
    f["properties"]["name"] = "x" * (21 * 1024 * 1024)
    r = login("planner").post("/api/v1/villages", data=json.dumps(f), headers={"Content-Type": "application/json"})
    body = expect_error(r, 413, "body")
    assert "20 MB" in body["reason"]
    assert count(conn, "village") == before


def test_string_where_integer_id_expected(login, reader, conn, station_id):
    expect_error(reader.get("/api/v1/villages/abc"), 400, "id")
    before = count(conn, "unit")
    f = make("units", station_id)
    f["properties"]["organisation_id"] = "abc"
    expect_error(login("dispatcher").post("/api/v1/units", json=f), 400, "organisation_id")
    f["properties"]["organisation_id"] = 99999999
    expect_error(login("dispatcher").post("/api/v1/units", json=f), 422, "organisation_id")
    assert count(conn, "unit") == before
    expect_error(reader.get("/api/v1/units/99999999"), 404, "id")


def test_wrong_geometry_type(login, conn, station_id):
    before = count(conn, "jurisdiction")
    f = make("jurisdictions", station_id)
    f["geometry"] = point()
    body = expect_error(login("planner").post("/api/v1/jurisdictions", json=f), 422, "geometry")
    assert "MultiPolygon" in body["reason"]
    assert count(conn, "jurisdiction") == before


def test_write_without_login_and_as_viewer(http, login, conn, station_id):
    before = count(conn, "village")
    expect_error(http.post("/api/v1/villages", json=make("villages", station_id)), 401, "Authorization")
    expect_error(login("viewer").post("/api/v1/villages", json=make("villages", station_id)), 403, "role")
    # a dispatcher may not redraw jurisdictions either
    expect_error(login("dispatcher").post("/api/v1/jurisdictions", json=make("jurisdictions", station_id)), 403, "role")
    assert count(conn, "village") == before


@pytest.mark.parametrize("body, field", [
    ("{not json", "body"),
    ([1, 2], "body"),
])
def test_malformed_bodies(login, body, field):
    raw = body if isinstance(body, str) else json.dumps(body)
    expect_error(login("planner").post("/api/v1/villages", data=raw, headers={"Content-Type": "application/json"}),
         400, field)


def test_wrong_types_and_unknown_properties(login, conn, station_id):
    planner = login("planner")
    before = count(conn, "village")
    f = make("villages", station_id)
    f["properties"]["population"] = "many"
    expect_error(planner.post("/api/v1/villages", json=f), 400, "population")
    f = make("villages", station_id)
    f["properties"]["colour"] = "red"
    expect_error(planner.post("/api/v1/villages", json=f), 400, "colour")
    f = make("villages", station_id)
    del f["properties"]["name"]
    expect_error(planner.post("/api/v1/villages", json=f), 400, "name")
    f = make("villages", station_id)
    f["geometry"] = {"type": "Point", "coordinates": ["117.7", 36.9]}
    expect_error(planner.post("/api/v1/villages", json=f), 400, "geometry")
    expect_error(planner.post("/api/v1/villages", data="x", headers={"Content-Type": "text/plain"}), 415, "Content-Type")
    assert count(conn, "village") == before


def test_failed_update_changes_nothing(login, reader, station_id):
    planner = login("planner")
    fid = planner.post("/api/v1/grids", json=make("grids", station_id)).json()["id"]
    before = reader.get(f"/api/v1/grids/{fid}").json()
    r = planner.patch(f"/api/v1/grids/{fid}", json={"properties": {"name": "新名", "staff": [{"role": "boss"}]},
                                                    "geometry": square(117.6, 36.9)})
    assert r.status_code == 400 and r.json()["field"] == "staff"
    assert reader.get(f"/api/v1/grids/{fid}").json() == before


def test_database_rejects_bad_geometry_itself(conn, station_id):
    import psycopg

    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO jurisdiction (organisation_id, kind, version, geom, author, reason) VALUES "
                     "(%s, 'station', 99, ST_GeomFromText('MULTIPOLYGON(((0 0, 1 1, 1 0, 0 1, 0 0)))', 4326), "
                     "'t', 't')", [station_id])
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("INSERT INTO village (code, name, geom) VALUES ('BAD', 'bad', "
                     "ST_GeomFromText('LINESTRING(117 36, 117.1 36.1)', 4326))")
