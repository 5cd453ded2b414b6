"""Boundary edits made outside a plan (the layer API on jurisdictions and joint zones) get the
plan's validation: an edit that leaves the layout of its kind worse than before (a new overlap,
gap, sliver, part outside the county, cut grid or invalid area) is refused and changes nothing.

The layer store (gisapp.core.features) knows nothing of planning; the web layer routes writes of
the boundary layers here, and this module wraps the core write between the kind's publish lock
and the check.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from gisapp.core import features
from gisapp.core.catalog import Layer
from gisapp.core.errors import Conflict, Text

from .drafts import KINDS, create_plan
from .publish import lock_layout
from .validation import validate_plan

BOUNDARY_LAYERS = ("jurisdictions", "joint_zones")
# Issue codes measured by area: worse when their total area grows; the others when their count does.
_AREA_CODES = ("overlap", "gap", "sliver", "outside")


def _kind_of(layer: Layer, props: dict | None) -> str | None:
    if layer.name == "joint_zones":
        return "joint_zone"
    kind = (props or {}).get("kind")
    return kind if kind in KINDS else None


def _body_kind(layer: Layer, body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    props = body.get("properties") if (body.get("type") == "Feature" or "properties" in body) else body
    return _kind_of(layer, props if isinstance(props, dict) else None)


def write_boundary(conn: psycopg.Connection, layer: Layer, op: str, user: dict, settings, *,
                   fid: int | None = None, body: Any = None, reason: str | None = None) -> dict:
    """Create (``op`` "create"), update ("update") or retire ("delete") a jurisdiction or joint
    zone through the layer store, then refuse (409 naming ``geometry``, with the issues) when the
    layout of its kind in force now is worse than just before the edit."""
    if op == "create":
        kind = _body_kind(layer, body)
    else:
        kind = _kind_of(layer, features.get_feature(conn, layer, fid)["properties"])
    if kind is not None:
        lock_layout(conn, kind)  # before any row lock, as publish and rollback do
    if op == "create":
        out = features.create_feature(conn, layer, body, user, settings)
    elif op == "update":
        out = features.update_feature(conn, layer, fid, body, user, settings)
    else:
        out = features.delete_feature(conn, layer, fid, user, reason)
    kind = kind or _kind_of(layer, (out.get("properties") if isinstance(out, dict) else None))
    if kind is not None:
        check_layout_edit(conn, user, kind, settings)
    return out


def _layout_report(conn: psycopg.Connection, user: dict, kind: str, at: datetime, settings) -> dict:
    """Validate the layout of ``kind`` in force at ``at`` as a throw-away plan (rolled back)."""
    with conn.transaction(force_rollback=True):
        plan = create_plan(conn, user, name=f"layer edit check ({kind})", kind=kind, copy_at=at)
        return validate_plan(conn, plan["id"], settings)


def _measure(report: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    for i in report["issues"]:
        code = i["code"]
        out[code] = out.get(code, 0.0) + (i.get("m2", 0.0) if code in _AREA_CODES else 1.0)
    return out


def check_layout_edit(conn: psycopg.Connection, user: dict, kind: str, settings) -> None:
    """Refuse, after a layer-API edit in this transaction, a layout of ``kind`` worse than before it.

    The edit closed the old version at the transaction's time and started the new one then, so
    the layout just before it is the one in force a microsecond earlier.
    """
    now = conn.execute("SELECT now() AS t").fetchone()["t"]
    after = _layout_report(conn, user, kind, now, settings)
    if after["valid"]:
        return
    before = _measure(_layout_report(conn, user, kind, now - timedelta(microseconds=1), settings))
    now_m = _measure(after)
    tol = settings.plan_tolerance_m2
    worse = [code for code, v in now_m.items()
             if v > before.get(code, 0.0) + (tol if code in _AREA_CODES else 0.0)]
    if not worse:
        return
    issues = [i for i in after["issues"] if i["code"] in worse]
    what = ", ".join(f"{c} ({now_m[c] - before.get(c, 0.0):,.0f} m² more)" if c in _AREA_CODES else c
                     for c in worse)
    raise Conflict(f"this boundary edit would leave the {kind} layout with {what}; boundaries are checked as "
                   "a plan is (GET /api/v1/plans/{id}/validation): draw the change in a plan, or fix the "
                   "neighbouring areas in the same change", "geometry", issues=issues, counts=after["counts"],
                   key="err.boundary.worse", params={"kind": Text.code("jkind.", kind),
                                                     "codes": Text.codes("pl.issue.", worse)})
