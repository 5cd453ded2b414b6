"""An independent recomputation of the reports' figures from the raw rows, with pandas.

It reads ``dispatch_leg``, ``incident`` and ``organisation`` with plain ``SELECT *`` and applies
the definitions as the README and gisapp.dispatch.sla's docstring state them, without any of
the application's SQL: a leg belongs to the local month of its dispatch; each clock is *met*
when its milestone came within the limit (sign-off from the leg's dispatch, first feedback and
closure from the first dispatch of its role), *decided* when met, late or overdue (a handed-back
leg's sign-off is decided, its other clocks are not); rates are met / decided. The tests and
``make bench-reports`` compare these with the API exactly.
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd


def load(conn) -> dict[str, pd.DataFrame]:
    """The raw rows: every leg, incident and organisation."""
    out = {}
    for table in ("dispatch_leg", "incident", "organisation"):
        cur = conn.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed table names
        rows = cur.fetchall()
        cols = [d.name for d in cur.description]
        out[table] = pd.DataFrame([dict(r) if not isinstance(r, dict) else r for r in rows], columns=cols)
    for c in ("dispatched_at", "signed_off_at", "first_feedback_at", "closed_at", "arrived_at", "first_dispatched_at"):
        out["dispatch_leg"][c] = pd.to_datetime(out["dispatch_leg"][c], utc=True)
    out["incident"]["reported_at"] = pd.to_datetime(out["incident"]["reported_at"], utc=True)
    return out


def _secs(td: pd.Series) -> pd.Series:
    return td.dt.total_seconds()


def _mean(values: pd.Series) -> float | None:
    """The mean to 0.1 s, from the exact sum of microseconds (as PostgreSQL's numeric avg)."""
    if values.empty:
        return None
    us = sum(int(round(v * 1_000_000)) for v in values)
    return round(float(Decimal(us) / Decimal(len(values)) / Decimal(1_000_000)), 1)


def _pct(values: pd.Series, q: float) -> float | None:
    """A continuous percentile (linear between the two nearest ranks)."""
    if values.empty:
        return None
    v = sorted(float(x) for x in values)
    pos = q * (len(v) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return round(v[lo] + (v[hi] - v[lo]) * (pos - lo), 1)


def _rate(met: int, decided: int) -> float | None:
    return round(met / decided, 6) if decided else None


def legs_of_period(raw: dict[str, pd.DataFrame], start: datetime, end: datetime, as_of: datetime, tz: str,
                   limits: dict[str, float]) -> pd.DataFrame:
    """The legs counted in [start, end) with their clock states."""
    legs = raw["dispatch_leg"]
    inc = raw["incident"][["id", "type", "channel", "road_area", "code"]].rename(columns={"id": "incident_id",
                                                                                         "code": "incident_code"})
    ts = pd.Timestamp
    legs = legs[(legs.dispatched_at >= ts(start)) & (legs.dispatched_at < ts(end)) & (legs.status != "cancelled")
                & (legs.dispatched_at <= ts(as_of))].merge(inc, on="incident_id", how="left")
    first = legs.first_dispatched_at.fillna(legs.dispatched_at)
    now = ts(as_of)
    so = _secs(legs.signed_off_at - legs.dispatched_at)
    ff = _secs(legs.first_feedback_at - first)
    cl = _secs(legs.closed_at - first)
    age = _secs(now - legs.dispatched_at)
    wait = _secs(now - first)
    hb = legs.status == "handed_back"
    legs = legs.assign(
        month=legs.dispatched_at.dt.tz_convert(tz).dt.strftime("%Y-%m"),
        arr_s=_secs(legs.arrived_at - legs.dispatched_at),
        sign_off_met=so <= limits["sign_off"],
        sign_off_decided=so.notna() | (age > limits["sign_off"]) | hb,
        first_feedback_met=ff <= limits["first_feedback"],
        first_feedback_decided=ff.notna() | ((wait > limits["first_feedback"]) & ~hb),
        close_met=cl <= limits["close"],
        close_decided=cl.notna() | ((wait > limits["close"]) & ~hb),
    )
    open_ = ~legs.status.isin(["closed", "cancelled", "handed_back"])
    legs["overdue_now"] = open_ & ((so.isna() & (age > limits["sign_off"])) | (ff.isna() & (wait > limits["first_feedback"]))
                                   | (cl.isna() & (wait > limits["close"])))
    return legs


def _counts(g: pd.DataFrame) -> dict[str, Any]:
    out = {"legs": int(len(g))}
    for c in ("sign_off", "first_feedback", "close"):
        met, dec = int(g[f"{c}_met"].sum()), int(g[f"{c}_decided"].sum())
        out.update({f"{c}_met": met, f"{c}_decided": dec, f"{c}_rate": _rate(met, dec)})
    out["overdue_now"] = int(g["overdue_now"].sum())
    return out


def sla(legs: pd.DataFrame) -> dict[str, Any]:
    """{"rows": {(organisation_id, month): counts}, "county": counts}."""
    rows = {(int(k[0]), k[1]): _counts(g) for k, g in legs.groupby(["organisation_id", "month"])}
    return {"rows": rows, "county": _counts(legs)}


def arrivals(legs: pd.DataFrame) -> dict[str, dict[str, dict]]:
    a = legs[legs.arr_s.notna()]

    def stats(g):
        return {"n": int(len(g)), "mean_s": _mean(g.arr_s), "p50_s": _pct(g.arr_s, 0.5), "p90_s": _pct(g.arr_s, 0.9)}

    out = {"by_organisation": {str(int(k)): stats(g) for k, g in a.groupby("organisation_id")},
           "by_channel": {k: stats(g) for k, g in a.groupby("channel")},
           "by_type": {k: stats(g) for k, g in a.groupby("type")},
           "by_area": {k: stats(g) for k, g in a.groupby("road_area")}}
    out["county"] = stats(a)
    return out


def outcomes(raw: dict[str, pd.DataFrame], legs: pd.DataFrame, start: datetime, end: datetime, as_of: datetime,
             accident_types: list[str], mediation: str) -> dict[str, Any]:
    closed = legs[(legs.status == "closed") & legs.outcome.notna()]
    acc_primary = closed[closed.type.isin(accident_types) & (closed.role == "primary")]
    mediated = int((acc_primary.outcome == mediation).sum())
    inc = raw["incident"]
    ts = pd.Timestamp
    period = (inc.reported_at >= ts(start)) & (inc.reported_at < ts(end))
    acc = inc[period & inc.type.isin(accident_types) & ~inc.status.isin(["merged", "cancelled"])]
    all_legs = raw["dispatch_leg"]
    kinds = raw["organisation"].set_index("id")["kind"]
    live = all_legs[all_legs.status != "cancelled"].assign(kind=lambda d: d.organisation_id.map(kinds))
    with_station = set(live[live.kind == "station"].incident_id)
    with_section = set(live[live.kind == "accident_section"].incident_id)
    n_acc = int(len(acc))
    n_station = int(acc.id.isin(with_station).sum())
    n_section = int(acc.id.isin(with_section).sum())
    closed_leg_incidents = set(all_legs[all_legs.status == "closed"].incident_id)
    direct = inc[(inc.status == "closed") & inc.outcome.notna() & period & (inc.reported_at <= ts(as_of))
                 & ~inc.id.isin(closed_leg_incidents)]
    return {"accident_incidents": n_acc, "station_share": _rate(n_station, n_acc),
            "accident_section_share": _rate(n_section, n_acc), "mediated": mediated,
            "mediation_decided": int(len(acc_primary)), "mediation_rate": _rate(mediated, len(acc_primary)),
            "outcomes": {k: int(v) for k, v in closed.outcome.value_counts().items()},
            "closed_without_dispatch": {k: int(v) for k, v in direct.outcome.value_counts().items()}}


def recompute(conn, start: datetime, end: datetime, as_of: datetime, tz: str, limits: dict[str, float],
              accident_types: list[str], mediation: str) -> dict[str, Any]:
    raw = load(conn)
    legs = legs_of_period(raw, start, end, as_of, tz, limits)
    return {"sla": sla(legs), "arrivals": arrivals(legs),
            "outcomes": outcomes(raw, legs, start, end, as_of, accident_types, mediation)}


def differences(api: dict[str, Any], pd_: dict[str, Any]) -> list[str]:
    """Where the API's sla / arrivals / outcomes answers differ from the recomputation (empty: identical)."""
    out = []
    keys = ("legs", "sign_off_met", "sign_off_decided", "sign_off_rate", "first_feedback_met",
            "first_feedback_decided", "first_feedback_rate", "close_met", "close_decided", "close_rate", "overdue_now")
    rows = {(r["organisation_id"], r["month"]): r for r in api["sla"]["rows"]}
    if set(rows) != set(pd_["sla"]["rows"]):
        out.append(f"sla rows: {sorted(set(rows) ^ set(pd_['sla']['rows']))[:5]}")
    for k, want in pd_["sla"]["rows"].items():
        got = rows.get(k)
        for f in keys:
            if got is not None and got[f] != want[f]:
                out.append(f"sla {k} {f}: api {got[f]} pandas {want[f]}")
    for f in keys:
        if api["sla"]["county"][f] != pd_["sla"]["county"][f]:
            out.append(f"sla county {f}: api {api['sla']['county'][f]} pandas {pd_['sla']['county'][f]}")
    for dim in ("by_organisation", "by_channel", "by_type", "by_area"):
        got = {r["key"]: {k: r[k] for k in ("n", "mean_s", "p50_s", "p90_s")} for r in api["arrivals"][dim]}
        if got != pd_["arrivals"][dim]:
            out.append(f"arrivals {dim}: api {got} pandas {pd_['arrivals'][dim]}"[:400])
    county = {k: api["arrivals"]["county"][k] for k in ("n", "mean_s", "p50_s", "p90_s")}
    if county != pd_["arrivals"]["county"]:
        out.append(f"arrivals county: api {county} pandas {pd_['arrivals']['county']}")
    o = api["outcomes"]
    for f in ("accident_incidents", "station_share", "accident_section_share", "mediated", "mediation_decided",
              "mediation_rate"):
        if o[f] != pd_["outcomes"][f]:
            out.append(f"outcomes {f}: api {o[f]} pandas {pd_['outcomes'][f]}")
    for f in ("outcomes", "closed_without_dispatch"):
        got = {r["code"]: r["n"] for r in o[f]}
        if got != pd_["outcomes"][f]:
            out.append(f"outcomes {f}: api {got} pandas {pd_['outcomes'][f]}")
    return out
