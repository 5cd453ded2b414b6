"""Outcomes and notes: how a leg or an incident ends (the rules file's list), and the texts people write.

Every check raises a keyed ValidationError (gisapp.core.i18n), so the person at the desk reads
why in their language; nothing is written before these checks pass.
"""

from __future__ import annotations

from typing import Any

from gisapp.core.errors import Text, ValidationError

from .rules import Outcome, Rules


def _category(rules: Rules, incident_type: str) -> str | None:
    t = rules.types.get(incident_type)
    return t.category if t else None


def _outcome(rules: Rules, code: Any) -> Outcome:
    if code is None or (isinstance(code, str) and not code.strip()):
        raise ValidationError("closing needs an outcome from the list", "outcome", key="err.outcome_required")
    if not isinstance(code, str) or code not in rules.outcomes:
        shown = code if isinstance(code, str) else repr(code)
        raise ValidationError(f"outcome {shown[:60]!r} is not in the list: {', '.join(rules.outcomes)}", "outcome",
                              key="err.outcome_unknown", params={"code": shown[:60]})
    return rules.outcomes[code]


def leg_outcome(rules: Rules, incident_type: str, code: Any) -> Outcome:
    """The outcome that closes a leg of an incident of ``incident_type``; 400 when missing or not allowed."""
    o = _outcome(rules, code)
    if not o.leg:
        raise ValidationError(f"outcome {o.code!r} only closes an incident without dispatch", "outcome",
                              key="err.outcome_not_for_leg", params={"code": o.code})
    cat = _category(rules, incident_type)
    if not o.applies_to(cat):
        raise ValidationError(f"outcome {o.code!r} does not apply to {cat or incident_type} incidents", "outcome",
                              key="err.outcome_not_for_category", params={"code": o.code})
    return o


def incident_outcome(rules: Rules, incident_type: str, code: Any) -> Outcome:
    """The outcome with which a dispatcher closes an incident without dispatch."""
    o = _outcome(rules, code)
    if not o.incident:
        raise ValidationError(f"outcome {o.code!r} does not close an incident without dispatch", "outcome",
                              key="err.outcome_not_for_incident", params={"code": o.code})
    cat = _category(rules, incident_type)
    if not o.applies_to(cat):
        raise ValidationError(f"outcome {o.code!r} does not apply to {cat or incident_type} incidents", "outcome",
                              key="err.outcome_not_for_category", params={"code": o.code})
    return o


def text_value(val: Any, field: str, limit: int, required: bool = False, required_key: str | None = None) -> str | None:
    """A note or reason: a string of at most ``limit`` characters (after trimming); None when empty
    and not required."""
    if val is not None and not isinstance(val, str):
        raise ValidationError("must be a string", field, key="err.text_not_string")
    val = (val or "").strip()
    if not val:
        if required:
            raise ValidationError("is required", field, key=required_key)
        return None
    if len(val) > limit:
        raise ValidationError(f"at most {limit} characters", field, key="err.note_too_long", params={"limit": limit})
    return val


def status_params(status: str, prefix: str = "status") -> dict[str, Text]:
    """A leg, unit or incident status for a keyed message: shown in the reader's language."""
    from gisapp.core.i18n import MESSAGES

    key = next((k for k in (f"dp.leg.{status}", f"unit.{status}", f"dp.status.{status}") if k in MESSAGES),
               f"dp.leg.{status}")
    return {prefix: Text(key, status)}
