"""The 满天星 ranking: a monthly score per station from the versioned weights file, stars in
halves, the rank and its change from last month, and the legs behind every part of a score.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

from gisapp.core.errors import Forbidden, NotFound, ValidationError
from gisapp.core.tomlfile import TomlFiles
from gisapp.dispatch.sla import (
    CLOCK_DECIDED,
    CLOCK_MET,
    LEG_MEASURES,
    LEGS_COUNTED,
    MEDIATION_DECIDED,
    MEDIATION_MET,
)

from .filters import Filters, shift_month

DEFAULT_PATH = Path(__file__).with_name("ranking.toml")
MEASURES = ("sign_off_rate", "first_feedback_rate", "close_rate", "arrival_rate", "mediation_rate")
LABELS = {
    "sign_off_rate": ("签收及时率", "Sign-off on time"),
    "first_feedback_rate": ("首次反馈及时率", "First feedback on time"),
    "close_rate": ("结案及时率", "Closed on time"),
    "arrival_rate": ("按时到场率", "Arrived within target"),
    "mediation_rate": ("现场调解率", "On-site mediation"),
}
TOLERANCE = 1e-9


class RankingError(ValueError):
    """The weights file is malformed; the message names the place."""


@dataclass(frozen=True)
class Weights:
    version: str
    parts: dict[str, float]
    arrival_target_s: float
    zero_at: float
    full_at: float
    path: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "parts": dict(self.parts), "arrival_target_s": self.arrival_target_s,
                "stars": {"zero_at": self.zero_at, "full_at": self.full_at}}

    def stars(self, score: float | None) -> float | None:
        if score is None:
            return None
        x = 5 * (score - self.zero_at) / (self.full_at - self.zero_at)
        return min(5.0, max(0.0, math.floor(x * 2 + 0.5) / 2))


def check_weights(parts: dict[str, Any], where: str) -> dict[str, float]:
    """Known measures, numbers from 0 to 1, summing to 1; else RankingError naming ``where``."""
    out = {}
    for k, v in parts.items():
        if k not in MEASURES:
            raise RankingError(f"{where}: unknown measure {k!r}; measures are {', '.join(MEASURES)}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1 or math.isnan(v):
            raise RankingError(f"{where}.{k}: a weight from 0 to 1, got {v!r}")
        out[k] = float(v)
    total = sum(out.values())
    if abs(total - 1) > TOLERANCE:
        raise RankingError(f"{where}: the weights must sum to 1, they sum to {total:g}")
    return out


def parse_weights(doc: dict[str, Any], path: str = "") -> Weights:
    where = path or "ranking"
    if not isinstance(doc.get("version"), str) or not doc["version"].strip():
        raise RankingError(f"{where}: `version` (a string) is required")
    if not isinstance(doc.get("weights"), dict) or not doc["weights"]:
        raise RankingError(f"{where}: a [weights] table is required")
    parts = check_weights(doc["weights"], f"{where}: weights")
    arrival = doc.get("arrival", {})
    stars = doc.get("stars", {})
    target = arrival.get("target_s", 900)
    zero, full = stars.get("zero_at", 80.0), stars.get("full_at", 100.0)
    for name, v in (("arrival.target_s", target), ("stars.zero_at", zero), ("stars.full_at", full)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise RankingError(f"{where}: {name} must be a number >= 0, got {v!r}")
    if not zero < full <= 100:
        raise RankingError(f"{where}: stars.zero_at must be below stars.full_at (at most 100)")
    return Weights(doc["version"], parts, float(target), float(zero), float(full), path)


_files: TomlFiles[Weights] = TomlFiles(parse_weights, RankingError)


def load_weights(settings=None) -> Weights:
    """The weights of the configured file (setting ``ranking_path``, default the package's), re-read
    when the file changes; RankingError when it is malformed or its weights do not sum to 1."""
    return _files.load(str(getattr(settings, "ranking_path", "") or os.environ.get("GISAPP_RANKING_PATH")
                           or DEFAULT_PATH))


_PAIR = re.compile(r"\s*([a-z_]+)\s*[:=]\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*")


def override(w: Weights, raw: str | None) -> Weights:
    """The weights with ``raw`` (``measure:weight,...``, every weight given) instead: 400 naming
    ``weights`` when malformed or not summing to 1."""
    if raw is None or raw == "":
        return w
    parts: dict[str, float] = {}
    for item in str(raw)[:500].split(","):
        m = _PAIR.fullmatch(item)
        if not m:
            raise ValidationError("weights: measure:weight,... (e.g. sign_off_rate:0.5,close_rate:0.5)", "weights",
                                  key="err.reports.weights_format", params={"options": list(MEASURES)})
        parts[m.group(1)] = float(m.group(2))
    unknown = [k for k in parts if k not in MEASURES]
    if unknown:
        raise ValidationError(f"unknown measure {unknown[0]!r}", "weights", key="err.reports.weights_measure",
                              params={"value": unknown[0][:40], "options": list(MEASURES)})
    total = sum(parts.values())
    if abs(total - 1) > 1e-6 or any(v > 1 for v in parts.values()):
        raise ValidationError(f"the weights must sum to 1, they sum to {total:g}", "weights",
                              key="err.reports.weights_sum", params={"sum": f"{total:g}"})
    return Weights(w.version + "+override", parts, w.arrival_target_s, w.zero_at, w.full_at, w.path)


# --- scores -----------------------------------------------------------------------------------------

def _part_sql() -> dict[str, tuple[str, str]]:
    """Per measure: (met, decided) conditions over a leg's measures."""
    return {
        "sign_off_rate": (CLOCK_MET["sign_off"], CLOCK_DECIDED["sign_off"]),
        "first_feedback_rate": (CLOCK_MET["first_feedback"], CLOCK_DECIDED["first_feedback"]),
        "close_rate": (CLOCK_MET["close"], CLOCK_DECIDED["close"]),
        "arrival_rate": ("arrived_at <= so_start + %(target)s::interval", "arrived_at IS NOT NULL"),
        "mediation_rate": (MEDIATION_MET, MEDIATION_DECIDED),
    }


def _counts(conn: psycopg.Connection, p: dict) -> dict[tuple[str, int], dict[str, tuple[int, int]]]:
    """(month, station id) -> measure -> (met, decided), over the stations' legs of the months."""
    sel = ", ".join(f"count(*) FILTER (WHERE {met}) AS {k}_met, count(*) FILTER (WHERE {dec}) AS {k}_decided"
                    for k, (met, dec) in _part_sql().items())
    rows = conn.execute(
        "WITH l AS (SELECT l.organisation_id, l.status, l.role, l.outcome, l.incident_type AS type, "
        "width_bucket(l.dispatched_at, %(bounds)s::timestamptz[]) AS month, " + LEG_MEASURES
        + " FROM dispatch_leg l "
        "WHERE " + LEGS_COUNTED + " AND l.organisation_id = ANY(%(stations)s)) SELECT month, organisation_id, count(*) AS legs, " + sel
        + " FROM l GROUP BY 1, 2", p).fetchall()
    return {(p["names"][r["month"] - 1], r["organisation_id"]): {k: (r[f"{k}_met"], r[f"{k}_decided"])
                                                                for k in MEASURES} for r in rows}


def _score(w: Weights, counts: dict[str, tuple[int, int]]) -> tuple[float | None, list[dict]]:
    have = {k: v for k, v in counts.items() if k in w.parts and v[1] > 0}
    total_w = sum(w.parts[k] for k in have)
    parts = []
    score = 0.0
    for k in MEASURES:
        if k not in w.parts:
            continue
        met, dec = counts.get(k, (0, 0))
        value = round(met / dec, 6) if dec else None
        points = round(100 * w.parts[k] * met / dec / total_w, 4) if dec and total_w > 0 else None
        if points is not None:
            score += 100 * w.parts[k] * met / dec / total_w
        parts.append({"measure": k, "label": LABELS[k][0], "label_en": LABELS[k][1], "value": value,
                      "weight": w.parts[k], "points": points, "met": met, "decided": dec})
    return (round(score, 2) if total_w > 0 else None), parts


def _ranks(scores: dict[int, float | None]) -> dict[int, int]:
    """Competition ranking (1, 2, 2, 4) of the stations with a score."""
    ordered = sorted((s, oid) for oid, s in scores.items() if s is not None)
    ordered.reverse()
    out: dict[int, int] = {}
    for i, (s, oid) in enumerate(ordered):
        out[oid] = out[ordered[i - 1][1]] if i and ordered[i - 1][0] == s else i + 1
    return out


def ranking(conn: psycopg.Connection, settings, f: Filters, month: str, weights: Weights) -> dict[str, Any]:
    """Every station's score for local ``month`` (YYYY-MM): parts, stars, rank, change from last month."""
    from .figures import params

    prev = shift_month(month, -1)
    span = f.with_month(prev)
    span = Filters(span.first_day, f.with_month(month).last_day, f.tz, None, None, None, f.orgs, f.as_of)
    from .figures import month_buckets

    names, bounds = month_buckets(span)
    stations = conn.execute("SELECT id, code, name, name_en FROM organisation WHERE kind = 'station' ORDER BY code"
                            ).fetchall()
    counts = _counts(conn, params(settings, span, target=timedelta(seconds=weights.arrival_target_s), bounds=bounds,
                                  names=names, stations=[s["id"] for s in stations]))
    now, before = {}, {}
    for s in stations:
        now[s["id"]] = _score(weights, counts.get((month, s["id"]), {}))
        before[s["id"]] = _score(weights, counts.get((prev, s["id"]), {}))[0]
    rank_now = _ranks({k: v[0] for k, v in now.items()})
    rank_before = _ranks(before)
    rows = []
    for s in stations:
        score, parts = now[s["id"]]
        r = rank_now.get(s["id"])
        b = rank_before.get(s["id"])
        rows.append({"organisation_id": s["id"], "code": s["code"], "name": s["name"], "name_en": s["name_en"],
                     "score": score, "stars": weights.stars(score), "rank": r,
                     "rank_change": (b - r) if r is not None and b is not None else None,
                     "previous_rank": b, "parts": [{k: v for k, v in p.items()} for p in parts]})
    rows.sort(key=lambda x: (x["rank"] is None, x["rank"] or 0, x["code"]))
    return {"month": month, "previous_month": prev, "weights": weights.to_json(), "rows": rows,
            "empty": not rank_now}


def explain(conn: psycopg.Connection, settings, f: Filters, month: str, weights: Weights,
            organisation_id: int) -> dict[str, Any]:
    """One station's score for ``month``: its parts and, per part, the legs behind it (met or not)."""
    from .figures import params

    if f.orgs is not None and organisation_id not in f.orgs:
        raise Forbidden(f"organisation {organisation_id} is outside your scope", "organisation_id",
                        key="err.organisation.outside_scope", params={"id": organisation_id})
    board = ranking(conn, settings, f, month, weights)
    row = next((r for r in board["rows"] if r["organisation_id"] == organisation_id), None)
    if row is None:
        raise NotFound(f"no station {organisation_id}", "organisation_id", key="err.reports.not_a_station",
                       params={"id": organisation_id})
    mf = f.with_month(month)
    p = params(settings, mf, target=timedelta(seconds=weights.arrival_target_s), org=organisation_id)
    conds = _part_sql()
    sel = ", ".join(f"CASE WHEN {dec} THEN coalesce({met}, false) END AS {k}" for k, (met, dec) in conds.items())
    legs = conn.execute(
        "WITH l AS (SELECT l.id, l.incident_id, i.code, l.status, l.role, l.outcome, i.type, " + LEG_MEASURES
        + " FROM dispatch_leg l JOIN incident i ON i.id = l.incident_id WHERE " + LEGS_COUNTED
        + " AND l.organisation_id = %(org)s) SELECT id, incident_id, code, " + sel + " FROM l ORDER BY id", p
    ).fetchall()
    parts = []
    for part in row["parts"]:
        k = part["measure"]
        parts.append(dict(part, legs=[{"leg_id": r["id"], "incident_id": r["incident_id"], "code": r["code"],
                                       "met": r[k]} for r in legs if r[k] is not None]))
    return {"month": month, "weights": board["weights"], **{k: v for k, v in row.items() if k != "parts"},
            "stations": len(board["rows"]), "parts": parts}

