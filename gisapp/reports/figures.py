"""The report figures, computed from ``dispatch_leg`` and ``incident`` with the one definition of
gisapp.dispatch.sla (its SQL fragments: the legs counted, the clock measures, met / decided).

Legs belong to the local month of their dispatch; incidents to the local day of their report;
incidents merged into another or cancelled are not counted. Rates are None when nothing is
decided (a period without data says so: ``empty``), never a division by zero.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

from gisapp.dispatch.rules import load_rules
from gisapp.dispatch.sla import (
    ARRIVAL_S,
    CLOCK_DECIDED,
    CLOCK_MET,
    CLOCK_OVERDUE,
    CLOCKS,
    LEG_MEASURES,
    LEGS_COUNTED,
    MEDIATION_DECIDED,
    MEDIATION_MET,
    OPEN_LEG,
    SLA_COUNTS,
    rate,
    sla_metrics,
    sla_params,
)

from .filters import Filters, local_midnight, month_end, parse_month, shift_month

CLOCK_NAMES = tuple(c[0] for c in CLOCKS)
# An incident counted in the reports (not merged into another, not cancelled).
INCIDENTS_COUNTED = "i.status NOT IN ('merged', 'cancelled')"
# Any clock of a leg decided and missed (late or overdue).
ANY_MISS = " OR ".join(f"(({CLOCK_DECIDED[c]}) AND NOT coalesce({CLOCK_MET[c]}, false))" for c in CLOCK_NAMES)
ANY_OVERDUE = " OR ".join(f"({CLOCK_OVERDUE[c]})" for c in CLOCK_NAMES)
MEASURES = ("all", "sign_off_miss", "first_feedback_miss", "close_miss", "any_miss", "overdue", "accident",
            "mediated")


def tune(conn: psycopg.Connection) -> None:
    """Plan the report queries for data held in memory (index probes cost about a sequential read):
    a month's legs then join their incidents by index instead of scanning every incident."""
    conn.execute("SET LOCAL random_page_cost = 1.1")


def params(settings, f: Filters, **more) -> dict[str, Any]:
    rules = load_rules(settings)
    p = sla_params(settings, f.as_of)
    p.update({"start": f.start, "end": f.end, "org": f.organisation_id, "channel": f.channel, "types": f.types,
              "tz": f.tz, "acc": rules.types_of_category("accident"), "med": rules.mediation_outcome})
    p.update(more)
    return p


def _incident_filter(alias: str = "i") -> str:
    """Channel and type filters on incident ``alias``."""
    return (f"(%(channel)s::text IS NULL OR {alias}.channel = %(channel)s::text) "
            f"AND (%(types)s::text[] IS NULL OR {alias}.type = ANY(%(types)s::text[]))")


def _leg_incident_filter() -> str:
    """Channel and type filters on the incident columns a leg carries (migration 0140)."""
    return ("(%(channel)s::text IS NULL OR l.incident_channel = %(channel)s::text) "
            "AND (%(types)s::text[] IS NULL OR l.incident_type = ANY(%(types)s::text[]))")


def _legs_from(f: Filters, org: bool = True, incident: bool = False) -> str:
    """FROM ... WHERE of the legs counted in the period with the filters. A leg carries its
    incident's type, channel and road area (migration 0140); ``incident`` joins incident ``i`` for
    the other columns (its grid)."""
    sql = "FROM dispatch_leg l " + ("JOIN incident i ON i.id = l.incident_id " if incident else "")
    sql += "WHERE " + LEGS_COUNTED + " AND " + _leg_incident_filter()
    if org:
        sql += " AND (%(org)s::bigint IS NULL OR l.organisation_id = %(org)s::bigint)"
    return sql


def _incident_org() -> str:
    """Incident ``i`` belongs to %(org)s: its station or traffic owner, or one of its legs."""
    return ("(%(org)s::bigint IS NULL OR i.station_org_id = %(org)s::bigint OR i.traffic_org_id = %(org)s::bigint "
            "OR EXISTS (SELECT 1 FROM dispatch_leg ol WHERE ol.incident_id = i.id "
            "AND ol.organisation_id = %(org)s::bigint))")


def _incidents_where() -> str:
    return (f"i.reported_at >= %(start)s AND i.reported_at < %(end)s AND i.reported_at <= %(as_of)s "
            f"AND {INCIDENTS_COUNTED} AND {_incident_filter()} AND {_incident_org()}")


def month_buckets(f: Filters) -> tuple[list[str], list]:
    """The local months of the period and the UTC instants they start at (the first: the period's
    start): ``width_bucket(l.dispatched_at, %(bounds)s)`` numbers a leg's month from 1, with no
    per-row time-zone conversion."""
    names = f.months
    bounds = [f.start] + [local_midnight(parse_month(m, "month"), f.tz) for m in names[1:]]
    return names, bounds


MONTH_OF_LEG = "width_bucket(l.dispatched_at, %(bounds)s::timestamptz[])"
MONTH_OF_INCIDENT = "width_bucket(i.reported_at, %(bounds)s::timestamptz[])"


def organisations(conn: psycopg.Connection) -> dict[int, dict]:
    return {r["id"]: r for r in conn.execute(
        "SELECT id, code, name, name_en, kind FROM organisation ORDER BY code").fetchall()}


def _rates(r: dict) -> dict[str, Any]:
    out = {"legs": r["legs"]}
    for c in CLOCK_NAMES:
        out[f"{c}_met"] = r[f"{c}_met"]
        out[f"{c}_decided"] = r[f"{c}_decided"]
        out[f"{c}_rate"] = rate(r[f"{c}_met"], r[f"{c}_decided"])
    out["overdue_now"] = r["overdue_now"]
    return out


# --- SLA per organisation and month ----------------------------------------------------------------

def sla_report(conn: psycopg.Connection, settings, f: Filters) -> dict[str, Any]:
    """SLA rates per organisation and local month with their counts and the legs overdue now; the
    county's over the whole period (every organisation, the same channel and type)."""
    names, bounds = month_buckets(f)
    p = params(settings, f, bounds=bounds)
    rows = conn.execute(
        "WITH l AS (SELECT l.organisation_id, l.status, " + MONTH_OF_LEG + " AS month, " + LEG_MEASURES + " "
        + _legs_from(f, org=False) + ") "
        "SELECT organisation_id, month, grouping(organisation_id) AS total, count(*) AS legs, " + SLA_COUNTS
        + ", count(*) FILTER (WHERE " + ANY_OVERDUE + ") AS overdue_now "
        "FROM l GROUP BY GROUPING SETS ((organisation_id, month), ())", p).fetchall()
    orgs = organisations(conn)
    out, county = [], None
    for r in rows:
        if r["total"]:
            county = r
            continue
        oid = r["organisation_id"]
        if f.organisation_id is not None and oid != f.organisation_id:
            continue
        if f.orgs is not None and oid not in f.orgs:
            continue
        o = orgs[oid]
        out.append({"organisation_id": oid, "code": o["code"], "name": o["name"], "name_en": o["name_en"],
                    "kind": o["kind"], "month": names[r["month"] - 1], **_rates(r)})
    out.sort(key=lambda x: (x["month"], x["code"]))
    county_row = {"code": None, "name": "全县", "name_en": "County", "kind": "county", "month": None,
                  **_rates(county)}
    return {"period": f.period_json(), "filters": f.filters_json(), "targets_s": _targets(settings),
            "rows": out, "county": county_row, "empty": county["legs"] == 0}


def _targets(settings) -> dict[str, float]:
    return {"sign_off": settings.sign_off_sla_s, "first_feedback": settings.first_feedback_sla_s,
            "close": settings.close_sla_s}


# --- overdue now -----------------------------------------------------------------------------------

def overdue_report(conn: psycopg.Connection, settings, f: Filters, limit: int = 5000) -> dict[str, Any]:
    """The legs of the period whose clock is overdue now: one row per leg and clock, latest first."""
    p = params(settings, f, limit=limit)
    parts = []
    for c, _col, setting in CLOCKS:
        start = "l.dispatched_at" if c == "sign_off" else "coalesce(l.first_dispatched_at, l.dispatched_at)"
        parts.append(
            f"SELECT id, incident_id, organisation_id, '{c}' AS clock, {start.replace('l.', 'x.')} "
            f"+ make_interval(secs => {getattr(settings, setting)}) AS due_at FROM x WHERE {CLOCK_OVERDUE[c]}")
    rows = conn.execute(
        "WITH x AS (SELECT l.id, l.incident_id, l.organisation_id, l.status, l.dispatched_at, "
        "l.first_dispatched_at, " + LEG_MEASURES + " " + _legs_from(f) + " AND l." + OPEN_LEG + "), o AS (" + " UNION ALL ".join(parts)
        + ") SELECT o.id AS leg_id, o.incident_id, i.code, o.organisation_id, g.name AS organisation, "
        "g.name_en AS organisation_en, o.clock, o.due_at, extract(epoch FROM %(as_of)s::timestamptz - o.due_at) "
        "AS late_s FROM o JOIN incident i ON i.id = o.incident_id JOIN organisation g ON g.id = o.organisation_id "
        "WHERE (%(orgs)s::bigint[] IS NULL OR o.organisation_id = ANY(%(orgs)s::bigint[])) "
        "ORDER BY late_s DESC, o.id, o.clock LIMIT %(limit)s",
        dict(p, orgs=sorted(f.orgs) if f.orgs is not None else None)).fetchall()
    return {"period": f.period_json(), "filters": f.filters_json(), "as_of": f.as_of.isoformat(),
            "rows": [dict(r, due_at=r["due_at"].isoformat(), late_s=round(float(r["late_s"]), 1)) for r in rows]}


# --- arrivals --------------------------------------------------------------------------------------

def _secs(v) -> float | None:
    return round(float(v), 1) if v is not None else None


def arrivals_report(conn: psycopg.Connection, settings, f: Filters) -> dict[str, Any]:
    """Arrival times (from dispatch to arrival, legs that arrived): mean, p50 and p90 by
    organisation, channel, incident type and road area (urban / rural: incident.road_area), and the
    county's (every organisation)."""
    p = params(settings, f, orgs=sorted(f.orgs) if f.orgs is not None else None)
    mine = ("(%(org)s::bigint IS NULL OR l.organisation_id = %(org)s::bigint) AND "
            "(%(orgs)s::bigint[] IS NULL OR l.organisation_id = ANY(%(orgs)s::bigint[]))")
    # one sort per group gives both percentiles; the county's (every organisation) separately only
    # when the figures are of some organisations
    scoped = f.organisation_id is not None or f.orgs is not None
    agg = ("count(*) FILTER (WHERE mine) AS n, avg(arr_s) FILTER (WHERE mine) AS mean_s, "
           "percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY arr_s) FILTER (WHERE mine) AS pct")
    if scoped:
        agg += (", count(*) AS county_n, avg(arr_s) AS county_mean_s, "
                "percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY arr_s) AS county_pct")
    else:
        mine = "true"
    rows = conn.execute(
        "WITH l AS (SELECT l.organisation_id, l.incident_channel AS channel, l.incident_type AS type, "
        "l.incident_road_area AS road_area, " + mine + " AS mine, "
        + ARRIVAL_S + " AS arr_s " + _legs_from(f, org=False)
        + " AND l.arrived_at IS NOT NULL) SELECT organisation_id, channel, type, road_area, "
        "grouping(organisation_id, channel, type, road_area) AS g, " + agg
        + " FROM l GROUP BY GROUPING SETS ((organisation_id), (channel), (type), (road_area), ())", p).fetchall()
    rules = load_rules(settings)
    orgs = organisations(conn)
    out: dict[str, list] = {"by_organisation": [], "by_channel": [], "by_type": [], "by_area": []}
    county = None
    area_label = {"urban": ("城区道路", "Urban roads"), "rural": ("农村道路", "Rural roads")}

    def row(key, label, label_en, r, prefix=""):
        pct = r[prefix + "pct"] or (None, None)
        return {"key": key, "label": label, "label_en": label_en, "n": r[prefix + "n"],
                "mean_s": _secs(r[prefix + "mean_s"]), "p50_s": _secs(pct[0]), "p90_s": _secs(pct[1])}

    for r in rows:
        g = r["g"]  # bits: organisation 8, channel 4, type 2, area 1 (1 = rolled up)
        if g == 15:
            county = row("county", "全县", "County", r, "county_" if scoped else "")
            continue
        if not r["n"]:
            continue
        if g == 7:
            o = orgs[r["organisation_id"]]
            out["by_organisation"].append(row(str(o["id"]), o["name"], o["name_en"], r))
        elif g == 11:
            out["by_channel"].append(row(r["channel"], r["channel"], r["channel"], r))
        elif g == 13:
            t = rules.types.get(r["type"])
            out["by_type"].append(row(r["type"], t.zh if t else r["type"], t.en if t else r["type"], r))
        elif g == 14 and r["road_area"] is not None:
            zh, en = area_label[r["road_area"]]
            out["by_area"].append(row(r["road_area"], zh, en, r))
    for k in out:
        out[k].sort(key=lambda x: x["key"])
    return {"period": f.period_json(), "filters": f.filters_json(), **out, "county": county,
            "area_rule": "road_area: urban when the road segment nearest to the incident is an urban street "
                         "(road_class 'urban'), else rural", "empty": (county or {}).get("n", 0) == 0}


# --- outcomes --------------------------------------------------------------------------------------

def outcomes_report(conn: psycopg.Connection, settings, f: Filters) -> dict[str, Any]:
    """Stations' and the accident section's share of accident incidents, the mediation rate and the
    outcomes of closed legs and of incidents closed without dispatch: sla_metrics itself."""
    m = sla_metrics(conn, settings, f.start, f.end, f.organisation_id, as_of=f.as_of, channel=f.channel,
                    types=f.types, outcomes_only=True)
    rules = load_rules(settings)

    def listed(counts: dict) -> list[dict]:
        out = []
        for code, n in counts.items():
            o = rules.outcomes.get(code)
            out.append({"code": code, "label": o.zh if o else code, "label_en": o.en if o else code, "n": n})
        return sorted(out, key=lambda x: (-x["n"], x["code"]))

    return {"period": f.period_json(), "filters": f.filters_json(),
            "accident_incidents": m["accident_incidents"],
            "accident_incidents_station": m["accident_incidents_station"],
            "accident_incidents_section": m["accident_incidents_section"],
            "station_share": m["station_share_of_accidents"],
            "accident_section_share": m["accident_section_share"],
            "mediated": m["counts"]["accident_mediated"],
            "mediation_decided": m["counts"]["accident_closed_with_outcome"],
            "mediation_rate": m["mediation_rate"],
            "outcomes": listed(m["outcomes"]),
            "closed_without_dispatch": listed(m["incidents_closed_without_dispatch"]),
            "empty": m["legs"] == 0 and m["accident_incidents"] == 0}


# --- trends ----------------------------------------------------------------------------------------

def trends_report(conn: psycopg.Connection, settings, f: Filters, months: int = 12) -> dict[str, Any]:
    """Monthly series of the last ``months`` local months up to the period's last month."""
    last = f"{f.last_day.year:04d}-{f.last_day.month:02d}"
    names = [shift_month(last, -k) for k in range(months - 1, -1, -1)]
    span = Filters(parse_month(names[0], "month"), month_end(parse_month(last, "month")), f.tz,
                   f.organisation_id, f.channel, f.type, f.orgs, f.as_of)
    _, bounds = month_buckets(span)
    p = params(settings, span, bounds=bounds)
    legs = {names[r["month"] - 1]: r for r in conn.execute(
        "WITH l AS (SELECT l.status, l.role, l.outcome, l.incident_type AS type, " + MONTH_OF_LEG + " AS month, " + ARRIVAL_S
        + " AS arr_s, " + LEG_MEASURES + " "
        + _legs_from(span) + ") SELECT month, count(*) AS legs, " + SLA_COUNTS
        + ", avg(arr_s) AS mean_arrival_s, count(*) FILTER (WHERE " + MEDIATION_MET + ") AS mediated, "
        "count(*) FILTER (WHERE " + MEDIATION_DECIDED + ") AS mediation_decided FROM l GROUP BY month", p)}
    incidents = {names[r["month"] - 1]: r["n"] for r in conn.execute(
        "SELECT " + MONTH_OF_INCIDENT + " AS month, count(*) AS n FROM incident i "
        "WHERE " + _incidents_where() + " GROUP BY 1", p)}
    series: dict[str, list] = {k: [] for k in ("sign_off_rate", "first_feedback_rate", "close_rate",
                                               "mean_arrival_s", "incidents", "legs", "mediation_rate")}
    for m in names:
        r = legs.get(m)
        for c in CLOCK_NAMES:
            series[f"{c}_rate"].append(rate(r[f"{c}_met"], r[f"{c}_decided"]) if r else None)
        series["mean_arrival_s"].append(_secs(r["mean_arrival_s"]) if r else None)
        series["mediation_rate"].append(rate(r["mediated"], r["mediation_decided"]) if r else None)
        series["legs"].append(r["legs"] if r else 0)
        series["incidents"].append(incidents.get(m, 0))
    return {"filters": f.filters_json(), "months": names, "series": series}


# --- heat map --------------------------------------------------------------------------------------

def heatmap_report(conn: psycopg.Connection, settings, f: Filters) -> dict[str, Any]:
    """Incidents of the period by local weekday (Monday 1) and hour."""
    p = params(settings, f)
    rows = conn.execute(
        "SELECT extract(isodow FROM i.reported_at AT TIME ZONE %(tz)s)::int AS d, "
        "extract(hour FROM i.reported_at AT TIME ZONE %(tz)s)::int AS h, count(*) AS n FROM incident i WHERE "
        + _incidents_where() + " GROUP BY 1, 2 ORDER BY 1, 2", p).fetchall()
    return {"period": f.period_json(), "filters": f.filters_json(), "hours": list(range(24)),
            "weekdays": list(range(1, 8)), "cells": [[r["d"], r["h"], r["n"]] for r in rows],
            "total": sum(r["n"] for r in rows), "empty": not rows}


# --- grids -----------------------------------------------------------------------------------------

def grids_report(conn: psycopg.Connection, settings, f: Filters) -> dict[str, Any]:
    """Patrol grids (of the organisation asked, a chief's own) with the period's incidents and the
    legs of their incidents that missed a clock (late or overdue), as GeoJSON."""
    p = params(settings, f, orgs=sorted(f.orgs) if f.orgs is not None else None)
    rows = conn.execute(
        "WITH inc AS (SELECT i.grid_id, count(*) AS n FROM incident i WHERE " + _incidents_where().replace(
            _incident_org(), "TRUE") + " AND i.grid_id IS NOT NULL GROUP BY 1), "
        "miss AS (SELECT grid_id, count(*) AS n FROM (SELECT i.grid_id, l.status, " + LEG_MEASURES + " "
        + _legs_from(f, org=False, incident=True) + " AND i.grid_id IS NOT NULL) x WHERE " + ANY_MISS
        + " GROUP BY 1) SELECT g.id, g.code, g.name, g.organisation_id, ST_AsGeoJSON(g.geom, 6) AS geom, "
        "coalesce(inc.n, 0) AS incidents, coalesce(miss.n, 0) AS sla_misses FROM grid g "
        "LEFT JOIN inc ON inc.grid_id = g.id LEFT JOIN miss ON miss.grid_id = g.id "
        "WHERE (%(org)s::bigint IS NULL OR g.organisation_id = %(org)s::bigint) "
        "AND (%(orgs)s::bigint[] IS NULL OR g.organisation_id = ANY(%(orgs)s::bigint[])) ORDER BY g.code", p
    ).fetchall()
    return {"type": "FeatureCollection", "period": f.period_json(), "filters": f.filters_json(), "features": [
        {"type": "Feature", "id": r["id"], "geometry": json.loads(r["geom"]) if r["geom"] else None,
         "properties": {"grid_id": r["id"], "code": r["code"], "name": r["name"],
                        "organisation_id": r["organisation_id"], "incidents": r["incidents"],
                        "sla_misses": r["sla_misses"]}} for r in rows]}


# --- the incidents behind a figure ------------------------------------------------------------------

def _measure_condition(settings, measure: str) -> tuple[str, dict]:
    """The SQL condition on incident ``i`` of a figure (see MEASURES and ``outcome:<code>``)."""
    from gisapp.core.errors import ValidationError

    legs = ("i.id IN (SELECT x.incident_id FROM (SELECT l.incident_id, l.status, l.role, l.outcome, li.type, "
            + LEG_MEASURES + " FROM dispatch_leg l JOIN incident li ON li.id = l.incident_id WHERE " + LEGS_COUNTED
            + " AND (%(org)s::bigint IS NULL OR l.organisation_id = %(org)s::bigint)) x WHERE {cond})")
    period = "i.reported_at >= %(start)s AND i.reported_at < %(end)s AND i.reported_at <= %(as_of)s"
    base = f"{INCIDENTS_COUNTED} AND {_incident_filter()}"
    if measure == "all":
        return f"{period} AND {base} AND {_incident_org()}", {}
    if measure == "accident":
        return f"{period} AND {base} AND i.type = ANY(%(acc)s) AND {_incident_org()}", {}
    for c in CLOCK_NAMES:
        if measure == f"{c}_miss":
            return f"{_incident_filter()} AND " + legs.format(
                cond=f"({CLOCK_DECIDED[c]}) AND NOT coalesce({CLOCK_MET[c]}, false)"), {}
    if measure == "any_miss":  # the grids' SLA misses
        return f"{_incident_filter()} AND " + legs.format(cond=ANY_MISS), {}
    if measure == "overdue":
        return f"{_incident_filter()} AND " + legs.format(cond=ANY_OVERDUE), {}
    if measure == "mediated":
        return f"{_incident_filter()} AND " + legs.format(cond=MEDIATION_MET), {}
    if measure.startswith("outcome:"):
        code = measure.split(":", 1)[1]
        if code not in load_rules(settings).outcomes:
            raise ValidationError(f"no outcome {code[:40]!r}", "measure", key="err.reports.measure",
                                  params={"value": measure[:60]})
        direct = (f"({period} AND i.status = 'closed' AND i.outcome = %(outcome)s AND NOT EXISTS (SELECT 1 FROM "
                  f"dispatch_leg dl WHERE dl.incident_id = i.id AND dl.status = 'closed') AND "
                  "(%(org)s::bigint IS NULL OR i.station_org_id = %(org)s::bigint "
                  "OR i.traffic_org_id = %(org)s::bigint))")
        return (f"{_incident_filter()} AND ({legs.format(cond='status = %(closed)s AND outcome = %(outcome)s')} "
                f"OR {direct})"), {"outcome": code, "closed": "closed"}
    raise ValidationError(f"measure must be one of {', '.join(MEASURES)} or outcome:<code>", "measure",
                          key="err.reports.measure", params={"value": measure[:60]})


def incidents_report(conn: psycopg.Connection, settings, f: Filters, measure: str, limit: int = 50,
                     offset: int = 0, weekday: int | None = None, hour: int | None = None,
                     grid: int | None = None) -> dict[str, Any]:
    """The incidents behind a figure, newest first, ``limit`` from ``offset``, and their total;
    ``weekday`` (ISO, 1 = Monday) and ``hour`` (local) narrow them to a cell of the heat map,
    ``grid`` to a grid of the choropleth (404 when there is no such grid)."""
    cond, extra = _measure_condition(settings, measure or "all")
    p = params(settings, f, **extra, limit=limit, offset=offset, weekday=weekday, hour=hour, grid=grid)
    if f.orgs is not None:  # a chief: their organisation's incidents only (the organisation filter is theirs)
        cond += " AND " + _incident_org()
    if weekday is not None:
        cond += " AND extract(isodow FROM i.reported_at AT TIME ZONE %(tz)s)::int = %(weekday)s"
    if hour is not None:
        cond += " AND extract(hour FROM i.reported_at AT TIME ZONE %(tz)s)::int = %(hour)s"
    if grid is not None:
        if not conn.execute("SELECT 1 FROM grid WHERE id = %s", [grid]).fetchone():
            from gisapp.core.errors import NotFound

            raise NotFound(f"no grid with id {grid}", "grid", key="err.grid.not_found", params={"id": grid})
        cond += " AND i.grid_id = %(grid)s"
    total = conn.execute("SELECT count(*) AS n FROM incident i WHERE " + cond, p).fetchone()["n"]
    rows = conn.execute(
        "SELECT i.id AS incident_id, i.code, i.reported_at, i.type, i.channel, i.severity, i.status, i.outcome, "
        "i.station_org_id, o.name AS organisation, o.name_en AS organisation_en FROM incident i "
        "LEFT JOIN organisation o ON o.id = coalesce(i.station_org_id, i.traffic_org_id) WHERE " + cond
        + " ORDER BY i.reported_at DESC, i.id DESC LIMIT %(limit)s OFFSET %(offset)s", p).fetchall()
    rules = load_rules(settings)
    out = []
    for r in rows:
        t = rules.types.get(r["type"])
        o = rules.outcomes.get(r["outcome"]) if r["outcome"] else None
        out.append({"incident_id": r["incident_id"], "code": r["code"], "reported_at": r["reported_at"].isoformat(),
                    "type": r["type"], "type_label": t.zh if t else r["type"], "type_label_en": t.en if t else r["type"],
                    "channel": r["channel"], "severity": r["severity"], "organisation": r["organisation"],
                    "organisation_en": r["organisation_en"], "status": r["status"], "outcome": r["outcome"],
                    "outcome_label": o.zh if o else None, "outcome_label_en": o.en if o else None})
    return {"period": f.period_json(), "filters": f.filters_json(), "measure": measure or "all", "total": total,
            "weekday": weekday, "hour": hour, "grid": grid, "limit": limit, "offset": offset, "rows": out}

