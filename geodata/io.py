"""Read and write any layer as GeoJSON, GeoPackage, zipped Shapefile or CSV with WKT.

Export writes the layer as it is in the database (EPSG:4326, current versions of
versioned layers). Import reads a file through pyogrio, reprojects it to EPSG:4326,
checks every row against the layer catalogue (gisapp.catalog) and the geometry rules
(gisapp.geometry), and writes all rows or none. Neither imports Flask.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import shapely
from psycopg import sql

from gisapp.core.audit import audit
from gisapp.core.catalog import LAYERS, Field, Layer
from gisapp.core.config import Settings
from gisapp.core.errors import GisappError, NotFound, ValidationError
from gisapp.core.features import check_staff, coerce
from gisapp.core.geometry import parse_geometry

FORMATS = {
    ".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG", ".zip": "ESRI Shapefile",
    ".shp": "ESRI Shapefile", ".csv": "CSV",
}
# Properties kept in side tables (exported as JSON text, imported into those tables).
VIRTUAL = {
    ("joint_zones", "member_ids"): (
        "ARRAY(SELECT m.organisation_id FROM joint_zone_member m WHERE m.joint_zone_id = t.id "
        "ORDER BY m.organisation_id)"),
    ("grids", "staff"): (
        "COALESCE((SELECT json_agg(json_build_object('person_name', s.person_name, 'role', s.role, "
        "'organisation_id', s.organisation_id, 'phone_masked', s.phone_masked) ORDER BY s.id) "
        "FROM grid_staff s WHERE s.grid_id = t.id), '[]'::json)"),
}
# Columns an import never writes: the database or the import derives them.
VERSION_COLS = ("version", "valid_from", "valid_to", "author", "plan_id")
DERIVED = {"road_edges": ("source", "target", "length_m")}
SHAPEFILE_TEXT_BYTES = 254
MAX_REPORTED_ERRORS = 200


class ImportFailed(GisappError):
    """An import that wrote nothing; ``errors`` lists each bad row with its number and reason."""

    status = 422

    def __init__(self, reason: str, errors: list[dict] | None = None, field: str | None = None):
        super().__init__(reason, field, errors=errors or [])
        self.errors = errors or []


@dataclass
class ImportReport:
    """What an import read, wrote and refused."""

    layer: str
    file: str
    rows_read: int = 0
    rows_imported: int = 0
    source_crs: str | None = None
    ignored_columns: list[str] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _layer(name: str) -> Layer:
    layer = LAYERS.get(name)
    if layer is None:
        raise NotFound(f"no layer {name!r}; layers are {', '.join(LAYERS)}", "layer")
    return layer


def driver_for(path: str | Path) -> str:
    """The OGR driver for a file name (by its extension)."""
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise ValidationError(f"unknown file type {ext!r}; use one of {', '.join(sorted(FORMATS))}", "file")
    return FORMATS[ext]


def shapefile_names(layer: Layer) -> dict[str, str]:
    """Column names of ``layer`` shortened to the 10 characters a Shapefile allows (stable, unique)."""
    out: dict[str, str] = {}
    used: set[str] = {"id"}
    for f in layer.fields:
        short = f.name[:10]
        k = 1
        while short in used:
            short = f"{f.name[:8]}_{k}"
            k += 1
        used.add(short)
        out[f.name] = short
    return out


# --- export -------------------------------------------------------------------------------------

def read_layer(conn: psycopg.Connection, layer_name: str, *, history: bool = False):
    """Return the layer's rows as a GeoDataFrame in EPSG:4326 (current versions unless ``history``)."""
    import geopandas as gpd
    import pandas as pd

    layer = _layer(layer_name)
    cols: list[sql.Composable] = [sql.SQL("t.id")]
    for f in layer.fields:
        v = VIRTUAL.get((layer.name, f.name))
        if v:
            cols.append(sql.SQL(v + " AS {}").format(sql.Identifier(f.name)))  # fixed SQL text
        else:
            cols.append(sql.SQL("t.{}").format(sql.Identifier(f.name)))
    cols.append(sql.SQL("ST_AsBinary(t.{}) AS __wkb").format(sql.Identifier(layer.geom_col)))
    q = sql.SQL("SELECT {} FROM {} t").format(sql.SQL(", ").join(cols), sql.Identifier(layer.table))
    if layer.versioned and not history:
        q += sql.SQL(" WHERE t.valid_from <= now() AND (t.valid_to IS NULL OR t.valid_to > now())")
    q += sql.SQL(" ORDER BY t.id")
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        rows = cur.execute(q).fetchall()
    data: dict[str, Any] = {"id": pd.array([r["id"] for r in rows], dtype="Int64")}
    for f in layer.fields:
        vals = [r[f.name] for r in rows]
        data[f.name] = _export_column(f, vals)
    geoms = shapely.from_wkb([bytes(r["__wkb"]) if r["__wkb"] is not None else None for r in rows])
    return gpd.GeoDataFrame(data, geometry=geoms, crs="EPSG:4326")


def _export_column(f: Field, vals: list) -> Any:
    import pandas as pd

    if f.type == "int":
        return pd.array(vals, dtype="Int64")
    if f.type == "float":
        return np.array([np.nan if v is None else float(v) for v in vals], dtype=float)
    if f.type == "bool":
        if any(v is None for v in vals):
            return pd.array(vals, dtype="boolean")
        return np.array(vals, dtype=bool)
    if f.type == "timestamp":
        return np.array([v.astimezone(UTC).isoformat() if v is not None else None for v in vals],
                        dtype=object)
    if f.type in ("text[]", "int[]", "json"):
        return np.array([json.dumps(v, ensure_ascii=False) if v is not None else None for v in vals], dtype=object)
    return np.array(vals, dtype=object)


def export_layer(conn: psycopg.Connection, layer_name: str, path: str | Path, *, history: bool = False) -> dict:
    """Write a layer to ``path`` (format from the extension: .geojson, .gpkg, .zip, .shp, .csv).

    Returns
    -------
    dict
        ``{"layer", "file", "driver", "rows", "dropped_columns"}``.
    """
    import pyogrio

    layer = _layer(layer_name)
    path = Path(path)
    driver = driver_for(path)
    gdf = read_layer(conn, layer.name, history=history)
    dropped: list[str] = []
    path.parent.mkdir(parents=True, exist_ok=True)
    if driver == "ESRI Shapefile":
        # Shapefile: 10-character names, text of at most 254 bytes; side-table JSON does not fit
        for f in layer.fields:
            if f.type == "json":
                gdf = gdf.drop(columns=[f.name])
                dropped.append(f.name)
        for f in layer.fields:
            if f.name in gdf.columns and gdf[f.name].dtype == object:
                too_long = [i for i, v in enumerate(gdf[f.name]) if isinstance(v, str)
                            and len(v.encode("utf-8")) > SHAPEFILE_TEXT_BYTES]
                if too_long:
                    raise ValidationError(
                        f"{len(too_long)} value(s) of {f.name} are longer than the {SHAPEFILE_TEXT_BYTES} bytes a "
                        "Shapefile can hold (first in feature id "
                        f"{int(gdf['id'].iloc[too_long[0]])}); export to GeoPackage instead", f.name)
        gdf = gdf.rename(columns=shapefile_names(layer))
        _write_shapefile(gdf, path, layer.name)
    elif driver == "CSV":
        _write_csv(gdf, path)
    elif driver == "GPKG":
        _remove(path)
        pyogrio.write_dataframe(gdf, path, driver="GPKG", layer=layer.name)
    else:
        _remove(path)
        # RFC 7946 (WGS84 lon/lat, counter-clockwise outer rings), full double precision
        pyogrio.write_dataframe(gdf, path, driver="GeoJSON", layer_options={
            "RFC7946": "YES", "WRITE_NAME": "NO", "COORDINATE_PRECISION": "17"})
    return {"layer": layer.name, "file": str(path), "driver": driver, "rows": len(gdf), "dropped_columns": dropped}


def _write_csv(gdf, path: Path) -> None:
    """CSV with the geometry as full-precision WKT in a first column named WKT (GDAL and QGIS read it),
    and the CRS in a .prj file beside it (GDAL's CSV driver reads that too)."""
    import pandas as pd

    wkt = [None if g is None else shapely.to_wkt(g, rounding_precision=-1) for g in gdf.geometry]
    df = pd.DataFrame(gdf.drop(columns=[gdf.geometry.name]))
    for c in df.columns:
        if df[c].dtype == bool:
            df[c] = df[c].map({True: "true", False: "false"})
    df.insert(0, "WKT", wkt)
    df.to_csv(path, index=False, encoding="utf-8", na_rep="")
    path.with_suffix(".prj").write_text(gdf.crs.to_wkt("WKT1_ESRI"), encoding="utf-8")


def _remove(path: Path) -> None:
    if path.exists():
        path.unlink()


def _write_shapefile(gdf, path: Path, name: str) -> None:
    import pyogrio

    if path.suffix.lower() == ".shp":
        for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
            _remove(path.with_suffix(ext))
        pyogrio.write_dataframe(gdf, path, driver="ESRI Shapefile", encoding="UTF-8")
        return
    with tempfile.TemporaryDirectory() as tmp:
        shp = Path(tmp) / f"{name}.shp"
        pyogrio.write_dataframe(gdf, shp, driver="ESRI Shapefile", encoding="UTF-8")
        _remove(path)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in sorted(Path(tmp).iterdir()):
                zf.write(p, p.name)


# --- import -------------------------------------------------------------------------------------

def read_file(path: str | Path, crs: str | None = None):
    """Read a geodata file into a GeoDataFrame in EPSG:4326.

    Raises
    ------
    ImportFailed
        The file cannot be read, has no CRS and none was given, or declares another CRS than ``crs``.
    """
    import pyogrio
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    path = Path(path)
    driver = driver_for(path)
    if not path.exists():
        raise ImportFailed(f"no such file: {path}", field="file")
    kw: dict[str, Any] = {}
    if driver == "CSV":
        kw = {"GEOM_POSSIBLE_NAMES": "WKT,wkt,geometry,geom,the_geom", "KEEP_GEOM_COLUMNS": "NO"}
    src = str(path)
    if path.suffix.lower() == ".zip":
        with zipfile.ZipFile(path) as zf:
            shps = [n for n in zf.namelist() if n.lower().endswith(".shp")]
        if len(shps) != 1:
            raise ImportFailed(f"the zip file must hold exactly one .shp file; it holds {len(shps)}", field="file")
        src = f"/vsizip/{path}/{shps[0]}"
    try:
        gdf = pyogrio.read_dataframe(src, **kw)
    except Exception as e:  # pyogrio raises several DataSourceError / DataLayerError kinds
        raise ImportFailed(f"cannot read {path.name}: {e}", field="file") from None
    given = None
    if crs:
        try:
            given = CRS.from_user_input(crs)
        except CRSError as e:
            raise ImportFailed(f"unknown CRS {crs!r}: {e}", field="crs") from None
    if gdf.crs is None:
        if given is None:
            raise ImportFailed(f"{path.name} has no coordinate reference system; give one with --crs "
                               "(for example --crs EPSG:4326 or EPSG:4548)", field="crs")
        gdf = gdf.set_crs(given)
    elif given is not None and not CRS.from_user_input(gdf.crs).equals(given, ignore_axis_order=True):
        raise ImportFailed(f"{path.name} declares {gdf.crs.to_string()}, not {crs}; leave out --crs to use the "
                           "file's own", field="crs")
    source_crs = gdf.crs.to_string()
    if not CRS.from_user_input(gdf.crs).equals(CRS.from_epsg(4326), ignore_axis_order=True):
        gdf = gdf.to_crs(4326)
    gdf.attrs["source_crs"] = source_crs
    return gdf


def _plain(v: Any) -> Any:
    """A value from a data frame as a plain Python value (None for missing)."""
    import pandas as pd

    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()]
    if isinstance(v, (list, tuple, dict)):
        return v
    if v is None or pd.isna(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    return v


def _to_field(f: Field, v: Any) -> Any:
    """Convert a file value to the JSON-like value the catalogue expects (before its checks)."""
    v = _plain(v)
    if v is None:
        return None
    t = f.type
    if t == "int":
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, str) and v.strip().lstrip("-").isdigit():
            return int(v.strip())
        return v
    if t == "float":
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                return v
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v
    if t == "bool":
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v in (0, 1):
            return bool(v)
        if isinstance(v, str) and v.strip().lower() in ("true", "false", "t", "f", "1", "0", "yes", "no"):
            return v.strip().lower() in ("true", "t", "1", "yes")
        return v
    if t == "text":
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return str(v)
        return v
    if t in ("text[]", "int[]", "json"):
        if isinstance(v, str):
            if v.strip() == "":
                return None
            try:
                v = json.loads(v)
            except ValueError:
                return v
        if isinstance(v, tuple):
            v = list(v)
        return v
    if t == "timestamp":
        if isinstance(v, datetime):
            return (v if v.tzinfo else v.replace(tzinfo=UTC)).isoformat()
        if isinstance(v, date):
            return datetime(v.year, v.month, v.day, tzinfo=UTC).isoformat()
        return v
    return v


def import_layer(conn: psycopg.Connection, layer_name: str, path: str | Path, *, crs: str | None = None,
                 settings=None, replace: bool = False, all_or_nothing: bool = True,
                 actor: str = "import") -> ImportReport:
    """Import a file into a layer, inside the caller's transaction.

    Parameters
    ----------
    conn : psycopg.Connection
        Dict-row connection; the caller commits (nothing is written when this raises).
    layer_name : str
        A layer of the catalogue (``gisapp.catalog.LAYERS``).
    path : path
        GeoJSON, GeoPackage, zipped Shapefile (.zip) or CSV with a WKT column.
    crs : str, optional
        The CRS of a file that declares none (e.g. "EPSG:4548"); the file's own CRS otherwise.
    settings : gisapp.config.Settings, optional
        Service extent and metric CRS.
    replace : bool
        Remove the layer's features first (versioned layers: retire the versions in force).
    all_or_nothing : bool
        Refuse the whole file when any row is invalid (default); otherwise skip bad rows.

    Raises
    ------
    ImportFailed
        With each invalid row's number (1 = first feature), field and reason.
    """
    from shapely.geometry import mapping

    if settings is None:
        settings = Settings.from_env()
    layer = _layer(layer_name)
    report = ImportReport(layer=layer.name, file=str(path))
    gdf = read_file(path, crs)
    report.source_crs = gdf.attrs.get("source_crs")
    report.rows_read = len(gdf)

    # columns: the catalogue's names, case-insensitively, or their Shapefile abbreviations
    names = {f.name.lower(): f.name for f in layer.fields}
    names.update({short.lower(): full for full, short in shapefile_names(layer).items()})
    skip = {"id", "fid", "ogc_fid", "wkt"} | {c.lower() for c in DERIVED.get(layer.name, ())}
    if layer.versioned:
        skip |= set(VERSION_COLS)
    colmap: dict[str, str] = {}
    unknown = []
    for c in gdf.columns:
        if c == gdf.geometry.name:
            continue
        low = c.lower()
        if low in skip:
            report.ignored_columns.append(c)
        elif low in names:
            colmap[c] = names[low]
        else:
            unknown.append(c)
    expected = [f.name for f in layer.fields if f.name not in VERSION_COLS and f.name not in DERIVED.get(layer.name, ())]
    if layer.versioned:
        expected = [n for n in expected if n not in VERSION_COLS]
    if unknown:
        raise ImportFailed(f"unknown column(s) for layer {layer.name}: {', '.join(unknown)}; "
                           f"expected some of: {', '.join(expected)}", field="columns")
    present = set(colmap.values())
    missing = [f.name for f in layer.fields if f.required and f.name not in present
               and f.name not in VERSION_COLS and f.name != "reason"]
    if missing:
        raise ImportFailed(f"missing required column(s) for layer {layer.name}: {', '.join(missing)}",
                           field="columns")

    # CSV and Shapefile cannot tell an empty text from NULL: an empty cell is NULL there
    blank_is_null = driver_for(path) in ("CSV", "ESRI Shapefile")
    rows: list[dict] = []
    errors: list[dict] = []
    geoms = gdf.geometry.to_numpy()
    records = gdf.drop(columns=[gdf.geometry.name]).to_dict("records")
    for i, rec in enumerate(records):
        n = i + 1
        values: dict[str, Any] = {}
        bad = False
        for col, fname in colmap.items():
            f = layer.field(fname)
            raw = rec[col]
            if blank_is_null and isinstance(raw, str) and raw == "":
                raw = None
            try:
                values[fname] = coerce(f, _to_field(f, raw))
            except GisappError as e:
                errors.append({"row": n, "field": fname, "reason": e.reason})
                bad = True
        g = geoms[i]
        geom = None
        if g is None or g.is_empty:
            if layer.geom_required:
                errors.append({"row": n, "field": "geometry", "reason": "is required (empty geometry)"})
                bad = True
        else:
            try:
                geom = parse_geometry(mapping(g), layer.geom_type, settings.service_extent)
            except GisappError as e:
                errors.append({"row": n, "field": "geometry", "reason": e.reason})
                bad = True
        if not bad:
            rows.append({"n": n, "values": values, "geom": geom})
    _check_refs(conn, layer, rows, errors)
    _check_unique(conn, layer, rows, errors, replace)
    errors.sort(key=lambda e: (e["row"], e["field"]))
    report.errors = errors[:MAX_REPORTED_ERRORS]
    bad_rows = {e["row"] for e in errors}
    if errors and all_or_nothing:
        raise ImportFailed(f"{len(bad_rows)} of {len(records)} row(s) are invalid; nothing was imported",
                           errors=report.errors)
    rows = [r for r in rows if r["n"] not in bad_rows]
    with conn.transaction():
        report.rows_imported = _write_rows(conn, layer, rows, settings, replace, actor, Path(path).name)
        audit(conn, {"username": actor}, "import", layer.name, None,
              {"file": Path(path).name, "rows": report.rows_imported, "crs": report.source_crs,
               "replace": replace, "skipped": sorted(bad_rows)})
        _record_meta(conn, layer, Path(path).name, report, replace)
    return report


def _check_refs(conn, layer: Layer, rows: list[dict], errors: list[dict]) -> None:
    for f in layer.fields:
        if not f.ref:
            continue
        table, _, col = f.ref.partition(".")
        col = col or "id"
        wanted = set()
        for r in rows:
            v = r["values"].get(f.name)
            wanted.update(v if isinstance(v, list) else ([v] if v is not None else []))
        if not wanted:
            continue
        found = {x[col] for x in conn.execute(
            sql.SQL("SELECT {c} FROM {t} WHERE {c} = ANY(%s)").format(c=sql.Identifier(col), t=sql.Identifier(table)),
            [sorted(wanted, key=str)]).fetchall()}
        for r in rows:
            v = r["values"].get(f.name)
            for x in (v if isinstance(v, list) else ([v] if v is not None else [])):
                if x not in found:
                    errors.append({"row": r["n"], "field": f.name, "reason": f"no {table} with {col} {x!r}"})
                    break
    if layer.name == "grids":
        for r in rows:
            if "staff" in r["values"] and r["values"]["staff"] is not None:
                try:
                    r["values"]["staff"] = check_staff(r["values"]["staff"])
                except GisappError as e:
                    errors.append({"row": r["n"], "field": "staff", "reason": e.reason})


def _check_unique(conn, layer: Layer, rows: list[dict], errors: list[dict], replace: bool) -> None:
    """Codes must be unique within the file and (unless replacing) against the table."""
    key = "adcode" if layer.name == "county" else "code"
    if layer.field(key) is None or layer.versioned:
        return
    seen: dict[Any, int] = {}
    for r in rows:
        v = r["values"].get(key)
        if v is None:
            continue
        if v in seen:
            errors.append({"row": r["n"], "field": key, "reason": f"{v!r} repeats row {seen[v]}"})
        else:
            seen[v] = r["n"]
    if replace or not seen:
        return
    taken = {x[key] for x in conn.execute(
        sql.SQL("SELECT {k} FROM {t} WHERE {k} = ANY(%s)").format(k=sql.Identifier(key), t=sql.Identifier(layer.table)),
        [list(seen)]).fetchall()}
    for v in sorted(taken, key=str):
        errors.append({"row": seen[v], "field": key, "reason": f"{v!r} already exists in {layer.name}"})


def _write_rows(conn, layer: Layer, rows: list[dict], settings, replace: bool, actor: str, fname: str) -> int:
    table = sql.Identifier(layer.table)
    if replace:
        if layer.versioned:
            conn.execute(sql.SQL("UPDATE {} SET valid_to = now() WHERE valid_to IS NULL").format(table))
        else:
            try:
                with conn.transaction():
                    conn.execute(sql.SQL("DELETE FROM {}").format(table))
                    if layer.name == "road_edges":
                        conn.execute("DELETE FROM road_node n WHERE NOT EXISTS (SELECT 1 FROM road_edge e "
                                     "WHERE e.source = n.id OR e.target = n.id)")
            except psycopg.errors.ForeignKeyViolation as e:
                raise ImportFailed(f"cannot replace {layer.name}: other data still refers to it "
                                   f"({e.diag.message_detail or e})", field="replace") from None
    if layer.name == "road_edges":
        _road_edge_nodes(conn, rows, settings)
    has_synthetic = layer.field("synthetic") is not None
    if not rows:
        return 0
    prepared = []
    for r in rows:
        values = dict(r["values"])
        virtual = {k: values.pop(k) for k in list(values) if (layer.name, k) in VIRTUAL}
        if has_synthetic and "synthetic" not in values:
            values["synthetic"] = False
        if layer.versioned:
            key_vals = [values.get(k) for k in layer.version_key]
            cond = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in layer.version_key)
            conn.execute(sql.SQL("UPDATE {} SET valid_to = now() WHERE valid_to IS NULL AND ").format(table) + cond,
                         key_vals)
            prev = conn.execute(sql.SQL("SELECT coalesce(max(version), 0) AS v FROM {} WHERE ").format(table) + cond,
                                key_vals).fetchone()["v"]
            values["version"] = prev + 1
            values["author"] = actor
            values["reason"] = values.get("reason") or f"imported from {fname}"
        prepared.append((values, virtual, r["geom"]))
    # one COPY (not a statement per row: the layers' statement triggers would fire per row)
    cols = list(prepared[0][0])
    ids = _next_ids(conn, layer.table, len(prepared))
    ewkb = [None if g is None else shapely.to_wkb(
        shapely.set_srid(shapely.MultiPolygon([g]) if layer.geom_type.startswith("Multi") and g.geom_type == "Polygon"
                         else g, 4326), hex=True, include_srid=True) for _, _, g in prepared]
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
        table, sql.SQL(", ").join(map(sql.Identifier, ["id", *cols, layer.geom_col])))
    with conn.cursor() as cur, cur.copy(stmt) as cp:
        for fid, (v, _, _g), g in zip(ids, prepared, ewkb, strict=True):
            cp.write_row([fid, *[json.dumps(v[c], ensure_ascii=False) if layer.field(c).type == "json"
                                 else v[c] for c in cols], g])
    members, staff = [], []
    for fid, (values, virtual, _g) in zip(ids, prepared, strict=True):
        if layer.name == "joint_zones":
            centre = values["centre_org_id"]
            for m in sorted(set(virtual.get("member_ids") or []) | {centre}):
                members.append((fid, m, "centre" if m == centre else "member"))
        elif layer.name == "grids":
            for st in virtual.get("staff") or []:
                staff.append((fid, st["person_name"], st["role"], st["organisation_id"], st["phone_masked"]))
    with conn.cursor() as cur:
        if members:
            cur.executemany("INSERT INTO joint_zone_member (joint_zone_id, organisation_id, role) VALUES (%s, %s, %s)",
                            members)
        if staff:
            cur.executemany("INSERT INTO grid_staff (grid_id, person_name, role, organisation_id, phone_masked) "
                            "VALUES (%s, %s, %s, %s, %s)", staff)
    return len(ids)


def _next_ids(conn, table: str, n: int) -> list[int]:
    """Reserve ``n`` ids from the serial sequence of ``table``."""
    return [r["id"] for r in conn.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) AS id FROM generate_series(1, %s)", [table, n]).fetchall()]


def _road_edge_nodes(conn, rows: list[dict], settings) -> None:
    """Give each imported road edge its end nodes (an existing node within 0.5 m, else a new one) and length."""
    from pyproj import Transformer
    from scipy.spatial import cKDTree

    if not rows:
        return
    tf = Transformer.from_crs(4326, settings.metric_srid, always_xy=True)
    ends = np.array([[r["geom"].coords[0], r["geom"].coords[-1]] for r in rows]).reshape(-1, 2)
    ex, ey = tf.transform(ends[:, 0], ends[:, 1])
    exy = np.column_stack([ex, ey])
    existing = conn.execute("SELECT id, ST_X(geom) AS x, ST_Y(geom) AS y FROM road_node").fetchall()
    node_id = np.full(len(exy), -1, dtype=np.int64)
    if existing:
        nx, ny = tf.transform(np.array([e["x"] for e in existing]), np.array([e["y"] for e in existing]))
        d, k = cKDTree(np.column_stack([nx, ny])).query(exy, distance_upper_bound=0.5)
        hit = np.isfinite(d)
        node_id[hit] = np.array([e["id"] for e in existing])[k[hit]]
    todo = np.flatnonzero(node_id < 0)
    if len(todo):
        groups = cKDTree(exy[todo]).query_ball_point(exy[todo], r=0.5)
        rep = np.array([min(g) for g in groups])
        firsts = np.unique(rep)
        new_ids = _next_ids(conn, "road_node", len(firsts))
        with conn.cursor() as cur, cur.copy("COPY road_node (id, geom) FROM STDIN") as cp:
            for nid, j in zip(new_ids, firsts.tolist(), strict=True):
                lon, lat = ends[todo[j]]
                cp.write_row([nid, f"SRID=4326;POINT({float(lon)!r} {float(lat)!r})"])
        lookup = dict(zip(firsts.tolist(), new_ids, strict=True))
        node_id[todo] = [lookup[j] for j in rep.tolist()]
    for i, r in enumerate(rows):
        g = r["geom"]
        c = np.asarray(g.coords)
        x, y = tf.transform(c[:, 0], c[:, 1])
        r["values"]["source"] = int(node_id[2 * i])
        r["values"]["target"] = int(node_id[2 * i + 1])
        r["values"]["length_m"] = float(shapely.length(shapely.linestrings(np.column_stack([x, y]))))


def _record_meta(conn, layer: Layer, fname: str, report: ImportReport, replace: bool) -> None:
    params = {"file": fname, "rows": report.rows_imported, "source_crs": report.source_crs, "replace": replace}
    if replace:
        conn.execute(
            "INSERT INTO dataset_meta (layer, source, synthetic, params) VALUES (%s, %s, false, %s) "
            "ON CONFLICT (layer) DO UPDATE SET source = EXCLUDED.source, synthetic = false, licence = NULL, "
            "attribution = NULL, params = EXCLUDED.params, loaded_at = now()",
            [layer.name, f"imported from {fname}", json.dumps(params, ensure_ascii=False)])
    else:
        conn.execute(
            "INSERT INTO dataset_meta (layer, source, synthetic, params) VALUES (%s, %s, false, %s) "
            "ON CONFLICT (layer) DO UPDATE SET source = dataset_meta.source || '; plus ' || %s, "
            "params = dataset_meta.params || jsonb_build_object('imports', "
            "coalesce(dataset_meta.params -> 'imports', '[]'::jsonb) || %s::jsonb), loaded_at = now()",
            [layer.name, f"imported from {fname}", json.dumps(params, ensure_ascii=False), f"imported from {fname}",
             json.dumps([params], ensure_ascii=False)])
