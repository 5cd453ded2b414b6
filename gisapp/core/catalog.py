"""Describe every map layer the API serves: table, geometry, fields, filters and write roles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gisapp.core.errors import NotFound


@dataclass(frozen=True)
class Field:
    """One property of a layer's features."""

    name: str
    type: str = "text"  # text | int | float | bool | text[] | timestamp | json
    required: bool = False
    writable: bool = True
    filter: bool = True
    choices: tuple[str, ...] | None = None
    ref: str | None = None  # referenced table for an integer foreign key
    max_len: int = 2000
    min: float | None = None
    max: float | None = None
    description: str = ""


@dataclass(frozen=True)
class Layer:
    """A layer: one table with one geometry column, served as GeoJSON under /api/v1/<name>."""

    name: str
    table: str
    geom_col: str
    geom_type: str
    title_zh: str
    title_en: str
    fields: tuple[Field, ...]
    write_roles: frozenset[str] = frozenset({"admin"})
    geom_required: bool = True
    # Versioned layers keep history: an update closes the version in force and inserts a new one.
    versioned: bool = False
    version_key: tuple[str, ...] = ()
    order_by: str = "id"
    # Chiefs may write rows of their own station through this column.
    chief_scope_col: str | None = None
    # Organisation scoping of reads (gisapp.core.scope): None, a column naming the row's
    # organisation, or "incident" (the incident's owners and legs).
    org_scope: str | None = None
    synthetic_default: bool = True
    # Reference data that is replaced (PUT/PATCH), never deleted: the reason DELETE answers 409.
    not_deletable: str | None = None

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    @property
    def writable_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.writable)


ORG_KINDS = ("station", "squadron", "accident_section", "command_centre")
ROAD_CLASSES = ("expressway", "national", "provincial", "county", "township", "village", "ramp",
                "urban", "other")
UNIT_KINDS = ("patrol_car", "traffic_car", "motorcycle", "accident_car", "command_car")
UNIT_STATUSES = ("available", "assigned", "en_route", "on_scene", "off_duty", "out_of_service")
SEVERITIES = ("none", "minor", "injury", "fatal")
ROLES = ("admin", "dispatcher", "planner", "chief", "duty_officer", "viewer", "device", "gateway", "leadership")
# Read-only roles over every organisation (issue 14: the command centre and bureau leadership)
READ_ONLY_ROLES = ("viewer", "leadership")
# Roles bound to one organisation (app_user.station_id): they see and act on its records only.
ORGANISATION_ROLES = ("chief", "duty_officer")

_PLANNERS = frozenset({"admin", "planner"})
_DISPATCH = frozenset({"admin", "dispatcher"})

_VERSION_FIELDS = (
    Field("version", "int", writable=False),
    Field("valid_from", "timestamp", writable=False, filter=False),
    Field("valid_to", "timestamp", writable=False, filter=False),
    Field("author", "text", writable=False),
    Field("reason", "text", required=True, max_len=500, filter=False,
          description="why this version was made"),
    Field("plan_id", "int", writable=False),
)

LAYERS: dict[str, Layer] = {
    layer.name: layer
    for layer in (
        Layer(
            "county", "county", "geom", "MultiPolygon", "县界", "County outline",
            (
                Field("adcode", required=True, max_len=12),
                Field("name", required=True, max_len=100),
                Field("name_en", max_len=100),
            ),
            order_by="adcode",
            not_deletable="the county outline is reference data that every boundary is checked against: "
                          "replace it (PUT or PATCH with the new outline), it cannot be deleted",
        ),
        Layer(
            "towns", "town", "geom", "Point", "镇街", "Towns and sub-districts",
            (
                Field("code", required=True, max_len=12),
                Field("name", required=True, max_len=100),
                Field("name_en", max_len=100),
                Field("kind", required=True, choices=("subdistrict", "town")),
                Field("location_synthetic", "bool"),
            ),
            geom_required=False,
            order_by="code",
        ),
        Layer(
            "organisations", "organisation", "hq", "Point", "机构", "Organisations",
            (
                Field("code", required=True, max_len=40),
                Field("name", required=True, max_len=100),
                Field("name_en", max_len=100),
                Field("kind", required=True, choices=ORG_KINDS),
                Field("merged", "bool", description="交所合一: station and squadron under one chief"),
                Field("takes_part_in_traffic", "bool"),
                Field("parent_id", "int", ref="organisation"),
                Field("town_code", max_len=12, ref="town.code"),
                Field("phone", max_len=40, filter=False),
                Field("synthetic", "bool"),
            ),
            write_roles=_PLANNERS,
            geom_required=False,
        ),
        Layer(
            "jurisdictions", "jurisdiction", "geom", "MultiPolygon", "辖区", "Jurisdictions",
            (
                Field("organisation_id", "int", required=True, ref="organisation"),
                Field("kind", required=True, choices=("station", "traffic")),
                Field("name", max_len=100),
                *_VERSION_FIELDS,
            ),
            write_roles=_PLANNERS,
            versioned=True,
            version_key=("organisation_id", "kind"),
        ),
        Layer(
            "joint_zones", "joint_zone", "geom", "MultiPolygon", "联合战区", "Joint war zones",
            (
                Field("code", required=True, max_len=40),
                Field("name", required=True, max_len=100),
                Field("name_en", max_len=100),
                Field("centre_org_id", "int", required=True, ref="organisation"),
                Field("member_ids", "int[]", filter=False, ref="organisation",
                      description="member organisations (the centre is always a member)"),
                *_VERSION_FIELDS,
            ),
            write_roles=_PLANNERS,
            geom_required=False,
            versioned=True,
            version_key=("code",),
        ),
        Layer(
            "grids", "grid", "geom", "MultiPolygon", "警格", "Patrol grids",
            (
                Field("code", required=True, max_len=40),
                Field("name", required=True, max_len=100),
                Field("organisation_id", "int", required=True, ref="organisation"),
                Field("jurisdiction_id", "int", ref="jurisdiction"),
                Field("staff", "json", filter=False,
                      description="assigned staff: [{person_name, role, organisation_id, phone_masked}]"),
                Field("synthetic", "bool"),
            ),
            write_roles=frozenset({"admin", "planner", "chief"}),
            chief_scope_col="organisation_id",
            org_scope="organisation_id",
        ),
        Layer(
            "road_nodes", "road_node", "geom", "Point", "路网节点", "Road nodes",
            (Field("osm_id", "int"),),
            write_roles=_PLANNERS,
        ),
        Layer(
            "road_edges", "road_edge", "geom", "LineString", "道路", "Road segments",
            (
                Field("source", "int", writable=False),
                Field("target", "int", writable=False),
                Field("road_class", required=True, choices=ROAD_CLASSES),
                Field("name", max_len=200),
                Field("speed_kmh", "float", min=1, max=200, filter=False),
                Field("oneway", "bool"),
                Field("bridge", "bool"),
                Field("length_m", "float", writable=False, filter=False),
                Field("osm_way_id", "int"),
                Field("synthetic", "bool"),
            ),
            write_roles=_PLANNERS,
        ),
        Layer(
            "villages", "village", "geom", "Point", "村庄", "Villages",
            (
                Field("code", required=True, max_len=40),
                Field("name", required=True, max_len=100),
                Field("town_code", max_len=12, ref="town.code"),
                Field("population", "int", min=0, max=10_000_000, filter=False),
                Field("synthetic", "bool"),
            ),
            write_roles=_PLANNERS,
            order_by="code",
        ),
        Layer(
            "units", "unit", "last_position", "Point", "警力", "Units",
            (
                Field("code", required=True, max_len=40),
                Field("name", required=True, max_len=100),
                Field("organisation_id", "int", required=True, ref="organisation"),
                Field("kind", required=True, choices=UNIT_KINDS),
                Field("capabilities", "text[]", filter=False),
                Field("status", choices=UNIT_STATUSES),
                Field("shift", choices=("day", "night", "all_day")),
                Field("crew", "int", min=0, max=20, filter=False),
                Field("last_position_at", "timestamp", writable=False, filter=False),
                Field("synthetic", "bool"),
            ),
            write_roles=_DISPATCH,
            geom_required=False,
            order_by="code",
            org_scope="organisation_id",
        ),
        Layer(
            "incidents", "incident", "geom", "Point", "警情", "Incidents",
            (
                Field("code", writable=False),
                Field("channel", required=True, choices=("110", "122")),
                Field("type", required=True, max_len=60),
                Field("severity", choices=SEVERITIES),
                Field("address", max_len=300, filter=False),
                Field("caller_masked", max_len=40, filter=False),
                Field("description", max_len=4000, filter=False),
                Field("reported_at", "timestamp", filter=False),
                Field("status", writable=False,
                      choices=("open", "dispatched", "closed", "merged", "cancelled")),
                Field("station_org_id", "int", writable=False),
                Field("traffic_org_id", "int", writable=False),
                Field("grid_id", "int", writable=False),
                Field("joint_zone_id", "int", writable=False),
                Field("outside_county", "bool", writable=False),
                Field("closed_at", "timestamp", writable=False, filter=False),
                # how it ended (issue 13): closed without dispatch, or its primary leg's outcome
                Field("outcome", writable=False, description="outcome code of the dispatch rules' list"),
                Field("outcome_note", writable=False, filter=False),
                Field("needs_owner", "bool", writable=False),
                Field("synthetic", "bool", writable=False),
            ),
            write_roles=_DISPATCH,
            order_by="reported_at DESC, id DESC",
            synthetic_default=False,
            org_scope="incident",
        ),
        Layer(
            "service_points", "service_point", "geom", "Point", "一窗通办", "Service points",
            (
                Field("code", required=True, max_len=40),
                Field("name", required=True, max_len=100),
                Field("organisation_id", "int", ref="organisation"),
                Field("services", "text[]", filter=False),
                Field("opening_hours", max_len=200, filter=False),
                Field("synthetic", "bool"),
            ),
            write_roles=_PLANNERS,
        ),
    )
}


def get_layer(name: str) -> Layer:
    """Return the layer called ``name`` or raise NotFound."""
    layer = LAYERS.get(name)
    if layer is None:
        raise NotFound(f"no layer {name!r}; layers are {', '.join(LAYERS)}", "layer")
    return layer


def json_schema(layer: Layer, for_write: bool = False) -> dict[str, Any]:
    """Return the JSON schema of a layer's properties (OpenAPI)."""
    types = {
        "text": {"type": "string"},
        "int": {"type": "integer"},
        "float": {"type": "number"},
        "bool": {"type": "boolean"},
        "text[]": {"type": "array", "items": {"type": "string"}},
        "int[]": {"type": "array", "items": {"type": "integer"}},
        "timestamp": {"type": "string", "format": "date-time"},
        "json": {},
    }
    props: dict[str, Any] = {} if for_write else {"id": {"type": "integer"}}
    required = []
    for f in layer.fields:
        if for_write and not f.writable:
            continue
        s = dict(types[f.type])
        if f.choices:
            s["enum"] = list(f.choices)
        if f.description:
            s["description"] = f.description
        if f.type == "text":
            s["maxLength"] = f.max_len
        if not for_write and "type" in s:  # a stored row may leave any property empty
            s["type"] = [s["type"], "null"]
            if "enum" in s:
                s["enum"] = [*s["enum"], None]
        props[f.name] = s
        if for_write and f.required:
            required.append(f.name)
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


# The only layers a deployment may open to readers without a log-in (setting public_layers):
# reference geography, never incidents, units, staff, grids, patrol or organisations with people.
PUBLIC_LAYER_CHOICES = ("county", "towns", "service_points")
