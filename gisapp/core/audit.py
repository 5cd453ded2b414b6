"""Append to the audit log: who did what to which record, when and from which client."""

from __future__ import annotations

import json
from typing import Any

import psycopg


def audit(conn: psycopg.Connection, user: dict | None, action: str, entity: str, entity_id: Any,
          detail: dict, client: str | None = None) -> None:
    """Append one row to the audit log (inside the caller's transaction)."""
    conn.execute(
        "INSERT INTO audit_log (actor, action, entity, entity_id, client, detail) VALUES (%s, %s, %s, %s, %s, %s)",
        [(user or {}).get("username", "system"), action, entity, str(entity_id), client,
         json.dumps(detail, default=str, ensure_ascii=False)],
    )
