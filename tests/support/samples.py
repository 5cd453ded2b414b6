"""Sample features for every layer, inside the Zouping extent, for API round-trip tests."""

from __future__ import annotations

import itertools

_seq = itertools.count(1)


def square(lon: float, lat: float, d: float = 0.01) -> dict:
    return {"type": "Polygon", "coordinates": [[[lon, lat], [lon + d, lat], [lon + d, lat + d],
                                                 [lon, lat + d], [lon, lat]]]}


def point(lon: float = 117.73, lat: float = 36.88) -> dict:
    return {"type": "Point", "coordinates": [lon, lat]}


def feature(props: dict, geometry: dict | None) -> dict:
    return {"type": "Feature", "properties": props, "geometry": geometry}


def make(layer: str, org_id: int) -> dict:
    """Return a valid Feature for ``layer``; ``org_id`` is an existing station."""
    n = next(_seq)
    code = f"T{n:05d}"
    lon, lat = 117.5 + (n % 30) * 0.01, 36.8 + (n % 20) * 0.01
    return {
        "county": lambda: feature({"adcode": f"9{n:05d}", "name": "测试县"}, square(lon, lat)),
        "towns": lambda: feature({"code": code, "name": "测试镇", "kind": "town"}, point(lon, lat)),
        "organisations": lambda: feature({"code": code, "name": "测试所", "kind": "station",
                                          "takes_part_in_traffic": True}, point(lon, lat)),
        "jurisdictions": lambda: feature({"organisation_id": org_id, "kind": "traffic",
                                          "name": "测试辖区", "reason": "test"}, square(lon, lat)),
        "joint_zones": lambda: feature({"code": code, "name": "测试战区", "centre_org_id": org_id,
                                        "member_ids": [org_id], "reason": "test"}, square(lon, lat)),
        "grids": lambda: feature({"code": code, "name": "测试警格", "organisation_id": org_id,
                                  "staff": [{"person_name": "张三", "role": "grid_worker"}]}, square(lon, lat)),
        "road_nodes": lambda: feature({}, point(lon, lat)),
        "road_edges": lambda: feature({"road_class": "village", "name": "测试路", "speed_kmh": 30.0},
                                      {"type": "LineString", "coordinates": [[lon, lat], [lon + 0.003, lat + 0.001]]}),
        "villages": lambda: feature({"code": code, "name": "测试村", "population": 800}, point(lon, lat)),
        "units": lambda: feature({"code": code, "name": "测试车", "organisation_id": org_id, "kind": "patrol_car",
                                  "capabilities": ["accident_qualified"]}, point(lon, lat)),
        "incidents": lambda: feature({"channel": "110", "type": "dispute", "reported_at": "2026-11-01T08:00:00Z",
                                      "address": "测试地址"}, point(lon, lat)),
        "service_points": lambda: feature({"code": code, "name": "测试窗口", "organisation_id": org_id,
                                           "services": ["驾驶证换证"]}, point(lon, lat)),
    }[layer]()


# A property each layer lets us change in an update, with the new value.
UPDATES = {
    "county": ("name_en", "Test county"),
    "towns": ("name_en", "Test town"),
    "organisations": ("merged", True),
    "jurisdictions": ("name", "改后辖区"),
    "joint_zones": ("name", "改后战区"),
    "grids": ("name", "改后警格"),
    "road_nodes": ("osm_id", 42),
    "road_edges": ("oneway", True),
    "villages": ("population", 1234),
    "units": ("status", "off_duty"),
    "incidents": ("description", "更新描述"),
    "service_points": ("opening_hours", "9:00-17:00"),
}
