"""Build the OpenAPI 3 document of /api/v1 from the layer catalogue and documented operations.

Endpoints outside the layer catalogue are documented with :func:`document`, next to their
routes; a test checks that every registered route is documented and nothing else.
"""

from __future__ import annotations

from typing import Any

from gisapp import __version__
from gisapp.core.catalog import LAYERS, json_schema

_EXTRA: dict[tuple[str, str], dict[str, Any]] = {}

_ERROR = {
    "type": "object",
    "required": ["error", "reason"],
    "properties": {"error": {"type": "string"}, "field": {"type": ["string", "null"]},
                   "reason": {"type": "string"}},
}


def document(path: str, method: str, summary: str, *, tag: str = "misc", params: list[dict] | None = None,
             body: dict | None = None, response: dict | None = None, auth: bool = True, status: str = "200") -> None:
    """Record an operation (``path`` in OpenAPI form, e.g. ``/api/v1/users/{id}``)."""
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": {
        status: {"description": "Accepted" if status == "202" else "OK",
                 "content": {"application/json": {"schema": response or {}}}},
        "4XX": {"description": "client error", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
    }}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if not auth:
        op["security"] = []
    _EXTRA[(path, method.lower())] = op


def param(name: str, schema: dict, desc: str = "", required: bool = False) -> dict:
    """An OpenAPI query parameter."""
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": desc}


ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}


def build_spec() -> dict[str, Any]:
    """Return the OpenAPI document."""
    paths: dict[str, dict[str, Any]] = {}
    for lyr in LAYERS.values():
        props = json_schema(lyr)
        feature = {"type": "object", "properties": {
            "type": {"const": "Feature"}, "id": {"type": "integer"},
            "geometry": {"type": ["object", "null"], "description": f"GeoJSON {lyr.geom_type}, WGS84"},
            "properties": props}}
        fc = {"type": "object", "properties": {
            "type": {"const": "FeatureCollection"}, "bbox": {"type": "array", "items": {"type": "number"}},
            "features": {"type": "array", "items": feature}, "numberMatched": {"type": "integer"},
            "numberReturned": {"type": "integer"}}}
        write = {"type": "object", "properties": {
            "type": {"const": "Feature"},
            "geometry": {"type": "object", "description": f"GeoJSON {lyr.geom_type} in WGS84 [lon, lat]"},
            "properties": json_schema(lyr, for_write=True)}}
        filters = [param(f.name, {"type": "string"}, "equals") for f in lyr.fields
                   if f.filter and f.type not in ("json", "text[]", "int[]")]
        list_params = [
            param("bbox", {"type": "string"}, "lon_min,lat_min,lon_max,lat_max"),
            param("limit", {"type": "integer", "minimum": 1}),
            param("offset", {"type": "integer", "minimum": 0}),
        ]
        if lyr.versioned:
            list_params += [param("at", {"type": "string", "format": "date-time"}, "versions in force at this time"),
                            param("history", {"type": "boolean"}, "all versions")]
        geo = "application/geo+json"
        err = {"4XX": {"description": "client error", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}
        title = f"{lyr.title_en} ({lyr.title_zh})"
        paths[f"/api/v1/{lyr.name}"] = {
            "get": {"summary": f"List {title}", "tags": [lyr.name],
                    "parameters": list_params + filters,
                    "responses": {"200": {"description": "FeatureCollection", "content": {geo: {"schema": fc}}},
                                  **err}},
            "post": {"summary": f"Create a {lyr.name} feature (roles: {', '.join(sorted(lyr.write_roles))})",
                     "tags": [lyr.name],
                     "requestBody": {"required": True, "content": {"application/json": {"schema": write}}},
                     "responses": {"201": {"description": "created", "content": {geo: {"schema": feature}}},
                                   **err}},
        }
        upd = ("creates a new version and closes the one in force" if lyr.versioned else "partial update")
        paths[f"/api/v1/{lyr.name}/{{id}}"] = {
            "get": {"summary": f"Get one {lyr.name} feature", "tags": [lyr.name],
                    "parameters": [ID_PARAM],
                    "responses": {"200": {"description": "Feature", "content": {geo: {"schema": feature}}}, **err}},
            "patch": {"summary": f"Change a {lyr.name} feature ({upd})", "tags": [lyr.name], "parameters": [ID_PARAM],
                      "requestBody": {"required": True, "content": {"application/json": {"schema": write}}},
                      "responses": {"200": {"description": "Feature", "content": {geo: {"schema": feature}}},
                                    **err}},
            "delete": {"summary": f"Delete a {lyr.name} feature" + (" (retire the version)" if lyr.versioned else ""),
                       "tags": [lyr.name], "parameters": [ID_PARAM, param("reason", {"type": "string"})],
                       "responses": {"200": {"description": "deleted"}, **err}},
        }
        paths[f"/api/v1/{lyr.name}/{{id}}"]["put"] = dict(paths[f"/api/v1/{lyr.name}/{{id}}"]["patch"])
    for (path, method), op in _EXTRA.items():
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Zouping police situational-awareness map server (gisapp)", "version": __version__,
                 "description": "GeoJSON (RFC 7946, WGS84) API for jurisdictions, joint war zones, grids, "
                                "roads, units and incidents."},
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Error": _ERROR},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "session": {"type": "apiKey", "in": "cookie", "name": "session"}},
        },
        "security": [{"bearer": []}, {"session": []}],
    }


_obj = {"type": "object"}
document("/api/v1/layers", "get", "The layer catalogue", tag="meta")
document("/api/v1/metadata", "get", "Provenance of each layer (real or synthetic)", tag="meta")
document("/api/v1/openapi.json", "get", "This document", tag="meta", auth=False)
document("/api/v1/auth/login", "post", "Log in (session cookie)", tag="auth", auth=False,
         body={"type": "object", "required": ["username", "password"],
               "properties": {"username": {"type": "string"}, "password": {"type": "string"}}})
document("/api/v1/auth/logout", "post", "Log out", tag="auth")
document("/api/v1/auth/me", "get", "The logged-in user", tag="auth")
document("/api/v1/auth/tokens", "post", "Create an API token (shown once)", tag="auth",
         body={"type": "object", "required": ["name"], "properties": {
             "name": {"type": "string"}, "user_id": {"type": "integer"},
             "expires_at": {"type": "string", "format": "date-time"}}})
document("/api/v1/auth/tokens/{id}", "delete", "Revoke an API token", tag="auth", params=[ID_PARAM])
document("/api/v1/users", "get", "List users (admin)", tag="auth")
document("/api/v1/users", "post", "Create a user (admin)", tag="auth", body=_obj)
document("/api/v1/users/{id}", "patch", "Change a user's role, name, language or active flag (admin)",
         tag="auth", params=[ID_PARAM], body=_obj)
document("/api/v1/audit", "get", "The audit log (admin), newest first; X-Total-Count: rows matching", tag="auth",
         params=[param("since", {"type": "string", "format": "date-time"}, "from this time (ISO; local time "
                       "in local_timezone when it has no zone)"),
                 param("until", {"type": "string", "format": "date-time"}, "before this time (ISO)"),
                 param("actor", {"type": "string"}, "user name, exactly"),
                 param("action", {"type": "string"}, "e.g. login, login_failed, create, update, view_personal"),
                 param("entity", {"type": "string"}, "e.g. app_user, plan, grids, grid_staff"),
                 param("entity_id", {"type": "string"}),
                 param("q", {"type": "string"}, "text anywhere in the row (client, detail, ...)"),
                 param("limit", {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100}),
                 param("offset", {"type": "integer", "minimum": 0, "default": 0}),
                 param("format", {"type": "string", "enum": ["json", "csv"], "default": "json"},
                       "csv: UTF-8 with BOM, local times")])
_SESSION = {"type": "object", "properties": {
    "id": {"type": "string", "description": "sha256 of the session's cookie token"},
    "user_id": {"type": "integer"}, "created_at": {"type": "string", "format": "date-time"},
    "last_seen_at": {"type": "string", "format": "date-time"}, "expires_at": {"type": "string", "format": "date-time"},
    "client_address": {"type": ["string", "null"]}, "user_agent": {"type": ["string", "null"]},
    "ended_at": {"type": ["string", "null"], "format": "date-time"},
    "end_reason": {"type": ["string", "null"], "enum": ["logout", "idle", "expired", "ended_by_admin", "deactivated",
                                                        None]}}}
document("/api/v1/users/{id}/sessions", "get", "A user's log-in sessions, newest first (admin)", tag="auth",
         params=[ID_PARAM, param("limit", {"type": "integer", "minimum": 1, "maximum": 1000})],
         response={"type": "array", "items": _SESSION})
document("/api/v1/users/{id}/sessions", "delete",
         "End a user's open sessions, or only session_id (admin); their cookies then get 401", tag="auth",
         params=[ID_PARAM, param("session_id", {"type": "string"})],
         response={"type": "object", "properties": {"user_id": {"type": "integer"}, "ended": {"type": "integer"}}})
