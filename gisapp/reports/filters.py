"""A report's period and filters: Beijing-local dates and months, organisation, channel, type.

Every check raises a keyed error naming the field (gisapp.core.i18n), so the reader sees why in
their language: a malformed or reversed period, one longer than five years, an unknown
organisation, channel or type (400/404), another organisation than a chief's own (403).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from gisapp.core import scope
from gisapp.core.errors import Forbidden, NotFound, ValidationError
from gisapp.dispatch.rules import CHANNELS, load_rules

MAX_YEARS = 5
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_FIRST_YEAR, _LAST_YEAR = 1970, 2999


@dataclass(frozen=True)
class Filters:
    """A checked report request: ``[start, end)`` in UTC covering local days ``first_day`` ..
    ``last_day``; ``organisation_id`` the organisation asked (or a chief's own), None for all;
    ``orgs`` the organisations the user may see (None: all)."""

    first_day: date
    last_day: date
    tz: str
    organisation_id: int | None = None
    channel: str | None = None
    type: str | None = None
    orgs: frozenset[int] | None = None
    as_of: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def start(self) -> datetime:
        return local_midnight(self.first_day, self.tz)

    @property
    def end(self) -> datetime:
        return local_midnight(self.last_day + timedelta(days=1), self.tz)

    @property
    def months(self) -> list[str]:
        """The local months the period touches, ``YYYY-MM``."""
        out, y, m = [], self.first_day.year, self.first_day.month
        while (y, m) <= (self.last_day.year, self.last_day.month):
            out.append(f"{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out

    @property
    def types(self) -> list[str] | None:
        return [self.type] if self.type else None

    def period_json(self) -> dict[str, Any]:
        return {"from": self.first_day.isoformat(), "to": self.last_day.isoformat(), "timezone": self.tz,
                "start": self.start.isoformat(), "end": self.end.isoformat(), "as_of": self.as_of.isoformat(),
                "months": self.months}

    def filters_json(self) -> dict[str, Any]:
        return {"organisation_id": self.organisation_id, "channel": self.channel, "type": self.type}

    def with_month(self, month: str) -> Filters:
        """The same filters over one local month (the whole month)."""
        first = parse_month(month, "month")
        return Filters(first, month_end(first), self.tz, self.organisation_id, self.channel, self.type,
                       self.orgs, self.as_of)


def local_midnight(day: date, tz: str) -> datetime:
    return datetime.combine(day, time(0), ZoneInfo(tz)).astimezone(UTC)


def month_end(first: date) -> date:
    nxt = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def shift_month(month: str, n: int) -> str:
    y, m = int(month[:4]), int(month[5:7])
    k = y * 12 + (m - 1) + n
    return f"{k // 12:04d}-{k % 12 + 1:02d}"


def parse_month(raw: Any, name: str) -> date:
    m = _MONTH.fullmatch(raw) if isinstance(raw, str) else None
    if not m or not (1 <= int(m.group(2)) <= 12) or not (_FIRST_YEAR <= int(m.group(1)) <= _LAST_YEAR):
        raise ValidationError(f"must be a month YYYY-MM, got {str(raw)[:20]!r}", name, key="err.reports.month",
                              params={"value": str(raw)[:20]})
    return date(int(m.group(1)), int(m.group(2)), 1)


def parse_day(raw: Any, name: str) -> date:
    try:
        if not isinstance(raw, str) or not _DATE.fullmatch(raw):
            raise ValueError
        d = date.fromisoformat(raw)
        if not _FIRST_YEAR <= d.year <= _LAST_YEAR:
            raise ValueError
    except ValueError:
        raise ValidationError(f"must be a date YYYY-MM-DD, got {str(raw)[:20]!r}", name, key="err.reports.date",
                              params={"value": str(raw)[:20]}) from None
    return d


def today(tz: str, now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(ZoneInfo(tz)).date()


def parse_period(args: dict, tz: str, now: datetime | None = None) -> tuple[date, date]:
    """The local days of ``month=YYYY-MM`` or ``from`` / ``to`` (``to`` inclusive); default: the
    current month to date. Only ``from``: to today; only ``to``: from the first of its month."""
    month, start, end = args.get("month"), args.get("from"), args.get("to")
    if month and (start or end):
        raise ValidationError("give a month or from/to, not both", "month", key="err.reports.month_or_dates")
    if month:
        first = parse_month(month, "month")
        return first, month_end(first)
    day = today(tz, now)
    last = parse_day(end, "to") if end else None
    first = parse_day(start, "from") if start else None
    if first is None:
        first = (last or day).replace(day=1)
    if last is None:
        last = max(day, first)
    if last < first:
        raise ValidationError("the end of the period is before its start", "to", key="err.reports.period_reversed")
    try:
        limit = first.replace(year=first.year + MAX_YEARS)
    except ValueError:  # 29 February
        limit = first.replace(year=first.year + MAX_YEARS, day=28)
    if last >= limit:
        raise ValidationError(f"a period of at most {MAX_YEARS} years", "to", key="err.reports.period_too_long",
                              params={"years": MAX_YEARS})
    return first, last


def organisation_id(conn: psycopg.Connection, raw: Any, orgs: frozenset[int] | None, name: str = "organisation") -> int | None:
    """The organisation asked (id or code), checked against the caller's scope; None when none asked
    (a chief: their own)."""
    if raw is None or raw == "":
        if orgs is None:
            return None
        if len(orgs) == 1:
            return next(iter(orgs))
        raise Forbidden("your role sees no organisation", name, key="err.organisation.none")
    if not isinstance(raw, (str, int)) or (isinstance(raw, str) and (len(raw) > 100 or re.search(r"[\x00-\x1f\x7f]", raw))):
        raise ValidationError("must be an organisation id or code", name, key="err.organisation.bad_id")
    if isinstance(raw, int) or re.fullmatch(r"[0-9]{1,18}", raw):
        row = conn.execute("SELECT id FROM organisation WHERE id = %s", [int(raw)]).fetchone()
    else:
        row = conn.execute("SELECT id FROM organisation WHERE code = %s", [raw]).fetchone()
    shown = str(raw)[:40]
    if row is None:
        if orgs is not None:  # do not tell a scoped caller which organisations exist
            raise Forbidden(f"organisation {shown!r} is outside your scope", name,
                            key="err.organisation.outside_scope", params={"id": shown})
        raise NotFound(f"no organisation {shown!r}", name, key="err.organisation.not_found", params={"id": shown})
    if orgs is not None and row["id"] not in orgs:
        raise Forbidden(f"organisation {shown!r} is outside your scope", name,
                        key="err.organisation.outside_scope", params={"id": shown})
    return row["id"]


def parse_filters(conn: psycopg.Connection, settings, user: dict | None, args: dict,
                  now: datetime | None = None) -> Filters:
    """Check a report request's ``month`` / ``from`` / ``to``, ``organisation``, ``channel`` and ``type``."""
    tz = settings.local_timezone
    first, last = parse_period(args, tz, now)
    orgs = scope.visible_organisations(user)
    org = organisation_id(conn, args.get("organisation") or args.get("organisation_id"), orgs,
                          "organisation_id" if args.get("organisation_id") and not args.get("organisation")
                          else "organisation")
    channel = args.get("channel") or None
    if channel is not None and channel not in CHANNELS:
        raise ValidationError(f"channel must be one of {', '.join(CHANNELS)}", "channel", key="err.reports.channel",
                              params={"options": list(CHANNELS)})
    itype = args.get("type") or None
    if itype is not None:
        rules = load_rules(settings)
        if itype not in rules.types:
            raise ValidationError(f"no incident type {str(itype)[:40]!r}", "type", key="err.reports.type",
                                  params={"value": str(itype)[:40]})
    return Filters(first, last, tz, org, channel, itype, orgs, now or datetime.now(UTC))
