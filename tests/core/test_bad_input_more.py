"""More bad input found by the fuzzer and by hand (issue 12, item 10): each is a 4xx naming the
field and the reason, never a 500, and writes nothing."""

from __future__ import annotations

import json

import pytest
from support.database import count
from support.samples import make, square
from support.server import expect_error


@pytest.fixture(scope="module")
def station_id(users) -> int:
    return users["chief"]["station_id"]



_JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("depth", [100_000, 5_000, 900])
def test_deeply_nested_json_on_login_without_logging_in(http, depth):
    body = expect_error(http.post("/api/v1/auth/login", data="[" * depth, headers=_JSON), 400, "body")
    assert "nested" in body["reason"] or "JSON" in body["reason"]
    raw = '{"username": "x", "password": ' + "[" * depth + "]" * depth + "}"
    expect_error(http.post("/api/v1/auth/login", data=raw, headers=_JSON), 400, "body")


@pytest.mark.parametrize("depth", [100_000, 900, 200])
def test_deeply_nested_json_on_writes(login, conn, station_id, depth):
    planner = login("planner")
    before = count(conn, "village")
    expect_error(planner.post("/api/v1/villages", data="[" * depth, headers=_JSON), 400, "body")
    # nested inside the geometry, closed properly: still refused, not a 500
    f = make("villages", station_id)
    raw = json.dumps(f).replace('"coordinates": [', '"coordinates": ' + "[" * depth, 1)
    raw = raw.replace("]}", "]" * depth + "}", 1)
    json.loads(raw) if depth < 500 else None  # the body is well-formed JSON
    r = planner.post("/api/v1/villages", data=raw, headers=_JSON)
    expect_error(r, (400, 422), None)
    assert r.json()["field"] in ("body", "geometry")
    assert count(conn, "village") == before


def _surrogate(obj_json: str) -> str:
    """JSON text with a lone surrogate where the placeholder ``@S@`` stands."""
    return obj_json.replace("@S@", "\\ud800")


def test_lone_surrogate_in_layer_text_fields(login, conn, station_id):
    planner = login("planner")
    before = count(conn, "village")
    f = make("villages", station_id)
    f["properties"]["name"] = "@S@"
    body = expect_error(planner.post("/api/v1/villages", data=_surrogate(json.dumps(f)), headers=_JSON), (400, 422), "name")
    assert "surrogate" in body["reason"] or "UTF-8" in body["reason"]
    assert count(conn, "village") == before
    # in an update, and in an array of strings
    vid = planner.post("/api/v1/villages", json=make("villages", station_id)).json()["id"]
    raw = _surrogate(json.dumps({"properties": {"name_en": "a@S@b"}}))
    expect_error(planner.patch(f"/api/v1/villages/{vid}", data=raw, headers=_JSON), (400, 422), "name_en")
    sp = make("service_points", station_id)
    sp["properties"]["services"] = ["ok", "@S@"]
    expect_error(login("admin").post("/api/v1/service_points", data=_surrogate(json.dumps(sp)), headers=_JSON),
         (400, 422), "services")
    # a surrogate in a key is named too
    expect_error(planner.post("/api/v1/villages", data=_surrogate('{"properties": {"@S@": 1}}'), headers=_JSON),
         (400, 422), None)


def test_lone_surrogate_in_users_plans_intake_and_login(http, login, conn, station_id):
    admin = login("admin")
    n_users = count(conn, "app_user")
    raw = _surrogate(json.dumps({"username": "sur_user", "password": "long-enough-pw", "role": "viewer",
                                 "display_name": "x@S@"}))
    expect_error(admin.post("/api/v1/users", data=raw, headers=_JSON), (400, 422), "display_name")
    assert count(conn, "app_user") == n_users
    raw = _surrogate(json.dumps({"username": "t_admin", "password": "@S@"}))
    expect_error(http.post("/api/v1/auth/login", data=raw, headers=_JSON), (400, 422), "password")
    raw = _surrogate(json.dumps({"username": "@S@", "password": "whatever"}))
    expect_error(http.post("/api/v1/auth/login", data=raw, headers=_JSON), (400, 422), "username")
    n_plans = count(conn, "plan")
    raw = _surrogate(json.dumps({"name": "plan @S@", "kind": "station"}))
    expect_error(admin.post("/api/v1/plans", data=raw, headers=_JSON), (400, 422), "name")
    assert count(conn, "plan") == n_plans
    n_inc = count(conn, "incident")
    raw = _surrogate(json.dumps({"channel": "110", "type": "dispute", "lon": 117.73, "lat": 36.88,
                                 "description": "help @S@"}))
    expect_error(login("dispatcher").post("/api/v1/dispatch/incidents", data=raw, headers=_JSON), (400, 422),
         "description")
    assert count(conn, "incident") == n_inc


@pytest.mark.parametrize("url, name", [
    ("/api/v1/routing/patrol?days=3%1F", "days"),
    ("/api/v1/routing/patrol?days=3%00", "days"),
    ("/api/v1/villages?limit=5%00", "limit"),
    ("/api/v1/villages?limit=5%1F", "limit"),
    ("/api/v1/villages?offset=0%1C", "offset"),
    ("/api/v1/villages?population=5%1F", "population"),
    ("/api/v1/routing/gaps?limit=5%1F", "limit"),
    ("/api/v1/routing/nearest-units?lon=117.73%1F&lat=36.88", "lon"),
    ("/api/v1/audit?limit=5%1F", "limit"),
    ("/api/v1/stream/events?limit=5%00", "limit"),
    ("/api/v1/stream/events?after=5%1F", "after"),
    ("/api/v1/stream?last_event_id=3%1F", "last_event_id"),
    ("/api/v1/metrics/sla?organisation_id=5%00", "organisation_id"),
    ("/api/v1/plans/ownership?lon=117.73%1F&lat=36.88", "lon"),
    ("/api/v1/dispatch/board?organisation_id=5%1F", "organisation_id"),
])
def test_numeric_query_parameters_with_control_characters(login, url, name):
    expect_error(login("admin").get(url), 400, name)


def test_layer_api_refuses_an_unclosed_ring(login, conn, station_id):
    planner = login("planner")
    before = count(conn, "jurisdiction"), count(conn, "grid")
    f = make("grids", station_id)
    ring = square(117.6, 36.9)["coordinates"][0][:-1] + [[117.6, 36.905]]
    f["geometry"] = {"type": "Polygon", "coordinates": [ring]}
    body = expect_error(planner.post("/api/v1/grids", json=f), 422, "geometry")
    assert "closed" in body["reason"]
    f["geometry"] = {"type": "MultiPolygon", "coordinates": [[ring]]}
    expect_error(planner.post("/api/v1/grids", json=f), 422, "geometry")
    # a ring of three positions is refused as well
    f["geometry"] = {"type": "Polygon", "coordinates": [[[117.6, 36.9], [117.61, 36.9], [117.6, 36.9]]]}
    expect_error(planner.post("/api/v1/grids", json=f), 422, "geometry")
    assert (count(conn, "jurisdiction"), count(conn, "grid")) == before
