"""Instants, local dates and anniversaries in an instrument's own time zone.

Every instant in gsomia is timezone-aware. Dates written in an instrument are local to its time
zone: an agreement that lapses "at midnight on the 23rd" in Seoul lapses at
2019-11-23T00:00+09:00. The zone database is read through :mod:`zoneinfo` (standard library).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gsomia.core.errors import InvalidInstantError, RegistryError

__all__ = [
    "Period",
    "add_period",
    "fixed",
    "local_date",
    "parse_instant",
    "parse_period",
    "start_of_day",
    "zone",
]

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PERIOD = re.compile(r"^P(?:(?P<y>\d+)Y)?(?:(?P<m>\d+)M)?(?:(?P<d>\d+)D)?$")


@dataclass(frozen=True, slots=True)
class Period:
    """A calendar period: whole months (years are twelve of them) and days.

    Kept apart from :class:`datetime.timedelta` because "one year" in a treaty is a calendar
    year from the anniversary, not 365 days.
    """

    months: int = 0
    days: int = 0

    def __post_init__(self) -> None:
        if self.months < 0 or self.days < 0:
            raise ValueError("a period is never negative")

    @property
    def is_zero(self) -> bool:
        return self.months == 0 and self.days == 0

    def times(self, n: int) -> Period:
        return Period(self.months * n, self.days * n)

    def __add__(self, other: Period) -> Period:
        return Period(self.months + other.months, self.days + other.days)

    def iso(self) -> str:
        """ISO 8601 duration, e.g. ``P1Y`` or ``P90D``."""
        years, months = divmod(self.months, 12)
        text = "P"
        text += f"{years}Y" if years else ""
        text += f"{months}M" if months else ""
        text += f"{self.days}D" if self.days or text == "P" else ""
        return text

    def __str__(self) -> str:
        parts: list[str] = []
        years, months = divmod(self.months, 12)
        for n, unit in ((years, "year"), (months, "month"), (self.days, "day")):
            if n:
                parts.append(f"{n} {unit}{'s' if n != 1 else ''}")
        return ", ".join(parts) or "0 days"


def parse_period(text: str) -> Period:
    """Parse ``P1Y``, ``P6M``, ``P90D``, ``P1Y6M`` (ISO 8601, calendar parts only)."""
    match = _PERIOD.match(text.strip().upper())
    if not match or text.strip().upper() == "P":
        raise ValueError(f"not an ISO 8601 period of years, months and days: {text!r}")
    years, months, days = (int(match.group(g) or 0) for g in ("y", "m", "d"))
    return Period(months=12 * years + months, days=days)


def add_period(start: date, period: Period) -> date:
    """``start`` plus ``period``; a day past the month's end is clamped (29 Feb + 1Y = 28 Feb).

    Always compute from the original anchor date (``add_period(anchor, period.times(k))``) so
    clamping does not drift over many terms.
    """
    month_index = start.month - 1 + period.months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return date(year, month, day) + timedelta(days=period.days)


def zone(name: str) -> ZoneInfo:
    """The time zone ``name`` (IANA), or a RegistryError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise RegistryError(f"unknown time zone {name!r}") from e


def fixed(instant: datetime) -> datetime:
    """The same instant, carrying the fixed UTC offset in force there at that instant.

    Why: PEP 495 makes ``==`` between two zones always False when either side is an ambiguous
    local time (a repeated hour), so instants the engine hands out carry fixed offsets. They still
    print as local time (``+09:00``) and compare exactly.
    """
    if instant.utcoffset() is None:
        raise InvalidInstantError(f"instant {instant.isoformat()} has no time zone")
    zone_info = instant.tzinfo
    if isinstance(zone_info, timezone):
        return instant
    # Via UTC, so a wall time in a gap or a repeated hour gets the offset really in force.
    local = instant.astimezone(UTC).astimezone(zone_info)
    return local.replace(tzinfo=timezone(local.utcoffset() or timedelta(0)), fold=0)


def start_of_day(day: date, tz: tzinfo) -> datetime:
    """The first instant of ``day`` in ``tz``, with a fixed offset.

    Where midnight falls in a gap (clocks jump forward at 00:00) the day begins at the jump;
    where midnight is repeated, at its first occurrence: both are what ``fold=0`` gives.
    """
    return fixed(datetime.combine(day, time(0, 0), tzinfo=tz))


def local_date(instant: datetime, tz: tzinfo) -> date:
    """The calendar date of ``instant`` as seen in ``tz``."""
    return instant.astimezone(tz).date()


def parse_instant(text: str, tz: tzinfo) -> datetime:
    """Parse an ISO 8601 instant or date; anything without an offset is read in ``tz``.

    A date alone means the first instant of that day in ``tz``. ``Z`` is accepted for UTC.
    """
    raw = text.strip()
    if not raw:
        raise InvalidInstantError("empty instant: give an ISO 8601 date or date-time")
    try:
        if _DATE_ONLY.match(raw):
            return start_of_day(date.fromisoformat(raw), tz)
        parsed = datetime.fromisoformat(raw.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError as e:
        raise InvalidInstantError(
            f"malformed instant {text!r}: use ISO 8601, e.g. 2019-11-23 or 2019-11-23T00:00+09:00"
        ) from e
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return fixed(parsed)
