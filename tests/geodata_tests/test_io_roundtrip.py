"""Geodata in and out: lossless round trips per format, reprojection, and bad files that import nothing."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pyogrio
import pytest
import shapely

from gisapp.core import db
from gisapp.core.config import Settings

FORMATS = ["geojson", "gpkg", "zip", "csv"]
SETTINGS = Settings()


@pytest.fixture
def tx(demo_database_url):
    """A connection to the demo copy whose changes are rolled back."""
    with db.connect(demo_database_url) as conn:
        yield conn
        conn.rollback()


def _compare(before, after, ignore=()):
    skip = {"id", "version", "valid_from", "valid_to", "author", "plan_id", "reason", *ignore}
    cols = [c for c in before.columns if c not in skip and c != "geometry"]
    assert len(before) == len(after)
    b = before.sort_values(cols[0], kind="stable").reset_index(drop=True)
    a = after.sort_values(cols[0], kind="stable").reset_index(drop=True)
    for c in cols:
        assert b[c].astype(str).tolist() == a[c].astype(str).tolist(), c
    gb = shapely.normalize(b.geometry.to_numpy())
    ga = shapely.normalize(a.geometry.to_numpy())
    same = shapely.equals_exact(gb, ga, tolerance=0) | (shapely.is_missing(gb) & shapely.is_missing(ga))
    assert same.all(), (np.flatnonzero(~same)[:5], shapely.to_wkt(gb[~same][:2], rounding_precision=-1), shapely.to_wkt(ga[~same][:2], rounding_precision=-1), b["code"][~same][:2].tolist(), a["code"][~same][:2].tolist())


# every format on points (villages) and on multipolygons with side tables (grids); the other
# layers' special columns (versions, arrays, nullable references) on one format each
CASES = [("villages", fmt) for fmt in FORMATS] + [("grids", "geojson"), ("grids", "zip"), ("grids", "csv")] + [
    ("jurisdictions", "gpkg"), ("units", "csv"), ("joint_zones", "geojson"), ("organisations", "zip"),
]


@pytest.mark.parametrize(("layer", "fmt"), CASES)
def test_round_trip_is_lossless(tx, tmp_path, fmt, layer):
    from geodata.io import export_layer, import_layer, read_layer

    before = read_layer(tx, layer)
    path = tmp_path / f"{layer}.{fmt}"
    out = export_layer(tx, layer, path)
    assert out["rows"] == len(before)
    # QGIS-compatible: GDAL opens it, in WGS84, with every feature
    info = pyogrio.read_info(f"/vsizip/{path}/{layer}.shp" if fmt == "zip" else path)
    assert info["features"] == len(before)
    assert info["crs"] in ("EPSG:4326", "OGC:CRS84") or "WGS 84" in info["crs"] or "WGS_1984" in info["crs"]
    if fmt == "zip":
        names = set(zipfile.ZipFile(path).namelist())
        assert {f"{layer}.{e}" for e in ("shp", "shx", "dbf", "prj", "cpg")} <= names
    if layer == "organisations":
        # organisations are referenced by everything: import them as new rows with new codes
        before = before.assign(code=before["code"] + "-X", parent_id=None)
        export_layer(tx, layer, path)  # rewrite with the same content, then edit codes in the file
        gdf = pyogrio.read_dataframe(f"/vsizip/{path}/{layer}.shp" if fmt == "zip" else path)
        code_col = "code"
        gdf[code_col] = gdf[code_col] + "-X"
        for c in [c for c in gdf.columns if c.lower().startswith("parent_")]:
            gdf[c] = None
        path = tmp_path / f"edited.{fmt}"
        if fmt == "zip":
            shp = tmp_path / "o" / "organisations.shp"
            shp.parent.mkdir()
            pyogrio.write_dataframe(gdf, shp, encoding="UTF-8")
            with zipfile.ZipFile(path, "w") as zf:
                for p in shp.parent.iterdir():
                    zf.write(p, p.name)
        else:
            pyogrio.write_dataframe(gdf, path, layer_options={"COORDINATE_PRECISION": "17"})
        rep = import_layer(tx, layer, path, settings=SETTINGS)
        after = read_layer(tx, layer)
        after = after[after["code"].str.endswith("-X")]
        _compare(before, after)
        return
    rep = import_layer(tx, layer, path, settings=SETTINGS, replace=True)
    assert rep.rows_imported == len(before) and not rep.errors
    after = read_layer(tx, layer)
    # a Shapefile cannot hold the grid staff list (JSON longer than 254 bytes): it is left out
    _compare(before, after, ignore=("staff",) if fmt == "zip" else ())
    meta = tx.execute("SELECT synthetic, source FROM dataset_meta WHERE layer = %s", [layer]).fetchone()
    assert meta["source"].startswith("imported from")


def test_road_network_round_trip_rebuilds_nodes(tx, tmp_path):
    from geodata.io import export_layer, import_layer, read_layer

    before = read_layer(tx, "road_edges")
    nodes_before = tx.execute("SELECT count(*) AS n FROM road_node").fetchone()["n"]
    path = tmp_path / "roads.gpkg"
    export_layer(tx, "road_edges", path)
    tx.execute("DELETE FROM road_coverage")
    rep = import_layer(tx, "road_edges", path, settings=SETTINGS, replace=True)
    assert rep.rows_imported == len(before)
    after = read_layer(tx, "road_edges")
    _compare(before, after, ignore=("source", "target", "length_m"))
    lb = dict(zip(shapely.to_wkb(before.geometry.to_numpy()), before["length_m"], strict=True))
    la = dict(zip(shapely.to_wkb(after.geometry.to_numpy()), after["length_m"], strict=True))
    assert lb.keys() == la.keys()
    assert max(abs(lb[k] - la[k]) for k in lb) < 1e-3
    # the same junctions: edges meet at shared nodes again
    assert tx.execute("SELECT count(*) AS n FROM road_node").fetchone()["n"] == nodes_before
    bad = tx.execute("SELECT count(*) AS n FROM road_edge e JOIN road_node s ON s.id = e.source "
                     "WHERE NOT ST_Equals(s.geom, ST_StartPoint(e.geom))").fetchone()["n"]
    assert bad == 0


def test_import_reprojects_to_wgs84(tx, tmp_path):
    from geodata.io import export_layer, import_layer, read_layer

    before = read_layer(tx, "villages")
    src = tmp_path / "v.gpkg"
    export_layer(tx, "villages", src)
    gdf = pyogrio.read_dataframe(src).to_crs(4548)
    metric = tmp_path / "v4548.gpkg"
    pyogrio.write_dataframe(gdf, metric)
    assert pyogrio.read_info(metric)["crs"] == "EPSG:4548"
    rep = import_layer(tx, "villages", metric, settings=SETTINGS, replace=True)
    assert rep.source_crs == "EPSG:4548"
    after = read_layer(tx, "villages").sort_values("code").reset_index(drop=True)
    b = before.sort_values("code").reset_index(drop=True)
    d = shapely.distance(b.geometry.to_numpy(), after.geometry.to_numpy())
    assert d.max() < 1e-8  # degrees: well under a millimetre


def test_file_without_crs_is_refused_unless_given(tx, tmp_path):
    from geodata.io import ImportFailed, export_layer, import_layer

    path = tmp_path / "villages.csv"
    export_layer(tx, "villages", path)
    path.with_suffix(".prj").unlink()
    n0 = tx.execute("SELECT count(*) AS n FROM village").fetchone()["n"]
    with pytest.raises(ImportFailed) as e:
        import_layer(tx, "villages", path, settings=SETTINGS, replace=True)
    assert "no coordinate reference system" in e.value.reason and "--crs" in e.value.reason
    assert tx.execute("SELECT count(*) AS n FROM village").fetchone()["n"] == n0
    rep = import_layer(tx, "villages", path, crs="EPSG:4326", settings=SETTINGS, replace=True)
    assert rep.rows_imported == n0


def _villages_file(tmp_path, features):
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


def _village(code, lon=117.7, lat=36.9, **props):
    p = {"code": code, "name": "测试村", "town_code": "371681102", "population": 100, **props}
    return {"type": "Feature", "properties": p, "geometry": {"type": "Point", "coordinates": [lon, lat]}}


def test_bad_rows_are_reported_and_nothing_is_imported(tx, tmp_path):
    from geodata.io import ImportFailed, import_layer

    n0 = tx.execute("SELECT count(*) AS n FROM village").fetchone()["n"]
    path = _villages_file(tmp_path, [
        _village("T-1"),
        _village("T-2", population=-5),
        _village("T-3", lon=120.5),                       # outside the service area
        _village("T-4", town_code="999"),                 # no such town
        _village("T-1"),                                   # repeats row 1
    ])
    with pytest.raises(ImportFailed) as e:
        import_layer(tx, "villages", path, settings=SETTINGS)
    rows = {(x["row"], x["field"]) for x in e.value.errors}
    assert rows == {(2, "population"), (3, "geometry"), (4, "town_code"), (5, "code")}
    assert "4 of 5 row(s) are invalid" in e.value.reason
    assert tx.execute("SELECT count(*) AS n FROM village").fetchone()["n"] == n0
    # skipping bad rows imports the good one
    rep = import_layer(tx, "villages", path, settings=SETTINGS, all_or_nothing=False)
    assert rep.rows_imported == 1 and len(rep.errors) == 4


def test_invalid_geometry_is_reported_with_its_row(tx, tmp_path):
    from geodata.io import ImportFailed, import_layer

    org = tx.execute("SELECT id FROM organisation WHERE kind = 'station' LIMIT 1").fetchone()["id"]
    bowtie = {"type": "Polygon", "coordinates": [[[117.70, 36.90], [117.72, 36.92], [117.72, 36.90], [117.70, 36.92],
                                                   [117.70, 36.90]]]}
    square = {"type": "Polygon", "coordinates": [[[117.70, 36.90], [117.71, 36.90], [117.71, 36.91], [117.70, 36.91],
                                                   [117.70, 36.90]]]}
    path = tmp_path / "grids.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": "TG-1", "name": "a", "organisation_id": org}, "geometry": square},
        {"type": "Feature", "properties": {"code": "TG-2", "name": "b", "organisation_id": org}, "geometry": bowtie},
    ]}), encoding="utf-8")
    n0 = tx.execute("SELECT count(*) AS n FROM grid").fetchone()["n"]
    with pytest.raises(ImportFailed) as e:
        import_layer(tx, "grids", path, settings=SETTINGS)
    assert [(x["row"], x["field"]) for x in e.value.errors] == [(2, "geometry")]
    assert "invalid geometry" in e.value.errors[0]["reason"].lower() or "self" in e.value.errors[0]["reason"].lower()
    assert tx.execute("SELECT count(*) AS n FROM grid").fetchone()["n"] == n0


def test_wrong_columns_are_refused(tx, tmp_path):
    from geodata.io import ImportFailed, import_layer

    with pytest.raises(ImportFailed) as e:
        import_layer(tx, "villages", _villages_file(tmp_path, [_village("T-9", colour="red")]), settings=SETTINGS)
    assert "unknown column" in e.value.reason and "colour" in e.value.reason
    f = _village("T-9")
    del f["properties"]["name"]
    with pytest.raises(ImportFailed) as e:
        import_layer(tx, "villages", _villages_file(tmp_path, [f]), settings=SETTINGS)
    assert "missing required column" in e.value.reason and "name" in e.value.reason
    with pytest.raises(ImportFailed) as e:
        import_layer(tx, "villages", tmp_path / "nothing.geojson", settings=SETTINGS)
    assert "no such file" in e.value.reason


def test_geodata_does_not_import_flask():
    import subprocess
    import sys

    code = ("import sys, geodata.io, geodata.demo, geodata.world, geodata.roads, geodata.history; "
            "from gisapp.core import catalog, geometry, config; sys.exit('flask' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
