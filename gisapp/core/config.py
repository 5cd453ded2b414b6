"""Read the service's settings from defaults, GISAPP_* environment variables and overrides."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _remembered_port() -> str | None:
    """The port scripts/pgcluster.sh chose for this checkout's cluster (var/pg_port), if any."""
    try:
        return (ROOT / "var" / "pg_port").read_text().strip() or None
    except OSError:
        return None


def private_cluster_url() -> str:
    """Return the URL of the project's private cluster under ``var/`` (see scripts/pgcluster.sh)."""
    port = os.environ.get("GISAPP_PG_PORT") or _remembered_port() or "54329"
    db = os.environ.get("GISAPP_PG_DB", "gisapp")
    return f"postgresql://gisapp@/{db}?host={ROOT / 'var' / 'run'}&port={port}"


def _default_speeds() -> dict[str, float]:
    # km/h by road class; synthetic-demo values close to Chinese design speeds.
    return {
        "expressway": 100.0,
        "national": 70.0,
        "provincial": 60.0,
        "county": 50.0,
        "township": 40.0,
        "village": 25.0,
        "ramp": 40.0,
        "urban": 35.0,
        "other": 25.0,
    }


def _default_osm_classes() -> dict[str, str]:
    # OSM highway tag -> road class (speeds then come from road_speed_kmh unless maxspeed is tagged).
    return {
        "motorway": "expressway", "trunk": "national", "primary": "provincial", "secondary": "county",
        "tertiary": "township", "unclassified": "village", "residential": "urban", "living_street": "other",
        "service": "other", "road": "other", "motorway_link": "ramp", "trunk_link": "ramp",
        "primary_link": "ramp", "secondary_link": "ramp", "tertiary_link": "ramp",
    }


def _default_tile_road_min_zoom() -> dict[str, int]:
    # The lowest zoom at which a road class is drawn in vector tiles (fewer, lighter tiles
    # when zoomed out): main roads always, local roads from town scale on.
    return {
        "expressway": 0,
        "national": 0,
        "provincial": 0,
        "county": 10,
        "ramp": 11,
        "township": 11,
        "urban": 12,
        "village": 12,
        "other": 13,
    }


@dataclass
class Settings:
    """Every setting of the service. Units are part of the names."""

    database_url: str = field(default_factory=private_cluster_url)
    secret_key: str = ""
    pool_min_size: int = 1
    # Database outages (issue 12): a request waits at most pool_timeout_s for a pooled connection
    # (each checked before use), then gets 503 with Retry-After: db_retry_after_s; a connection
    # attempt gives up after db_connect_timeout_s; the pool retries a lost server about every
    # half second: a reconnection gives up after pool_reconnect_timeout_s and the next request retries.
    pool_timeout_s: float = 3.0
    pool_reconnect_timeout_s: float = 0.5
    db_connect_timeout_s: int = 2
    db_retry_after_s: int = 2
    pool_max_size: int = 20
    # Deployment geography: geometry is stored in EPSG:4326; metric work happens here.
    metric_srid: int = 4548
    # Extent in which geometry is accepted (lon_min, lat_min, lon_max, lat_max).
    service_extent: tuple[float, float, float, float] = (117.20, 36.58, 118.06, 37.25)
    county_adcode: str = "371681"
    max_body_mb: float = 20.0
    max_page_limit: int = 10000
    default_page_limit: int = 1000
    # Access (issue 12): nothing is read without a log-in except the layers named here, and
    # only from PUBLIC_LAYER_CHOICES (county, towns, service points; never incidents, units,
    # staff or patrol data).
    public_layers: tuple[str, ...] = ()
    # Server-side sessions: idle and absolute lifetime, how often last-seen is written, the
    # cookie's Secure flag (set it when served over HTTPS).
    session_idle_timeout_s: int = 2 * 3600
    session_absolute_timeout_s: int = 12 * 3600
    session_touch_interval_s: int = 60
    session_cookie_secure: bool = False
    # Cross-site writes: origins (scheme://host[:port]) trusted besides the request's own host.
    csrf_trusted_origins: tuple[str, ...] = ()
    # Log-in throttling: an account, or a client address, that failed this often within the
    # window is refused (429) until the window has passed since its last failure.
    login_max_failures: int = 5
    login_max_failures_per_address: int = 30
    login_failure_window_s: int = 900
    # Road speeds by class (km/h), and the off-road leg when snapping a point to a road.
    road_speed_kmh: dict[str, float] = field(default_factory=_default_speeds)
    offroad_speed_kmh: float = 10.0
    snap_max_distance_m: float = 500.0
    # SLA clocks of the dispatch platform.
    sign_off_sla_s: int = 90
    first_feedback_sla_s: int = 5 * 3600
    close_sla_s: int = 22 * 3600
    # Coverage targets (minutes): stricter on main roads, settable for rural roads.
    main_road_target_min: float = 10.0
    rural_road_target_min: float = 20.0
    # Routing (issue 4): road classes held to the main-road target (the others are rural roads),
    # service-area polygons (buffer around the reached roads), limits of the API, the incident
    # window of the gap ranking, and the OSM highway -> road class mapping of `gisapp import-osm`.
    main_road_classes: tuple[str, ...] = ("expressway", "national", "provincial", "county", "ramp", "urban")
    service_area_buffer_m: float = 150.0
    service_area_simplify_m: float = 75.0
    service_area_max_budgets: int = 6
    service_area_max_budget_min: float = 120.0
    nearest_units_max_k: int = 50
    live_coverage_interval_s: float = 5.0  # background refresh of the live coverage; 0: off
    patrol_snap_m: float = 30.0  # a position report further from every road is not patrol
    patrol_min_speed_kmh: float = 3.0  # slower reports (parked) are not patrol
    patrol_days: int = 7  # the window of patrol coverage on the maps
    local_timezone: str = "Asia/Shanghai"  # local days (patrol coverage)
    gap_incident_window_days: int = 365
    osm_highway_road_class: dict[str, str] = field(default_factory=_default_osm_classes)
    # Duplicate detection for intake.
    duplicate_radius_m: float = 200.0
    duplicate_window_s: int = 600
    future_tolerance_s: int = 120
    # Live dispatch (issue 5): rules file, recommendations, position ingest, the SSE stream.
    dispatch_rules_path: str = ""  # empty: gisapp/dispatch/rules.toml
    # the road an incident is on, for the rules' road_classes (issue 15): the nearest road segment
    # within this distance, else none
    dispatch_road_snap_m: float = 50.0
    recommend_k: int = 5
    straight_line_speed_kmh: float = 40.0  # ETA estimate when there is no road network
    position_batch_max: int = 1000
    position_stale_s: int = 300
    stream_heartbeat_s: float = 15.0
    stream_queue_max_events: int = 20000
    stream_backlog_max_events: int = 50000
    live_event_retention_h: float = 72.0
    sla_sweep_interval_s: float = 5.0
    maintenance_interval_s: float = 30.0  # due plan changes, SLA sweep, event pruning; 0: off
    # Python's thread switch interval in server processes (ms; 0 leaves Python's 5 ms): a
    # shorter one lets the threads of many open streams take their turn sooner.
    thread_switch_interval_ms: float = 1.0
    # --- issue 13 anchors: each helper inserts its settings right after its own line ---
    # issue 13: legs and outcomes
    leg_note_max_chars: int = 1000  # first-feedback and closing notes, the reason of a reassignment
    hand_back_reason_max_chars: int = 500  # the reason a leg is handed back to the dispatcher
    desk_page_max: int = 200  # legs per page of GET /api/v1/desk/legs
    # issue 13: desk
    # issue 13: dispatcher
    # reverse geocoding of a point picked on the map: the nearest village within this distance,
    # the nearest named road within that one (gisapp.dispatch.gazetteer.reverse_geocode)
    reverse_geocode_village_m: float = 1500.0
    reverse_geocode_road_m: float = 300.0
    # issue 13: messages
    # issue 14: reports backend
    # The 满天星 ranking's weights file (versioned TOML; empty: gisapp/reports/ranking.toml).
    ranking_path: str = ""
    # issue 14: reports page
    # issue 14: chief maps
    # The patrol windows a chief picks on /map/grids (days; the first is the default) and the
    # longest from-to window; a village's roads: segments whose midpoint is this close to it.
    chief_window_presets: tuple[int, ...] = (7, 30, 90)
    chief_window_max_days: int = 366
    chief_village_road_m: float = 1000.0
    # Call-back: the key that encrypts full caller numbers at rest (gisapp.core.callerkey;
    # urlsafe base64 of 32 bytes). Empty: read from caller_key_file (empty: var/caller_key,
    # made by `gisapp caller-key init`, which make setup/run call). caller_key_previous keeps
    # numbers under an older key readable during a rotation. Never stored in the database.
    caller_key: str = field(default="", repr=False)
    caller_key_file: str = ""
    caller_key_previous: str = field(default="", repr=False)
    # Maps: "none" (the project's own layers are the base map) or a tile URL template.
    basemap_url: str = ""
    basemap_attribution: str = ""
    basemap_gcj02: bool = False
    default_language: str = "zh"
    # Map pages (issue 6): display simplification of polygon layers (m), list and layer sizes.
    map_simplify_m: float = 15.0
    map_gap_list_limit: int = 40
    map_incident_days: int = 30
    map_incident_limit: int = 3000
    map_heat_days: int = 365
    map_heat_cell_m: float = 300.0
    service_area_budgets_min: tuple[float, ...] = (5.0, 10.0, 15.0, 20.0, 30.0)
    # Vector tiles: MVT extent and buffer (tile units), simplification (screen pixels), zoom range,
    # the lowest zoom at which each road class appears, browser cache of versioned tile URLs,
    # and the per-process cache of encoded tiles (entries).
    tile_extent: int = 4096
    tile_buffer: int = 64
    tile_simplify_px: float = 0.5
    tile_min_zoom: int = 5
    tile_max_zoom: int = 20
    tile_road_min_zoom: dict[str, int] = field(default_factory=_default_tile_road_min_zoom)
    tile_cache_max_age_s: int = 7 * 24 * 3600
    tile_memory_cache_entries: int = 4000
    # Planning (issue 7). Validation: gaps, overlaps and parts outside the county smaller than
    # plan_tolerance_m2 are numeric noise; a part, gap or overlap below plan_sliver_area_m2 is a
    # sliver; a grid is cut when a second area holds more than plan_grid_cut_min_m2 of it.
    plan_tolerance_m2: float = 1.0
    plan_sliver_area_m2: float = 10_000.0
    plan_grid_cut_min_m2: float = 100.0
    # A publish may take effect at most this long before now (history is not rewritten).
    plan_backdate_tolerance_s: int = 300
    # Comparison: the workload window and how many changed incidents are listed (main and
    # rural roads are told apart by main_road_classes, as in routing's coverage).
    plan_workload_days: int = 365
    plan_changed_incidents_max: int = 5000
    # Balanced proposal: objective = mean travel time / its value for the published layout
    # + plan_balance_weight * coefficient of variation of the workload; at most this many moves.
    plan_balance_weight: float = 1.0
    plan_balance_max_moves: int = 3000
    # Joint-zone patrol posts (MCLP): coverage target, time-of-day periods (hours), candidates.
    plan_patrol_target_min: float = 10.0
    plan_patrol_periods_h: str = "0-6,6-12,12-18,18-24"
    plan_patrol_candidates_max: int = 300
    # Background jobs (issue 15, gisapp.core.jobs): replays run in runner processes, at most
    # jobs_max_runners at once (each runs one job at a time); the service spawns them when a job is
    # queued (jobs_spawn; off: start `gisapp jobs worker` yourself). A runner writes its heartbeat
    # every jobs_heartbeat_s; a running job whose heartbeat is older than jobs_stale_after_s is failed
    # by the maintenance sweep (its runner died). An idle runner exits after jobs_idle_exit_s.
    jobs_max_runners: int = 2
    jobs_spawn: bool = True
    jobs_heartbeat_s: float = 5.0
    jobs_stale_after_s: float = 120.0
    jobs_idle_exit_s: float = 10.0
    jobs_poll_s: float = 1.0
    # The replay (issue 15): a sweep of scenarios runs in this many local processes, or on the
    # Dask distributed scheduler at this address (e.g. tcp://10.0.0.5:8786) when it is set.
    replay_workers: int = 2
    dask_scheduler: str = ""

    @classmethod
    def from_env(cls, overrides: dict[str, Any] | None = None) -> Settings:
        """Build settings from defaults, then ``GISAPP_<NAME>`` variables, then ``overrides``."""
        s = cls()
        for f in fields(cls):
            raw = os.environ.get("GISAPP_" + f.name.upper())
            if raw is None or raw == "":
                continue
            setattr(s, f.name, _parse(raw, getattr(s, f.name), f.name, str(f.type)))
        for k, v in (overrides or {}).items():
            if not hasattr(s, k):
                raise KeyError(f"unknown setting {k!r}")
            setattr(s, k, v)
        return s


def _parse(raw: str, current: Any, name: str, type_name: str = "") -> Any:
    import json

    try:
        if isinstance(current, bool):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
        if isinstance(current, tuple):
            if (current and isinstance(current[0], str)) or type_name.startswith("tuple[str"):
                return tuple(x.strip() for x in raw.split(",") if x.strip())
            return tuple(float(x) for x in raw.split(","))
        if isinstance(current, dict):
            merged = dict(current)
            merged.update(json.loads(raw))
            return merged
    except (ValueError, TypeError) as e:
        raise ValueError(f"GISAPP_{name.upper()}: cannot parse {raw!r}: {e}") from None
    return raw
