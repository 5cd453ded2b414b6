"""Publish a plan at an effective time, roll back to an earlier one, apply due grid changes, and answer who owned a place then."""

from datetime import datetime, timedelta

import psycopg

from gisapp.core.audit import audit
from gisapp.core.errors import Conflict, NotFound, ValidationError

from .drafts import KINDS, copy_plan, draft_row, get_plan_row
from .validation import validate_plan

# --- publish, rollback, time travel -----------------------------------------------------------

def publish_plan(conn: psycopg.Connection, user: dict, plan_id: int, effective_from: datetime | None,
                 reason: str, settings) -> dict:
    """Publish a draft that validates, in force from ``effective_from`` (default now).

    The versions in force at that time end there; each area that differs from its
    version gets a new version starting then; an organisation (or zone) the draft no longer
    has loses its area. A later publish of the kind must start after this one (history is
    never rewritten); a time more than ``plan_backdate_tolerance_s`` in the past is refused.
    """
    _check_reason(reason)
    lock_kind(conn, plan_id)
    plan = draft_row(conn, plan_id)
    kind = plan["kind"]
    table = "joint_zone" if kind == "joint_zone" else "jurisdiction"
    now, at = _effective_time(conn, kind, table, effective_from, settings)
    _check_validates(conn, plan_id, settings)
    if kind == "joint_zone":
        created, ended, unchanged = _version_joint_zones(conn, user, plan_id, at, reason)
    else:
        created, ended, unchanged = _version_jurisdictions(conn, user, plan_id, kind, at, reason)
    grid_changes = _record_grid_changes(conn, plan_id, settings.metric_srid) if kind == "station" else 0
    _mark_published(conn, user, plan_id, kind, at, now, reason)
    applied = apply_due(conn, user)
    detail = {"effective_from": at.isoformat(), "reason": reason, "created_version_ids": created,
              "ended_version_ids": ended, "unchanged_version_ids": unchanged, "grid_changes": grid_changes,
              "table": table}
    audit(conn, user, "publish", "plan", plan_id, detail)
    return {"plan_id": plan_id, "status": "published", **detail, "grid_changes_applied": applied}


def lock_kind(conn: psycopg.Connection, plan_id: int) -> str:
    """Take the publish lock of plan ``plan_id``'s kind (one publish or rollback of a kind at a
    time) and return the kind.

    It is taken before any row lock (publish, rollback and boundary edits through the layer API
    all start here), so that two of them never wait for each other's rows: the second waits here,
    then sees the first one's versions. Taken again in the same transaction it returns at once.
    """
    row = conn.execute("SELECT kind FROM plan WHERE id = %s", [plan_id]).fetchone()
    if row is None:
        raise NotFound(f"no plan with id {plan_id}", "id", key="err.plan.not_found", params={"id": plan_id})
    lock_layout(conn, row["kind"])
    return row["kind"]


def lock_layout(conn: psycopg.Connection, kind: str) -> None:
    """Take the transaction's lock on the published layout of ``kind`` (see :func:`lock_kind`)."""
    conn.execute("SELECT pg_advisory_xact_lock(7161700, %s)", [KINDS.index(kind)])


def _check_reason(reason) -> None:
    """Refuse a missing, blank or over-long publish reason."""
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise ValidationError("is required: say why this layout is published (at most 500 characters)", "reason",
                              key="err.publish.reason")


def _effective_time(conn: psycopg.Connection, kind: str, table: str, effective_from: datetime | None,
                    settings) -> tuple[datetime, datetime]:
    """Return now and the effective time, refusing one too far back or not after the kind's latest version."""
    now = conn.execute("SELECT now() AS t").fetchone()["t"]
    at = effective_from or now
    if at < now - timedelta(seconds=settings.plan_backdate_tolerance_s):
        raise ValidationError(f"must not be more than {settings.plan_backdate_tolerance_s} s in the past "
                              "(history is not rewritten)", "effective_from",
                              key="err.publish.backdated", params={"tolerance": settings.plan_backdate_tolerance_s})
    latest = conn.execute(
        "SELECT max(valid_from) AS t FROM jurisdiction WHERE kind = %s" if table == "jurisdiction"
        else "SELECT max(valid_from) AS t FROM joint_zone", [kind] if table == "jurisdiction" else []).fetchone()["t"]
    if latest is not None and at <= latest:
        raise Conflict(f"a version of this kind already starts at {latest.isoformat()}; "
                       "publish with a later effective time", "effective_from",
                       key="err.publish.version_exists")
    return now, at


def _check_validates(conn: psycopg.Connection, plan_id: int, settings) -> None:
    """Refuse a draft that does not validate."""
    report = validate_plan(conn, plan_id, settings)
    if not report["valid"]:
        raise Conflict(f"the draft does not validate ({sum(report['counts'].values())} issues); fix them first",
                       "plan", issues=report["issues"], counts=report["counts"],
                       key="err.publish.invalid", params={"n": sum(report["counts"].values())})


def _version_joint_zones(conn: psycopg.Connection, user: dict, plan_id: int, at: datetime,
                         reason: str) -> tuple[list[int], list[int], list[int]]:
    """Version the joint zones the draft changes and end those it drops; return created, ended, unchanged ids."""
    created, ended, unchanged = [], [], []
    rows = conn.execute(
        """SELECT a.*, z.id AS cur_id, z.version AS cur_version,
                  (z.id IS NOT NULL AND ST_Equals(z.geom, a.geom) AND z.name = a.name
                   AND z.centre_org_id = a.centre_org_id
                   AND ARRAY(SELECT m.organisation_id FROM joint_zone_member m WHERE m.joint_zone_id = z.id
                             ORDER BY 1) = a.member_ids) AS same
           FROM plan_area a LEFT JOIN joint_zone z ON z.code = a.zone_code AND z.valid_from <= %(at)s
                AND (z.valid_to IS NULL OR z.valid_to > %(at)s)
           WHERE a.plan_id = %(p)s ORDER BY a.zone_code""", {"p": plan_id, "at": at}).fetchall()
    for r in rows:
        if r["same"]:
            unchanged.append(r["cur_id"])
            continue
        if r["cur_id"] is not None:
            conn.execute("UPDATE joint_zone SET valid_to = %s WHERE id = %s", [at, r["cur_id"]])
            ended.append(r["cur_id"])
        ver = conn.execute("SELECT coalesce(max(version), 0) + 1 AS v FROM joint_zone WHERE code = %s",
                           [r["zone_code"]]).fetchone()["v"]
        new_id = conn.execute(
            """INSERT INTO joint_zone (code, name, name_en, centre_org_id, version, geom, valid_from, author,
                                       reason, plan_id)
               VALUES (%s, %s, %s, %s, %s, ST_Multi(%s::geometry), %s, %s, %s, %s) RETURNING id""",
            [r["zone_code"], r["name"], r["name_en"], r["centre_org_id"], ver, r["geom"], at,
             user["username"], reason, plan_id]).fetchone()["id"]
        for m in sorted({*r["member_ids"], r["centre_org_id"]}):
            conn.execute("INSERT INTO joint_zone_member (joint_zone_id, organisation_id, role) VALUES (%s, %s, %s)",
                         [new_id, m, "centre" if m == r["centre_org_id"] else "member"])
        created.append(new_id)
    gone = conn.execute(
        """UPDATE joint_zone z SET valid_to = %(at)s
           WHERE z.valid_from <= %(at)s AND (z.valid_to IS NULL OR z.valid_to > %(at)s)
             AND NOT EXISTS (SELECT 1 FROM plan_area a WHERE a.plan_id = %(p)s AND a.zone_code = z.code)
           RETURNING z.id""", {"p": plan_id, "at": at}).fetchall()
    ended += [r["id"] for r in gone]
    return created, ended, unchanged


def _version_jurisdictions(conn: psycopg.Connection, user: dict, plan_id: int, kind: str, at: datetime,
                           reason: str) -> tuple[list[int], list[int], list[int]]:
    """Version the jurisdictions the draft changes and end those it drops; return created, ended, unchanged ids."""
    created, ended, unchanged = [], [], []
    rows = conn.execute(
        """SELECT a.*, j.id AS cur_id, (j.id IS NOT NULL AND ST_Equals(j.geom, a.geom)
                                         AND j.name IS NOT DISTINCT FROM a.name) AS same
           FROM plan_area a LEFT JOIN jurisdiction j ON j.organisation_id = a.organisation_id
                AND j.kind = %(k)s AND j.valid_from <= %(at)s AND (j.valid_to IS NULL OR j.valid_to > %(at)s)
           WHERE a.plan_id = %(p)s ORDER BY a.organisation_id""", {"p": plan_id, "k": kind, "at": at}).fetchall()
    for r in rows:
        if r["same"]:
            unchanged.append(r["cur_id"])
            continue
        if r["cur_id"] is not None:
            conn.execute("UPDATE jurisdiction SET valid_to = %s WHERE id = %s", [at, r["cur_id"]])
            ended.append(r["cur_id"])
        ver = conn.execute("SELECT coalesce(max(version), 0) + 1 AS v FROM jurisdiction "
                           "WHERE organisation_id = %s AND kind = %s", [r["organisation_id"], kind]).fetchone()["v"]
        created.append(conn.execute(
            """INSERT INTO jurisdiction (organisation_id, kind, version, name, geom, valid_from, author, reason,
                                         plan_id)
               VALUES (%s, %s, %s, %s, ST_Multi(%s::geometry), %s, %s, %s, %s) RETURNING id""",
            [r["organisation_id"], kind, ver, r["name"], r["geom"], at, user["username"], reason,
             plan_id]).fetchone()["id"])
    gone = conn.execute(
        """UPDATE jurisdiction j SET valid_to = %(at)s
           WHERE j.kind = %(k)s AND j.valid_from <= %(at)s AND (j.valid_to IS NULL OR j.valid_to > %(at)s)
             AND NOT EXISTS (SELECT 1 FROM plan_area a WHERE a.plan_id = %(p)s
                             AND a.organisation_id = j.organisation_id)
           RETURNING j.id""", {"p": plan_id, "k": kind, "at": at}).fetchall()
    ended += [r["id"] for r in gone]
    return created, ended, unchanged


def _mark_published(conn: psycopg.Connection, user: dict, plan_id: int, kind: str, at: datetime, now: datetime,
                    reason: str) -> None:
    """Supersede the kind's published plan and mark this plan published."""
    conn.execute("UPDATE plan SET superseded_by = %s WHERE kind = %s AND status = 'published' "
                 "AND superseded_by IS NULL AND id <> %s", [plan_id, kind, plan_id])
    conn.execute(
        "UPDATE plan SET status = 'published', effective_from = %s, published_at = %s, published_by = %s, "
        "publish_reason = %s, updated_at = now() WHERE id = %s",
        [at, now, user["username"], reason, plan_id])


def _record_grid_changes(conn: psycopg.Connection, plan_id: int, srid: int) -> int:
    """Record, for a station plan, the grids whose owner changes (by their largest share)."""
    return conn.execute(
        """INSERT INTO plan_grid_change (plan_id, grid_id, from_org_id, to_org_id)
           SELECT %(p)s, g.id, g.organisation_id, best.organisation_id
           FROM grid g CROSS JOIN LATERAL (
               SELECT a.organisation_id FROM plan_area a
               WHERE a.plan_id = %(p)s AND a.geom IS NOT NULL AND ST_Intersects(a.geom, g.geom)
               ORDER BY ST_Area(plan_metric(ST_Intersection(a.geom, g.geom), %(srid)s)) DESC
               LIMIT 1) best
           WHERE best.organisation_id IS DISTINCT FROM g.organisation_id""",
        {"p": plan_id, "srid": srid}).rowcount


def apply_due(conn: psycopg.Connection, user: dict | None = None) -> int:
    """Apply the grid ownership changes of published station plans now in force; return the count.

    Grids are not versioned: a plan published for a future time changes them when that
    time has come (this runs on every publish, on planning reads and from
    ``gisapp plan apply-due``). Grids also point at their station's version in force.
    """
    rows = conn.execute(
        """UPDATE plan_grid_change c SET applied_at = now()
           FROM plan p WHERE p.id = c.plan_id AND p.status = 'published' AND p.effective_from <= now()
             AND c.applied_at IS NULL
           RETURNING c.grid_id, c.to_org_id, c.plan_id""").fetchall()
    for r in rows:
        conn.execute("UPDATE grid SET organisation_id = %s, updated_at = now() WHERE id = %s",
                     [r["to_org_id"], r["grid_id"]])
    if rows:
        conn.execute(
            """UPDATE grid g SET jurisdiction_id = j.id FROM jurisdiction j
               WHERE j.organisation_id = g.organisation_id AND j.kind = 'station' AND j.valid_from <= now()
                 AND (j.valid_to IS NULL OR j.valid_to > now()) AND g.jurisdiction_id IS DISTINCT FROM j.id""")
        audit(conn, user, "apply_grid_changes", "plan", rows[0]["plan_id"],
              {"grids": [r["grid_id"] for r in rows]})
    return len(rows)


def rollback(conn: psycopg.Connection, user: dict, plan_id: int, effective_from: datetime | None, reason: str,
             settings) -> dict:
    """Publish an earlier published plan's layout again (as a new plan that copies it)."""
    lock_kind(conn, plan_id)
    src = get_plan_row(conn, plan_id)
    if src["status"] != "published":
        raise Conflict("only a published plan can be published again", "id",
                       key="err.publish.not_published")
    copy = copy_plan(conn, user, plan_id, f"{src['name']} (rollback)", origin="rollback")
    out = publish_plan(conn, user, copy["id"], effective_from, reason, settings)
    audit(conn, user, "rollback", "plan", copy["id"], {"to_plan_id": plan_id})
    return {**out, "rolled_back_to_plan_id": plan_id}


def owner_at(conn: psycopg.Connection, lon: float, lat: float, at: datetime | None = None) -> dict:
    """Return the station, traffic owner and joint zone of a point from the versions in force at ``at``."""
    row = conn.execute(
        """SELECT jurisdiction_owner_at('station', p.g, p.t) AS station_org_id,
                  jurisdiction_owner_at('traffic', p.g, p.t) AS traffic_org_id,
                  joint_zone_at(p.g, p.t) AS joint_zone_id, p.t AS at
           FROM (SELECT ST_SetSRID(ST_MakePoint(%s, %s), 4326) AS g, coalesce(%s, now()) AS t) p""",
        [lon, lat, at]).fetchone()
    out = dict(row)
    out["at"] = out["at"].isoformat()
    for k in ("station_org_id", "traffic_org_id"):
        org = conn.execute("SELECT code, name FROM organisation WHERE id = %s", [out[k]]).fetchone() if out[k] else None
        out[k.replace("_org_id", "_code")] = org["code"] if org else None
    return out
