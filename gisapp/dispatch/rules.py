"""Load the incident type catalogue, leg lifecycle and dispatch rules from their TOML file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gisapp.core.catalog import ROAD_CLASSES, SEVERITIES
from gisapp.core.tomlfile import TomlFiles

DEFAULT_RULES_PATH = Path(__file__).with_name("rules.toml")

CHANNELS = ("110", "122")
LEG_STATUSES = ("dispatched", "signed_off", "en_route", "arrived", "first_feedback", "closed", "cancelled",
                "handed_back")
# Statuses a leg never leaves.
TERMINAL_LEG = ("closed", "cancelled", "handed_back")
UNIT_KINDS = ("patrol_car", "traffic_car", "motorcycle", "accident_car", "command_car")
TARGETS = ("station", "squadron", "accident_section", "command_centre")
CAPABILITIES = ("accident_qualified", "breathalyser", "camera", "cones", "first_aid", "lights")
# The timestamp column each leg status sets when a leg enters it.
STATUS_COLUMN = {s: f"{s}_at" for s in LEG_STATUSES}


@dataclass(frozen=True)
class IncidentType:
    """One type of the catalogue: the lines it is taken on, its category and severities."""

    code: str
    channels: tuple[str, ...]
    category: str
    zh: str
    en: str
    severities: tuple[str, ...]

    @property
    def default_severity(self) -> str:
        return self.severities[0]


@dataclass(frozen=True)
class LegSpec:
    """One leg a rule dispatches: its role, target organisation kind and unit filter."""

    role: str
    target: str
    otherwise: str | None = None
    capability: str | None = None
    fallback: str | None = None
    unit_kinds: tuple[str, ...] | None = None
    min_crew: int | None = None


@dataclass(frozen=True)
class Outcome:
    """One way a leg or an incident ends: its code, names, the categories it applies to (None: every
    category), whether it closes a leg and whether it closes an incident without dispatch."""

    code: str
    zh: str
    en: str
    categories: tuple[str, ...] | None
    leg: bool
    incident: bool

    def applies_to(self, category: str | None) -> bool:
        return self.categories is None or category in self.categories

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "zh": self.zh, "en": self.en,
                "categories": list(self.categories) if self.categories is not None else None,
                "leg": self.leg, "incident": self.incident}


@dataclass(frozen=True)
class Rule:
    """A dispatch rule: when it matches an incident, the legs it creates."""

    name: str
    categories: tuple[str, ...] | None
    severities: tuple[str, ...] | None
    channels: tuple[str, ...] | None
    station_takes_part_in_traffic: bool | None
    legs: tuple[LegSpec, ...]
    zh: str = ""  # the rule as a person reads it (issue 13); empty: the i18n key rule.<name>
    en: str = ""
    # the class of the road the incident is on (issue 15: the squadrons keep the trunk roads);
    # an incident on no road matches no rule that names road classes
    road_classes: tuple[str, ...] | None = None

    def matches(self, itype: IncidentType, severity: str, channel: str, station_traffic: bool | None,
                road_class: str | None = None) -> bool:
        """Return True when this rule applies to an incident with these attributes."""
        if self.road_classes is not None and road_class not in self.road_classes:
            return False
        if self.categories is not None and itype.category not in self.categories:
            return False
        if self.severities is not None and severity not in self.severities:
            return False
        if self.channels is not None and channel not in self.channels:
            return False
        if self.station_takes_part_in_traffic is not None and bool(station_traffic) != self.station_takes_part_in_traffic:
            return False
        return True


@dataclass(frozen=True)
class Rules:
    """The whole rule set of one version."""

    version: str
    description: str
    types: dict[str, IncidentType]
    transitions: dict[str, tuple[str, ...]]
    needs_unit: tuple[str, ...]
    rules: tuple[Rule, ...]
    path: str = ""
    categories: tuple[str, ...] = field(default=())
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    hand_back_from: tuple[str, ...] = ("dispatched", "signed_off")
    mediation_outcome: str = "mediation"

    def match(self, itype: IncidentType, severity: str, channel: str, station_traffic: bool | None,
              road_class: str | None = None) -> Rule:
        """Return the first rule that applies (the file must end with a catch-all rule).

        ``station_traffic``: whether the station takes part in traffic at the incident's report
        time; ``road_class``: the class of the road the incident is on (None: on no road).
        """
        for rule in self.rules:
            if rule.matches(itype, severity, channel, station_traffic, road_class):
                return rule
        raise LookupError(f"no dispatch rule matches type {itype.code!r} severity {severity!r}")

    def types_of_category(self, category: str) -> list[str]:
        return [t.code for t in self.types.values() if t.category == category]

    def to_json(self) -> dict[str, Any]:
        """The catalogue as the API serves it."""
        return {
            "version": self.version,
            "description": self.description,
            "channels": list(CHANNELS),
            "types": [{"code": t.code, "channels": list(t.channels), "category": t.category, "zh": t.zh,
                       "en": t.en, "severities": list(t.severities), "default_severity": t.default_severity}
                      for t in self.types.values()],
            "lifecycle": {"transitions": {k: list(v) for k, v in self.transitions.items()},
                          "needs_unit": list(self.needs_unit)},
            "leg_transitions": {"transitions": {k: list(v) for k, v in self.transitions.items()},
                                "needs_unit": list(self.needs_unit), "hand_back_from": list(self.hand_back_from),
                                "terminal": list(TERMINAL_LEG),
                                "needs_note": ["first_feedback"], "needs_outcome": ["closed"]},
            "outcomes": [o.to_json() for o in self.outcomes.values()],
            "rules": [{"name": r.name, "zh": r.zh, "en": r.en,
                       "when": {k: (list(v) if isinstance(v, tuple) else v) for k, v in (
                           ("categories", r.categories), ("severities", r.severities), ("channels", r.channels),
                           ("station_takes_part_in_traffic", r.station_takes_part_in_traffic),
                           ("road_classes", r.road_classes)) if v is not None},
                       "legs": [{k: v for k, v in vars(leg).items() if v is not None} for leg in r.legs]}
                      for r in self.rules],
        }


class RulesError(ValueError):
    """The rules file is malformed; the message names the place."""


def _tuple(val: Any, where: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    if not isinstance(val, list) or not all(isinstance(x, str) for x in val):
        raise RulesError(f"{where}: must be a list of strings")
    if allowed is not None:
        bad = [x for x in val if x not in allowed]
        if bad:
            raise RulesError(f"{where}: {bad} not among {', '.join(allowed)}")
    return tuple(val)


def parse_rules(doc: dict[str, Any], path: str = "") -> Rules:
    """Check a parsed rules document and return the rule set; raise RulesError naming the problem."""
    version = doc.get("version")
    if not isinstance(version, str) or not version:
        raise RulesError("version: a non-empty string is required")
    types: dict[str, IncidentType] = {}
    for code, t in (doc.get("types") or {}).items():
        where = f"types.{code}"
        if not isinstance(t, dict):
            raise RulesError(f"{where}: must be a table")
        for key in ("category", "zh", "en"):
            if not isinstance(t.get(key), str) or not t[key]:
                raise RulesError(f"{where}.{key}: a non-empty string is required")
        sev = _tuple(t.get("severities", ["none"]), f"{where}.severities", SEVERITIES)
        if not sev:
            raise RulesError(f"{where}.severities: at least one")
        types[code] = IncidentType(code, _tuple(t.get("channels"), f"{where}.channels", CHANNELS),
                                   t["category"], t["zh"], t["en"], sev)
    if not types:
        raise RulesError("types: the catalogue is empty")
    life = doc.get("lifecycle") or {}
    raw_tr = life.get("transitions") or {}
    transitions = {s: _tuple(raw_tr.get(s, []), f"lifecycle.transitions.{s}", LEG_STATUSES) for s in LEG_STATUSES}
    unknown = set(raw_tr) - set(LEG_STATUSES)
    if unknown:
        raise RulesError(f"lifecycle.transitions: unknown statuses {sorted(unknown)}")
    needs_unit = _tuple(life.get("needs_unit", []), "lifecycle.needs_unit", LEG_STATUSES)
    rules = []
    for i, r in enumerate(doc.get("rules") or []):
        where = f"rules[{i}]"
        when = r.get("when") or {}
        unknown = set(when) - {"categories", "severities", "channels", "station_takes_part_in_traffic",
                               "road_classes"}
        if unknown:
            raise RulesError(f"{where}.when: unknown keys {sorted(unknown)}")
        legs = []
        for j, leg in enumerate(r.get("legs") or []):
            lw = f"{where}.legs[{j}]"
            if leg.get("role") not in ("primary", "specialist"):
                raise RulesError(f"{lw}.role: primary or specialist")
            for key in ("target", "otherwise"):
                if leg.get(key) is not None and leg[key] not in TARGETS:
                    raise RulesError(f"{lw}.{key}: one of {', '.join(TARGETS)}")
            if leg.get("target") is None:
                raise RulesError(f"{lw}.target: required")
            if leg.get("capability") is not None and leg["capability"] not in CAPABILITIES:
                raise RulesError(f"{lw}.capability: one of {', '.join(CAPABILITIES)}")
            if leg.get("fallback") not in (None, "joint_zone"):
                raise RulesError(f"{lw}.fallback: only 'joint_zone'")
            kinds = _tuple(leg["unit_kinds"], f"{lw}.unit_kinds", UNIT_KINDS) if "unit_kinds" in leg else None
            crew = leg.get("min_crew")
            if crew is not None and (isinstance(crew, bool) or not isinstance(crew, int) or not 1 <= crew <= 20):
                raise RulesError(f"{lw}.min_crew: an integer from 1 to 20")
            legs.append(LegSpec(leg["role"], leg["target"], leg.get("otherwise"), leg.get("capability"),
                                leg.get("fallback"), kinds or None, crew))
        if not legs:
            raise RulesError(f"{where}.legs: at least one leg")
        if len({leg.role for leg in legs}) != len(legs):
            raise RulesError(f"{where}.legs: one leg per role")
        stt = when.get("station_takes_part_in_traffic")
        if stt is not None and not isinstance(stt, bool):
            raise RulesError(f"{where}.when.station_takes_part_in_traffic: true or false")
        rules.append(Rule(
            name=str(r.get("name") or f"rule_{i}"),
            categories=_tuple(when["categories"], f"{where}.when.categories") if "categories" in when else None,
            severities=_tuple(when["severities"], f"{where}.when.severities", SEVERITIES)
            if "severities" in when else None,
            channels=_tuple(when["channels"], f"{where}.when.channels", CHANNELS) if "channels" in when else None,
            station_takes_part_in_traffic=stt,
            road_classes=_tuple(when["road_classes"], f"{where}.when.road_classes", ROAD_CLASSES)
            if "road_classes" in when else None,
            legs=tuple(legs),
            zh=str(r.get("zh") or ""),
            en=str(r.get("en") or ""),
        ))
    if not rules or any(x is not None for x in (rules[-1].categories, rules[-1].severities, rules[-1].channels,
                                                 rules[-1].station_takes_part_in_traffic, rules[-1].road_classes)):
        raise RulesError("rules: the last rule must match everything (when = {})")
    cats = tuple(sorted({t.category for t in types.values()}))
    outcomes = _parse_outcomes(doc.get("outcomes") or [], cats)
    hand_back_from = _tuple(life.get("hand_back_from", ["dispatched", "signed_off"]), "lifecycle.hand_back_from",
                            LEG_STATUSES)
    mediation = str(doc.get("mediation_outcome", "mediation"))
    if outcomes and mediation not in outcomes:
        raise RulesError(f"mediation_outcome: {mediation!r} is not an outcome")
    return Rules(version, str(doc.get("description", "")), types, transitions, needs_unit, tuple(rules),
                 path, cats, outcomes, hand_back_from, mediation)


def _parse_outcomes(raw: Any, categories: tuple[str, ...]) -> dict[str, Outcome]:
    if not isinstance(raw, list):
        raise RulesError("outcomes: a list of tables ([[outcomes]])")
    out: dict[str, Outcome] = {}
    for i, o in enumerate(raw):
        where = f"outcomes[{i}]"
        if not isinstance(o, dict):
            raise RulesError(f"{where}: must be a table")
        for key in ("code", "zh", "en"):
            if not isinstance(o.get(key), str) or not o[key]:
                raise RulesError(f"{where}.{key}: a non-empty string is required")
        if o["code"] in out:
            raise RulesError(f"{where}.code: {o['code']!r} twice")
        cats = _tuple(o["categories"], f"{where}.categories", categories) if o.get("categories") is not None else None
        for key in ("leg", "incident"):
            if not isinstance(o.get(key, key == "leg"), bool):
                raise RulesError(f"{where}.{key}: true or false")
        out[o["code"]] = Outcome(o["code"], o["zh"], o["en"], cats, o.get("leg", True), o.get("incident", False))
    return out


_files: TomlFiles[Rules] = TomlFiles(parse_rules, RulesError)


def load_rules(settings=None) -> Rules:
    """Return the rule set of the configured file, re-read when the file changes."""
    return _files.load(str(getattr(settings, "dispatch_rules_path", "") or DEFAULT_RULES_PATH))
