"""Summarise a replay (arrival times, share within target, utilisation, workload, per grid) and compare two."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gisapp.core.errors import ValidationError

from .engine import LOCAL_OFFSET_S

ACCIDENT_TYPES = ("traffic_accident",)


def _stats(v: np.ndarray) -> dict[str, Any]:
    v = np.asarray(v, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"mean": None, "p50": None, "p90": None, "n": 0}
    p50, p90 = np.percentile(v, [50, 90])
    return {"mean": round(float(v.mean()), 1), "p50": round(float(p50), 1), "p90": round(float(p90), 1),
            "n": int(len(v))}


@dataclass
class Result:
    """One scenario's replay: per leg and per incident arrays, and their summary (``to_json``)."""

    scenario: dict
    period: dict
    org_ids: np.ndarray             # per organisation index
    org_meta: list[dict]            # organisation_id, code, name, name_en, kind
    inc_id: np.ndarray
    inc_code: list
    inc_day: np.ndarray             # local day index from the period's start
    inc_grid: np.ndarray
    inc_accident: np.ndarray
    inc_owner: np.ndarray           # organisation id of the primary leg's owner (before a fallback), -1
    inc_first_s: np.ndarray         # first arrival per incident (s; nan: none)
    leg_inc: np.ndarray
    leg_role: np.ndarray
    leg_org: np.ndarray             # organisation id that served the leg (-1: none)
    leg_wait: np.ndarray
    leg_arrival: np.ndarray
    leg_fallback: np.ndarray        # bool
    leg_relaxed: np.ndarray         # bool: the owner had no unit meeting the requirements
    leg_recorded: np.ndarray        # recorded arrival of the same incident and role (nan: none)
    units_per_org: np.ndarray
    busy_per_org: np.ndarray        # unit-seconds busy
    period_s: float
    target_s: float
    travel_factor: float
    seconds: float
    stations_in_traffic_share: float
    grids: dict = field(default_factory=dict, repr=False)   # grid id -> code, name, geometry (not in JSON)

    @classmethod
    def build(cls, scenario, w, jobs, units, settings, *, factor: float, station, stt, seconds: float) -> Result:
        n_orgs = len(w.orgs)
        org_ids = np.array([o.id for o in w.orgs], dtype=np.int64)
        meta = [{"organisation_id": o.id, "code": o.code, "name": o.name, "name_en": o.name_en, "kind": o.kind}
                for o in w.orgs]
        leg_inc = np.array([j.inc for j in jobs], dtype=np.int64)
        leg_role = np.array([j.role for j in jobs], dtype=object)
        served = np.array([j.org for j in jobs], dtype=np.int64)
        leg_org = np.where(served >= 0, org_ids[np.maximum(served, 0)], -1)
        arrival = np.array([j.arrival_s for j in jobs], dtype=float)
        rec = {(int(i), r): float(a) for i, r, a in zip(w.rec_inc, w.rec_role, w.rec_arrival, strict=True)}
        n_inc = len(w.inc_id)
        first = np.full(n_inc, np.inf)
        np.minimum.at(first, leg_inc, np.where(np.isfinite(arrival), arrival, np.inf))
        first[~np.isfinite(first)] = np.nan
        owner = np.full(n_inc, -1, dtype=np.int64)
        for j in jobs:
            if j.role == "primary" and j.owner >= 0:
                owner[j.inc] = org_ids[j.owner]
        units_per_org = np.bincount([u.org for u in units], minlength=n_orgs).astype(float)
        busy = np.bincount([u.org for u in units], weights=[u.busy_s for u in units], minlength=n_orgs)
        day0 = (w.start.timestamp() + LOCAL_OFFSET_S) // 86400
        st_mask = station >= 0
        return cls(
            scenario=scenario.to_json(),
            period={"start": w.start.isoformat(), "end": w.end.isoformat()},
            org_ids=org_ids, org_meta=meta, inc_id=w.inc_id, inc_code=w.inc_code,
            inc_day=((w.inc_t + LOCAL_OFFSET_S) // 86400 - day0).astype(np.int64), inc_grid=w.inc_grid,
            inc_accident=np.isin(w.inc_type, ACCIDENT_TYPES), inc_owner=owner, inc_first_s=first,
            leg_inc=leg_inc, leg_role=leg_role, leg_org=leg_org,
            leg_wait=np.array([j.wait_s for j in jobs], dtype=float), leg_arrival=arrival,
            leg_fallback=np.array([j.fallback_from >= 0 for j in jobs], dtype=bool),
            leg_relaxed=np.array([j.relaxed for j in jobs], dtype=bool),
            leg_recorded=np.array([rec.get((j.inc, j.role), np.nan) for j in jobs], dtype=float),
            units_per_org=units_per_org, busy_per_org=busy, period_s=w.end.timestamp() - w.start.timestamp(),
            target_s=float(settings.rural_road_target_min) * 60.0, travel_factor=factor, seconds=seconds,
            stations_in_traffic_share=float(stt[st_mask].mean()) if st_mask.any() else 0.0, grids=w.grids)

    # --- summaries -------------------------------------------------------------------------
    def _org(self, org_id: int) -> dict:
        i = int(np.searchsorted(self.org_ids, org_id))
        m = self.org_meta[i]
        return {k: m[k] for k in ("organisation_id", "code", "name", "name_en")}

    def accident_arrivals(self) -> np.ndarray:
        """First arrival at each accident incident (s)."""
        return self.inc_first_s[self.inc_accident]

    def station_share_of_accidents(self) -> float | None:
        """Share of the accident incidents whose primary leg a station served."""
        kinds = {m["organisation_id"]: m["kind"] for m in self.org_meta}
        prim = (self.leg_role == "primary") & self.inc_accident[self.leg_inc] & (self.leg_org >= 0)
        if not prim.any():
            return None
        return round(float(np.mean([kinds.get(int(o)) == "station" for o in self.leg_org[prim]])), 4)

    def calibration(self) -> dict[str, Any]:
        """Replayed against recorded arrival times (legs with both): errors in percent.

        ``daily_mae_pct``: the mean over days of |replayed - recorded| daily mean arrival, in
        percent of the recorded daily mean (the bench's ``baseline_error_pct``; days are what
        the comparison's bootstrap resamples); ``leg_mae_pct``: per leg, the mean absolute error
        in percent of the recorded mean; ``by_org_mae_pct``: per serving organisation, the
        legs-weighted mean of |replayed - recorded| mean arrival in percent; ``mean_bias_pct``:
        the overall mean, signed.
        """
        ok = np.isfinite(self.leg_recorded) & np.isfinite(self.leg_arrival)
        if not ok.any():
            return {"legs": 0}
        r, a = self.leg_arrival[ok], self.leg_recorded[ok]
        day = self.inc_day[self.leg_inc[ok]]
        nd = int(day.max()) + 1
        cnt = np.bincount(day, minlength=nd)
        dr = np.bincount(day, weights=r, minlength=nd)
        da = np.bincount(day, weights=a, minlength=nd)
        has = cnt > 0
        daily = np.abs(dr[has] - da[has]) / da[has]
        org = self.leg_org[ok]
        uo, inv = np.unique(org, return_inverse=True)
        oc = np.bincount(inv)
        orr = np.bincount(inv, weights=r) / oc
        oa = np.bincount(inv, weights=a) / oc
        return {"legs": int(ok.sum()),
                "recorded_mean_s": round(float(a.mean()), 1), "replayed_mean_s": round(float(r.mean()), 1),
                "mean_bias_pct": round(float((r.mean() - a.mean()) / a.mean() * 100), 2),
                "daily_mae_pct": round(float(daily.mean() * 100), 2),
                "leg_mae_pct": round(float(np.abs(r - a).mean() / a.mean() * 100), 2),
                "by_org_mae_pct": round(float((np.abs(orr - oa) / oa * oc).sum() / oc.sum() * 100), 2),
                "travel_factor": round(self.travel_factor, 4)}

    def to_json(self) -> dict[str, Any]:
        """The summary (see the contract in the README's Replay section)."""
        arr = self.leg_arrival
        by_org = []
        for o in np.unique(self.leg_org[self.leg_org >= 0]):
            by_org.append({**self._org(int(o)), **_stats(arr[self.leg_org == o])})
        util, work = [], []
        for i, m in enumerate(self.org_meta):
            legs = int((self.leg_org == m["organisation_id"]).sum())
            base = {k: m[k] for k in ("organisation_id", "code", "name", "name_en")}
            if self.units_per_org[i] > 0:
                share = self.busy_per_org[i] / (self.units_per_org[i] * self.period_s)
                util.append({**base, "units": int(self.units_per_org[i]), "share": round(float(share), 4)})
            if legs or self.units_per_org[i] > 0:
                work.append({**base, "legs": legs})
        per_grid = []
        for g in np.unique(self.inc_grid[self.inc_grid >= 0]):
            sel = self.inc_grid == g
            v = self.inc_first_s[sel]
            v = v[np.isfinite(v)]
            info = self.grids.get(int(g), {})
            per_grid.append({"grid_id": int(g), "code": info.get("code"), "name": info.get("name"), "n": int(sel.sum()),
                             "mean_arrival_s": round(float(v.mean()), 1) if len(v) else None})
        fin = np.isfinite(arr)
        waited = fin & (self.leg_wait > 0)
        return {
            "scenario": self.scenario, "period": self.period, "incidents": int(len(self.inc_id)),
            "legs": int(len(arr)), "unserved_legs": int((~fin).sum()),
            "arrival_s": {"all": _stats(arr), "accident": _stats(self.accident_arrivals()),
                          "accident_definition": "first arrival at each traffic-accident incident",
                          "by_org": by_org},
            "within_target": {"target_s": self.target_s, "setting": "rural_road_target_min",
                              "share": round(float((arr[fin] <= self.target_s).mean()), 4) if fin.any() else None},
            "utilisation": util, "workload": work, "per_grid": per_grid,
            "waited": {"legs": int(waited.sum()),
                       "mean_wait_s": round(float(self.leg_wait[waited].mean()), 1) if waited.any() else 0.0},
            "fallbacks": int(self.leg_fallback.sum()), "relaxed_requirements": int(self.leg_relaxed.sum()),
            "station_share_of_accidents": self.station_share_of_accidents(),
            "stations_in_traffic_share": round(self.stations_in_traffic_share, 4),
            "calibration": self.calibration(), "seconds": round(self.seconds, 2),
        }


# --- comparison ------------------------------------------------------------------------------

def _daily(res: Result, nd: int) -> dict[str, np.ndarray]:
    arr, fin = res.leg_arrival, np.isfinite(res.leg_arrival)
    d = res.inc_day[res.leg_inc][fin]
    out = {"sum": np.bincount(d, weights=arr[fin], minlength=nd), "n": np.bincount(d, minlength=nd).astype(float),
           "within": np.bincount(d, weights=(arr[fin] <= res.target_s).astype(float), minlength=nd)}
    acc = res.inc_accident & np.isfinite(res.inc_first_s)
    da = res.inc_day[acc]
    out["acc_sum"] = np.bincount(da, weights=res.inc_first_s[acc], minlength=nd)
    out["acc_n"] = np.bincount(da, minlength=nd).astype(float)
    return out


def _ratio(num: np.ndarray, den: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray | float:
    if idx is None:
        return float(num.sum() / den.sum()) if den.sum() else np.nan
    n, d = num[idx].sum(axis=1), den[idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return n / d


def _delta(b: dict, s: dict, num: str, den: str, idx: np.ndarray, digits: int) -> dict:
    value = _ratio(s[num], s[den]) - _ratio(b[num], b[den])
    boot = _ratio(s[num], s[den], idx) - _ratio(b[num], b[den], idx)
    boot = boot[np.isfinite(boot)]
    lo, hi = (np.percentile(boot, [2.5, 97.5]) if len(boot) else (np.nan, np.nan))

    def r(x):
        return round(float(x), digits) if np.isfinite(x) else None
    return {"value": r(value), "ci_low": r(lo), "ci_high": r(hi)}


def _feature(res: Result, gid: int, props: dict) -> dict | None:
    g = res.grids.get(gid)
    if g is None:
        return None
    return {"type": "Feature", "geometry": g["geometry"],
            "properties": {"grid_id": gid, "code": g["code"], "name": g["name"], **props}}


def compare(baseline: Result, scenario: Result, *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Compare two replays of the same period: differences with 95% bootstrap intervals over days.

    Days are resampled with replacement (the same days for both scenarios, ``n_boot`` times,
    seeded); the interval is the 2.5 and 97.5 percentiles of the resampled differences.
    """
    if len(baseline.inc_id) != len(scenario.inc_id) or not np.array_equal(baseline.inc_id, scenario.inc_id):
        raise ValidationError("the two replays cover different incidents: replay one period under both scenarios",
                              "period", key="err.replay.different_periods")
    nd = int(max(baseline.inc_day.max(initial=0), scenario.inc_day.max(initial=0))) + 1
    b, s = _daily(baseline, nd), _daily(scenario, nd)
    rng = np.random.default_rng([seed, 1015])
    idx = rng.integers(0, nd, size=(n_boot, nd))
    delta = {"mean_arrival_s": _delta(b, s, "sum", "n", idx, 1),
             "accident_mean_arrival_s": _delta(b, s, "acc_sum", "acc_n", idx, 1),
             "within_target_share": _delta(b, s, "within", "n", idx, 4),
             "days": nd, "n_boot": n_boot, "interval": "95% bootstrap over days"}
    # per grid: mean first arrival per incident
    feats = []
    for g in np.unique(baseline.inc_grid[baseline.inc_grid >= 0]):
        sel = baseline.inc_grid == g
        bv, sv = baseline.inc_first_s[sel], scenario.inc_first_s[sel]
        bm = float(np.nanmean(bv)) if np.isfinite(bv).any() else None
        sm = float(np.nanmean(sv)) if np.isfinite(sv).any() else None
        f = _feature(baseline, int(g), {"n": int(sel.sum()), "baseline_s": None if bm is None else round(bm, 1),
                                        "scenario_s": None if sm is None else round(sm, 1),
                                        "delta_s": None if bm is None or sm is None else round(sm - bm, 1)})
        if f:
            feats.append(f)
    changed = np.flatnonzero(baseline.inc_owner != scenario.inc_owner)
    areas = []
    code = {m["organisation_id"]: m["code"] for m in baseline.org_meta}
    for g in np.unique(baseline.inc_grid[changed]):
        if g < 0:
            continue
        sel = changed[baseline.inc_grid[changed] == g]
        (fo, to), n_top = Counter(zip(baseline.inc_owner[sel].tolist(), scenario.inc_owner[sel].tolist(),
                                      strict=True)).most_common(1)[0]
        f = _feature(baseline, int(g), {"changed": int(len(sel)), "from_org": code.get(fo), "to_org": code.get(to),
                                        "from_org_id": int(fo), "to_org_id": int(to)})
        if f:
            areas.append(f)
    incidents = [{"id": int(baseline.inc_id[i]), "jq_code": baseline.inc_code[i],
                  "from_org": code.get(int(baseline.inc_owner[i])), "to_org": code.get(int(scenario.inc_owner[i]))}
                 for i in changed[:200]]
    bj, sj = baseline.to_json(), scenario.to_json()
    bw = {r["organisation_id"]: r for r in bj["workload"]}
    sw = {r["organisation_id"]: r for r in sj["workload"]}
    workload = []
    for oid in sorted(set(bw) | set(sw)):
        r = bw.get(oid) or sw[oid]
        bl, sl = bw.get(oid, {}).get("legs", 0), sw.get(oid, {}).get("legs", 0)
        workload.append({k: r[k] for k in ("organisation_id", "code", "name", "name_en")} |
                        {"baseline": bl, "scenario": sl, "delta": sl - bl})
    return {"baseline": bj, "scenario": sj, "delta": delta,
            "per_grid": {"type": "FeatureCollection", "features": feats},
            "changed_owner": {"count": int(len(changed)), "areas": {"type": "FeatureCollection", "features": areas},
                              "incidents": incidents},
            "workload": workload}
