"""Hold every colour, width and icon of the maps in one place (Python legends and browser styles).

The browser's style functions (web/static/js/gisapp-map.js) read the same tables from
``style_config()``, so a legend and the features it explains can never disagree.
"""

from __future__ import annotations

from typing import Any

FONT_STACK = ("'Microsoft YaHei', 'PingFang SC', 'Noto Sans CJK SC', 'Source Han Sans SC', 'WenQuanYi Micro Hei', "
              "'Noto Sans SC', sans-serif")

# Road classes, drawn from the most to the least important.
ROAD_CLASS_ORDER = ("expressway", "national", "provincial", "county", "ramp", "urban", "township", "village",
                    "other")
ROAD_STYLE: dict[str, dict[str, Any]] = {
    "expressway": {"color": "#e2702a", "weight": 3.6},
    "national": {"color": "#ef9a32", "weight": 3.0},
    "provincial": {"color": "#f2bf46", "weight": 2.6},
    "county": {"color": "#cdb56d", "weight": 2.0},
    "ramp": {"color": "#e2702a", "weight": 1.6},
    "urban": {"color": "#8e9aab", "weight": 1.6},
    "township": {"color": "#9aa4b2", "weight": 1.4},
    "village": {"color": "#b8c0cb", "weight": 1.0},
    "other": {"color": "#c9ced6", "weight": 0.9},
}

# Response-time bins (minutes) and their colours; a last colour for "above the last bin".
TIME_BREAKS_MIN = (5, 10, 15, 20, 30)
TIME_COLORS = ("#1a9850", "#66bd63", "#a6d96a", "#fee08b", "#fdae61", "#d73027")
UNREACHABLE_COLOR = "#6b21a8"
GAP_HALO = {"color": "#e11d48", "weight_add": 6.0, "opacity": 0.35}
# Road segments no unit drove along in the patrol window (a chief's patrol gaps).
PATROL_GAP = {"color": "#7c3aed", "weight": 3.0}

UNIT_STATUS_COLORS = {
    "available": "#16a34a",
    "assigned": "#f59e0b",
    "en_route": "#2563eb",
    "on_scene": "#dc2626",
    "off_duty": "#9ca3af",
    "out_of_service": "#4b5563",
}
UNIT_KIND_ICONS = {
    "patrol_car": "fa-car-side",
    "traffic_car": "fa-car",
    "motorcycle": "fa-motorcycle",
    "accident_car": "fa-truck-medical",
    "command_car": "fa-van-shuttle",
}

ORG_STYLE = {
    "station": {"color": "#1d4ed8", "icon": "fa-shield-halved"},
    "squadron": {"color": "#0f766e", "icon": "fa-traffic-light"},
    "accident_section": {"color": "#b91c1c", "icon": "fa-car-burst"},
    "command_centre": {"color": "#6d28d9", "icon": "fa-tower-broadcast"},
}
MERGED_RING = "#f59e0b"

CHANNEL_STYLE = {
    "110": {"color": "#1d4ed8", "icon": "fa-bell"},
    "122": {"color": "#ea580c", "icon": "fa-car-burst"},
}
SEVERE = ("injury", "fatal")

JURISDICTION_PALETTE = ("#8dd3c7", "#ffe58a", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69",
                        "#fccde5", "#c7c7c7", "#bc80bd", "#ccebc5", "#ffd92f", "#a6cee3", "#e5c494",
                        "#b2df8a", "#f4a582")
JURISDICTION_LINE = "#334155"
TRAFFIC_LINE = "#0f766e"
JOINT_ZONE_PALETTE = ("#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#65a30d")
GRID_LINE = "#475569"

SHARE_BREAKS = (0.5, 0.7, 0.85, 0.95)
SHARE_COLORS = ("#d73027", "#fc8d59", "#fee08b", "#91cf60", "#1a9850")
NO_DATA_COLOR = "#cbd5e1"
# The chief's grid measures, from good to bad (layers.builders.grid_measures).
MEASURE_COLORS = ("#1a9850", "#91cf60", "#fee08b", "#fc8d59", "#d73027")
INCIDENT_COLORS = ("#fff5eb", "#fdd0a2", "#fd8d3c", "#d94801", "#7f2704")

SERVICE_AREA_COLORS = ("#1e40af", "#2563eb", "#60a5fa", "#93c5fd", "#dbeafe", "#eff6ff")
SERVICE_POINT = {"color": "#9333ea", "icon": "fa-id-card"}
VILLAGE = {"color": "#8b6f47", "fill": "#e7d8bf"}
COUNTY_LINE = "#1e293b"
LAND_FILL = "#fbfaf6"
HEAT_GRADIENT = {0.2: "#2c7bb6", 0.4: "#abd9e9", 0.6: "#ffffbf", 0.8: "#fdae61", 1.0: "#d7191c"}


def time_color(seconds: float | None) -> str:
    """Return the colour of a response time in seconds (None: unreachable)."""
    if seconds is None:
        return UNREACHABLE_COLOR
    minutes = seconds / 60
    for brk, col in zip(TIME_BREAKS_MIN, TIME_COLORS, strict=False):
        if minutes <= brk:
            return col
    return TIME_COLORS[-1]


def share_color(share: float | None) -> str:
    """Return the colour of a share of road km within target (None: not computed)."""
    if share is None:
        return NO_DATA_COLOR
    for brk, col in zip(SHARE_BREAKS, SHARE_COLORS, strict=False):
        if share < brk:
            return col
    return SHARE_COLORS[-1]


def class_breaks(values: list[float], n: int = 5) -> list[float]:
    """Return ``n - 1`` increasing breaks splitting ``values`` into quantile classes (at least 1 apart)."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return [1, 2, 3, 4][: n - 1]
    out: list[float] = []
    for i in range(1, n):
        q = vals[min(len(vals) - 1, int(len(vals) * i / n))]
        q = max(q, (out[-1] + 1) if out else 1)
        out.append(q)
    return out


def binned_color(value: float | None, breaks: list[float], colors: tuple[str, ...]) -> str:
    """Return the colour of ``value`` for increasing ``breaks`` (len(colors) == len(breaks) + 1)."""
    if value is None:
        return NO_DATA_COLOR
    for brk, col in zip(breaks, colors, strict=False):
        if value < brk:
            return col
    return colors[len(breaks)]


def style_config() -> dict[str, Any]:
    """Return the tables the browser's style functions use (emitted into each page)."""
    return {
        "roads": ROAD_STYLE,
        "roadOrder": list(ROAD_CLASS_ORDER),
        "timeBreaksMin": list(TIME_BREAKS_MIN),
        "timeColors": list(TIME_COLORS),
        "unreachable": UNREACHABLE_COLOR,
        "gapHalo": GAP_HALO,
        "unitStatus": UNIT_STATUS_COLORS,
        "unitKindIcons": UNIT_KIND_ICONS,
        "org": ORG_STYLE,
        "mergedRing": MERGED_RING,
        "channel": CHANNEL_STYLE,
        "serviceAreaColors": list(SERVICE_AREA_COLORS),
        "gridLine": GRID_LINE,
        "shareBreaks": list(SHARE_BREAKS),
        "shareColors": list(SHARE_COLORS),
        "noData": NO_DATA_COLOR,
    }
