"""The audit log: append who did what to which record, when and from which client; read it back
with filters and paging, and as CSV.

The web layer names the calling client once per request (``request_client``); every ``audit``
call without an explicit ``client`` records that one, so writes made deep in the domain code
still say where they came from.
"""

from __future__ import annotations

import csv
import io
import json
from contextvars import ContextVar
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

# the calling client (address and user agent) of the current request, set by the web layer
request_client: ContextVar[str | None] = ContextVar("gisapp_request_client", default=None)


def audit(conn: psycopg.Connection, user: dict | None, action: str, entity: str, entity_id: Any,
          detail: dict, client: str | None = None) -> None:
    """Append one row to the audit log (inside the caller's transaction)."""
    conn.execute(
        "INSERT INTO audit_log (actor, action, entity, entity_id, client, detail) VALUES (%s, %s, %s, %s, %s, %s)",
        [(user or {}).get("username", "system"), action, entity, None if entity_id is None else str(entity_id),
         client if client is not None else request_client.get(),
         json.dumps(detail, default=str, ensure_ascii=False)],
    )


def _where(filters: dict[str, Any]) -> tuple[sql.Composable, list[Any]]:
    """The WHERE clause of the filters: ``since``/``until`` (datetimes), ``actor``, ``action``,
    ``entity`` (exact), ``entity_id`` (exact) and ``q`` (a text anywhere in the row)."""
    parts: list[sql.Composable] = []
    args: list[Any] = []
    if filters.get("since") is not None:
        parts.append(sql.SQL("at >= %s"))
        args.append(filters["since"])
    if filters.get("until") is not None:
        parts.append(sql.SQL("at < %s"))
        args.append(filters["until"])
    for key in ("actor", "action", "entity", "entity_id"):
        if filters.get(key):
            parts.append(sql.SQL("{} = %s").format(sql.Identifier(key)))
            args.append(filters[key])
    if filters.get("q"):
        parts.append(sql.SQL("concat_ws(' ', actor, action, entity, entity_id, client, detail::text) ILIKE %s"))
        args.append("%" + filters["q"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    if not parts:
        return sql.SQL(""), args
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts), args


def query_audit(conn: psycopg.Connection, filters: dict[str, Any], limit: int, offset: int = 0) -> dict:
    """Rows of the audit trail (view ``audit_entry``: the audit log and the dispatch writes of the
    incidents' event logs, as ``dispatch_<kind>`` on entity ``incident``) matching ``filters``
    (see ``_where``), newest first, and their total."""
    where, args = _where(filters)
    total = conn.execute(sql.SQL("SELECT count(*) AS n FROM audit_entry") + where, args).fetchone()["n"]
    rows = conn.execute(sql.SQL("SELECT id, at, actor, action, entity, entity_id, client, detail FROM audit_entry")
                        + where + sql.SQL(" ORDER BY at DESC, id DESC LIMIT %s OFFSET %s"),
                        [*args, limit, offset]).fetchall()
    return {"total": total, "limit": limit, "offset": offset, "rows": rows}


def audit_choices(conn: psycopg.Connection) -> dict[str, list[str]]:
    """The actors, actions and entities that occur in the log (for the filter pickers)."""
    return {k: [r["v"] for r in conn.execute(
        sql.SQL("SELECT DISTINCT {} AS v FROM audit_entry ORDER BY 1 LIMIT 500").format(sql.Identifier(k)))]
        for k in ("actor", "action", "entity")}


def local_time(at: datetime, timezone: str) -> str:
    """``at`` in the local time zone, to the second (``2026-01-31 08:05:09``)."""
    return at.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S")


def audit_csv(rows: list[dict], timezone: str, header: list[str]) -> bytes:
    """The rows as CSV in UTF-8 with a byte-order mark (so that Excel reads Chinese), local times."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(header)
    for r in rows:
        detail = json.dumps(r["detail"], ensure_ascii=False, sort_keys=True) if r["detail"] else ""
        w.writerow([r["id"], local_time(r["at"], timezone)] + [
            _cell(x or "") for x in (r["actor"], r["action"], r["entity"], r["entity_id"], r["client"], detail)])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _cell(text: str) -> str:
    """A cell a spreadsheet will not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
