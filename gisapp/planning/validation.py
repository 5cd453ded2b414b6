"""Validate a draft: what stands between it and publication (gaps, overlaps, slivers, cut grids, ...)."""

from typing import Any

import psycopg

from .drafts import ISSUE_CODES, get_plan_row

# --- validation -------------------------------------------------------------------------------

# GEOS' reasons for an invalid geometry (ST_IsValidReason), as a planner reads them in Chinese
_INVALID_ZH = {"Ring Self-intersection": "边界环自相交", "Self-intersection": "边界自相交",
               "Too few points": "点数过少", "Hole lies outside shell": "内环位于外环之外",
               "Nested shells": "外环相互嵌套", "Nested holes": "内环相互嵌套",
               "Interior is disconnected": "内部不连通", "Duplicate Rings": "重复的环",
               "Invalid Coordinate": "坐标无效", "Ring is not closed": "环未闭合"}


def _invalid_zh(reason: str | None) -> str:
    for en, zh in _INVALID_ZH.items():
        if (reason or "").startswith(en):
            return zh
    return "图形不合法"


def _msg(code: str, **kw) -> tuple[str, str]:
    m2 = kw.get("m2")
    size_zh = f"{m2:,.0f} 平方米" if m2 is not None else ""
    size_en = f"{m2:,.0f} m²" if m2 is not None else ""
    a, b = kw.get("a", ""), kw.get("b", "")
    return {
        "invalid": (f"「{a}」的几何图形无效（{_invalid_zh(kw.get('reason'))}），请修改边界",
                    f"{a}: invalid geometry ({kw.get('reason')}); redraw the boundary"),
        "empty": (f"「{a}」没有范围", f"{a} has no area"),
        "overlap": (f"「{a}」与「{b}」重叠 {size_zh}", f"{a} and {b} overlap by {size_en}"),
        "gap": (f"县域内有 {size_zh} 未划入任何辖区（空隙）", f"{size_en} of the county belong to no area (gap)"),
        "sliver_part": (f"「{a}」有一块仅 {size_zh} 的碎片", f"{a} has a sliver part of only {size_en}"),
        "sliver_gap": (f"县域内有 {size_zh} 的细小空隙", f"a sliver gap of {size_en} belongs to no area"),
        "sliver_overlap": (f"「{a}」与「{b}」有 {size_zh} 的细小重叠", f"{a} and {b} overlap in a sliver of {size_en}"),
        "outside": (f"「{a}」有 {size_zh} 超出县界", f"{a} has {size_en} outside the county"),
        "grid_cut": (f"警格「{a}」被辖区边界分割（{b}）", f"grid {a} is cut by a boundary ({b})"),
        "no_county": ("没有县界（county 图层为空或行政区划代码不符），无法判断辖区是否覆盖全县；请先恢复县界",
                      f"there is no county outline (adcode {kw.get('adcode')}): nothing can be checked against "
                      "the county; restore the outline first"),
    }[code]


def _issue(code: str, msg_key: str | None, geometry: Any, **kw) -> dict:
    zh, en = _msg(msg_key or code, **kw)
    out = {"code": code, "severity": "error", "message_zh": zh, "message_en": en, "geometry": geometry}
    for k in ("area_ids", "m2", "grid_id", "grid_code", "grid_name", "detail", "reason"):
        if k in kw and kw[k] is not None:
            out[k] = round(kw[k], 3) if k == "m2" else kw[k]
    return out


def validate_plan(conn: psycopg.Connection, plan_id: int, settings) -> dict:
    """Report what keeps a draft from tiling the county, each issue with its location.

    Checks, in the metric CRS ``settings.metric_srid``: invalid geometry, areas without
    geometry, overlaps, gaps, slivers (parts, gaps and overlaps smaller than
    ``plan_sliver_area_m2``), parts outside the county, and (station plans) grids cut by a
    boundary. Differences below ``plan_tolerance_m2`` are numeric noise and ignored.

    Returns ``{"plan_id", "valid", "counts": {code: n}, "issues": [...]}``; each issue has
    ``code``, ``severity``, ``message_zh``, ``message_en``, ``geometry`` (GeoJSON, WGS84)
    and the ids of the areas it concerns.
    """
    plan = get_plan_row(conn, plan_id)
    p = {"p": plan_id, "srid": settings.metric_srid, "tol": settings.plan_tolerance_m2,
         "sliver": settings.plan_sliver_area_m2, "cut": settings.plan_grid_cut_min_m2,
         "adcode": settings.county_adcode}
    issues: list[dict] = []
    labels = {r["id"]: r["label"] for r in conn.execute(
        "SELECT a.id, coalesce(a.name, o.name, a.zone_code, o.code) AS label FROM plan_area a "
        "LEFT JOIN organisation o ON o.id = a.organisation_id WHERE a.plan_id = %s", [plan_id])}
    for r in conn.execute(
            """SELECT id, ST_IsValidReason(geom) AS reason,
                      ST_AsGeoJSON(coalesce(location(ST_IsValidDetail(geom)), ST_PointOnSurface(geom)), 7)::json AS loc
               FROM plan_area WHERE plan_id = %(p)s AND geom IS NOT NULL AND NOT ST_IsValid(geom)""", p):
        issues.append(_issue("invalid", None, r["loc"], a=labels[r["id"]], reason=r["reason"], area_ids=[r["id"]]))
    for r in conn.execute("SELECT id FROM plan_area WHERE plan_id = %(p)s AND (geom IS NULL OR ST_IsEmpty(geom))", p):
        issues.append(_issue("empty", None, None, a=labels[r["id"]], area_ids=[r["id"]]))
    # Without the county outline no layout can be shown to cover the county: nothing validates.
    if conn.execute("SELECT NOT EXISTS (SELECT 1 FROM county WHERE adcode = %(adcode)s) AS x", p).fetchone()["x"]:
        issues.append(_issue("no_county", None, None, adcode=settings.county_adcode, area_ids=[]))
    # The rest works on valid copies in the metric CRS.
    base = """WITH a AS MATERIALIZED (
                  SELECT id, plan_clean_area(plan_metric(geom, %(srid)s), %(srid)s, %(tol)s) AS g
                  FROM plan_area WHERE plan_id = %(p)s AND geom IS NOT NULL AND NOT ST_IsEmpty(geom)),
              c AS MATERIALIZED (SELECT ST_MakeValid(plan_metric(ST_Union(geom), %(srid)s)) AS g FROM county
                                 WHERE adcode = %(adcode)s) """
    out_geo = "ST_AsGeoJSON(ST_Transform({}, 4326), 7)::json"
    for r in conn.execute(base + f"""
            SELECT a1.id AS a, a2.id AS b, ST_Area(d.geom) AS m2, {out_geo.format('d.geom')} AS loc
            FROM a a1 JOIN a a2 ON a1.id < a2.id AND ST_Intersects(a1.g, a2.g),
                 LATERAL ST_Dump(ST_CollectionExtract(ST_Intersection(a1.g, a2.g), 3)) d
            WHERE ST_Area(d.geom) > %(tol)s ORDER BY 1, 2""", p):
        sliver = r["m2"] < settings.plan_sliver_area_m2
        issues.append(_issue("sliver" if sliver else "overlap", "sliver_overlap" if sliver else "overlap", r["loc"],
                             a=labels[r["a"]], b=labels[r["b"]], m2=r["m2"], area_ids=[r["a"], r["b"]],
                             detail="overlap" if sliver else None))
    for r in conn.execute(base + f"""
            SELECT ST_Area(d.geom) AS m2, {out_geo.format('d.geom')} AS loc
            FROM (SELECT ST_Difference(c.g, coalesce((SELECT ST_Union(g) FROM a), ST_GeomFromText('POLYGON EMPTY', %(srid)s))) AS g
                  FROM c) u, LATERAL ST_Dump(ST_CollectionExtract(u.g, 3)) d
            WHERE ST_Area(d.geom) > %(tol)s ORDER BY 1 DESC""", p):
        sliver = r["m2"] < settings.plan_sliver_area_m2
        issues.append(_issue("sliver" if sliver else "gap", "sliver_gap" if sliver else "gap", r["loc"],
                             m2=r["m2"], area_ids=[], detail="gap" if sliver else None))
    for r in conn.execute(base + f"""
            SELECT a.id, ST_Area(d.geom) AS m2, {out_geo.format('d.geom')} AS loc
            FROM a, LATERAL ST_Dump(a.g) d WHERE ST_Area(d.geom) < %(sliver)s ORDER BY 1""", p):
        issues.append(_issue("sliver", "sliver_part", r["loc"], a=labels[r["id"]], m2=r["m2"], area_ids=[r["id"]],
                             detail="part"))
    for r in conn.execute(base + f"""
            SELECT a.id, ST_Area(d.geom) AS m2, {out_geo.format('d.geom')} AS loc
            FROM a, c, LATERAL ST_Dump(ST_CollectionExtract(ST_Difference(a.g, c.g), 3)) d
            WHERE ST_Area(d.geom) > %(tol)s ORDER BY 1""", p):
        issues.append(_issue("outside", None, r["loc"], a=labels[r["id"]], m2=r["m2"], area_ids=[r["id"]]))
    if plan["kind"] == "station":
        for r in conn.execute(base + f"""
                , gr AS (SELECT id, code, name, ST_MakeValid(plan_metric(geom, %(srid)s)) AS g FROM grid),
                pieces AS (SELECT gr.id AS grid_id, a.id AS area_id, ST_Area(ST_Intersection(gr.g, a.g)) AS m2
                           FROM gr JOIN a ON ST_Intersects(gr.g, a.g)),
                cut AS (SELECT grid_id, array_agg(area_id ORDER BY m2 DESC) AS areas FROM pieces
                        WHERE m2 > %(cut)s GROUP BY grid_id HAVING count(*) >= 2)
                SELECT gr.id, gr.code, coalesce(gr.name, gr.code) AS label, cut.areas,
                       {out_geo.format('''ST_CollectionExtract(ST_Intersection(gr.g,
                           (SELECT ST_Union(ST_Boundary(a.g)) FROM a WHERE a.id = ANY(cut.areas))), 2)''')} AS loc
                FROM cut JOIN gr ON gr.id = cut.grid_id ORDER BY gr.id""", p):
            issues.append(_issue("grid_cut", None, r["loc"], a=r["label"],
                                 b=" / ".join(labels[x] for x in r["areas"]), area_ids=list(r["areas"]),
                                 grid_id=r["id"], grid_code=r["code"], grid_name=r["label"]))
    counts = {c: sum(1 for i in issues if i["code"] == c) for c in ISSUE_CODES}
    return {"plan_id": plan_id, "valid": not any(i["severity"] == "error" for i in issues),
            "counts": counts, "issues": issues}
