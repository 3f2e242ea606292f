"""Property tests of the lifecycle engine over random event histories.

Two families of instruments are exercised:

- the real JPN-KOR GSOMIA with its recorded events replaced by random ones;
- synthetic instruments with a random entry-into-force day (any day of the month, 29 February
  and month ends included), initial term and renewal (in months or days, or none), notice period
  (in months or days), time zone and termination mode ("at-term-end" or "after-notice").

Term boundaries, notice deadlines, notice ends and the whole replay (what ends the instrument and
when, which events apply) are computed here by hand from the documented conventions
(docs/lifecycle.md), never with the engine's helpers:

- renewal terms run from the end of the initial term: boundary 0 is entry into force, boundary 1
  is ``EIF + initial``, boundary k is ``(EIF + initial) + (k - 1) × renewal``, from that anchor;
- the notice deadline of a term ending on ``end`` is the last day D with
  ``D + notice <= end - 1 day``;
- an instrument ends at the earliest of a pending notice's end, a scheduled termination and a
  fixed term's expiry.

Random instants are given in UTC, at the local fixed offset, in the instrument's ZoneInfo or in
another zone's, and are often placed at or next to a term boundary, a deadline or a clock change.

One restriction remains, not to avoid an engine bug: every period is whole months or whole days
(as every clause in the registry is; ``shift`` and the closed form of ``Plan.deadline`` are
written for those). An indefinite term comes with either termination mode; under at-term-end a
notice on it has no term end to take effect at, and stays pending.
"""

from __future__ import annotations

import calendar
import collections
import dataclasses
import functools
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gsomia.core.agreements import Event, EventKind, Instrument, TermClause, TerminationMode
from gsomia.core.lifecycle import History, NoticeState, Segment, State, WhatIf, resolve
from gsomia.core.provenance import Evidence, Provenance
from gsomia.core.time import Period
from gsomia.loader import load_registry

US = timedelta(microseconds=1)
DAY = timedelta(days=1)
PROVENANCE = Provenance("property test", Evidence.DESIGN_NOTE)
KST = timezone(timedelta(hours=9))
SEOUL = ZoneInfo("Asia/Seoul")

# Zones where offsets, DST or the date line make local days differ from UTC days. Santiago and
# Havana change their clocks at local midnight; Lord Howe by half an hour; Chatham is +12:45.
ZONES = (
    "Asia/Seoul",
    "America/New_York",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "America/Santiago",
    "America/Havana",
    "America/St_Johns",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Europe/London",
    "UTC",
)

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

ORDER = {State.NOT_YET_IN_FORCE: 0, State.IN_FORCE: 1, State.TERMINATED: 2}
STOPS = (EventKind.NOTICE_SUSPENSION, EventKind.NOTICE_WITHDRAWAL)


@pytest.fixture(scope="module")
def real() -> Instrument:
    return load_registry().instrument("JPN-KOR-GSOMIA")


# The real instrument, loaded once at import for the strategies (they are built at import time).
REAL = load_registry().instrument("JPN-KOR-GSOMIA")


# -- calendar arithmetic, by hand ------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` (negative: minus), clamped to the end of a shorter month."""
    year, month0 = divmod(day.year * 12 + day.month - 1 + months, 12)
    return date(year, month0 + 1, min(day.day, calendar.monthrange(year, month0 + 1)[1]))


def month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def shift(day: date, period: Period) -> date:
    """``day`` plus a period that is either whole months or whole days (never both)."""
    assert period.months == 0 or period.days == 0
    return add_months(day, period.months) + timedelta(days=period.days)


def utc(instant: datetime) -> datetime:
    return instant.astimezone(UTC)


def utc_or_none(instant: datetime | None) -> datetime | None:
    return utc(instant) if instant is not None else None


def same_instant(a: datetime | None, b: datetime | None) -> bool:
    if a is None or b is None:
        return a is b
    return utc(a) == utc(b)


def earliest(*instants: datetime | None) -> datetime | None:
    """The earliest of the instants that exist (None: none does)."""
    known = [utc(t) for t in instants if t is not None]
    return min(known) if known else None


def effective_of(event: Event) -> datetime:
    """When a termination (or a resumption under a claim) takes effect: its ``effective`` instant,
    never before the event itself."""
    return max(utc(event.effective or event.at), utc(event.at))


@dataclass(frozen=True)
class Plan:
    """An instrument's lifecycle parameters, as this test understands them."""

    anchor: date  # entry into force (local day)
    zone: str
    initial: Period | None
    renewal: Period | None
    notice: Period
    mode: TerminationMode

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    def first_instant(self, day: date) -> datetime:
        """The first instant of local ``day`` (checked: 1 µs earlier is the day before)."""
        instant = utc(datetime.combine(day, time(0), tzinfo=self.tz))
        assert instant.astimezone(self.tz).date() == day
        assert (instant - US).astimezone(self.tz).date() < day
        return instant

    def local_day(self, instant: datetime) -> date:
        return instant.astimezone(self.tz).date()

    @property
    def entry(self) -> datetime:
        return self.first_instant(self.anchor)

    def boundary(self, index: int) -> date | None:
        """The local day term ``index`` starts: entry into force, the end of the initial term,
        then the end of the initial term plus ``index - 1`` renewals (from that one anchor)."""
        if index == 0:
            return self.anchor
        if self.initial is None:
            return None
        first_end = shift(self.anchor, self.initial)
        if index == 1:
            return first_end
        if self.renewal is None:
            return None
        return shift(first_end, self.renewal.times(index - 1))

    def boundaries(self) -> Iterator[date]:
        """Local days on which terms start, in order (finite unless the term renews)."""
        for index in itertools.count():
            day = self.boundary(index)
            if day is None:
                return
            yield day

    def boundary_list(self, until: date) -> list[date]:
        out: list[date] = []
        for day in self.boundaries():
            out.append(day)
            if day > until:
                break
        return out

    @property
    def expiry(self) -> datetime | None:
        """The end of a fixed term (an initial term with no renewal)."""
        if self.initial is None or self.renewal is not None:
            return None
        end = self.boundary(1)
        assert end is not None
        return self.first_instant(end)

    def deadline(self, end: date) -> date:
        """Last local day D a notice may be given to end a term at ``end``: the last D with
        ``D + notice <= end - 1 day``. For days, ``end - N - 1 day``; for months, the same day N
        months back, except that from a month's last day one lands on a month's last day (a month
        before 29 Feb is 31 Jan: 31 Jan + 1 month is clamped to 29 Feb)."""
        last = end - DAY
        if self.notice.months == 0:
            return last - timedelta(days=self.notice.days)
        back = add_months(last, -self.notice.months)
        return month_end(back) if last == month_end(last) else back

    def notice_end(self, given: datetime) -> datetime | None:
        """When a notice given at ``given`` ends the instrument, leaving expiry aside; None when
        no term end is left for it (a fixed term past its last deadline simply expires)."""
        if self.mode is TerminationMode.AFTER_NOTICE:
            local = given.astimezone(self.tz)
            day = shift(local.date(), self.notice)
            # local.time() keeps the fold of a repeated hour.
            return utc(datetime.combine(day, local.time(), tzinfo=self.tz))
        given_day = self.local_day(given)
        for index, day in enumerate(self.boundaries()):
            if index >= 1 and given_day <= self.deadline(day):
                return self.first_instant(day)
        return None


def plan_of(instrument: Instrument) -> Plan:
    assert instrument.entry_into_force.on is not None
    return Plan(
        anchor=instrument.entry_into_force.on,
        zone=instrument.timezone,
        initial=instrument.term.initial,
        renewal=instrument.term.renewal,
        notice=instrument.termination.notice,
        mode=instrument.termination.mode,
    )


def build(plan: Plan, events: Sequence[Event]) -> Instrument:
    """A synthetic instrument from the real one's clauses with the plan's parameters."""
    return dataclasses.replace(
        REAL,
        id="SYNTHETIC",
        timezone=plan.zone,
        entry_into_force=dataclasses.replace(REAL.entry_into_force, on=plan.anchor),
        term=TermClause(plan.initial, plan.renewal, REAL.term.clause),
        termination=dataclasses.replace(REAL.termination, mode=plan.mode, notice=plan.notice),
        events=tuple(events),
    )


REAL_PLAN = Plan(
    anchor=date(2016, 11, 23),
    zone="Asia/Seoul",
    initial=Period(months=12),
    renewal=Period(months=12),
    notice=Period(days=90),
    mode=TerminationMode.AT_TERM_END,
)


# -- the replay, by hand ----------------------------------------------------------------------


@dataclass(frozen=True)
class Stretch:
    """What the engine's Segment should be; causes are sets where ends tie at one instant."""

    start: datetime | None
    state: State
    notice: NoticeState
    causes: frozenset[str]
    pending_end: datetime | None = None
    pending_causes: frozenset[str] = frozenset({""})
    claim: str | None = None


@dataclass(frozen=True)
class Replay:
    stretches: tuple[Stretch, ...]
    applied: tuple[str, ...]
    ignored: tuple[str, ...]

    @property
    def terminated_at(self) -> datetime | None:
        last = self.stretches[-1]
        return last.start if last.state is State.TERMINATED else None


def replay(plan: Plan, events: Sequence[Event]) -> Replay:
    """The instrument's history per the conventions. Three ends are tracked apart: a pending
    notice's, the earliest scheduled termination's and a fixed term's expiry; it ends at the
    earliest. Events apply in instant order (recorded order at one instant)."""
    entry = plan.entry
    applied: list[str] = []
    ignored: list[str] = []
    notice = NoticeState.NONE
    notice_end: tuple[datetime, frozenset[str]] | None = None
    scheduled: tuple[datetime, frozenset[str]] | None = None
    expiry = (plan.expiry, frozenset({"expiry"})) if plan.expiry else None
    claim: Event | None = None

    def pending() -> tuple[datetime | None, frozenset[str]]:
        ends = [e for e in (notice_end, scheduled, expiry) if e is not None]
        first = earliest(*(at for at, _ in ends))
        if first is None:
            return None, frozenset({""})
        return first, frozenset().union(*(why for at, why in ends if at == first))

    def stretch(at: datetime, cause: str) -> Stretch:
        end, why = pending()
        return Stretch(at, State.IN_FORCE, notice, frozenset({cause}), end, why, claim and claim.id)

    stretches = [
        Stretch(None, State.NOT_YET_IN_FORCE, NoticeState.NONE, frozenset({""})),
        stretch(entry, "entry-into-force"),
    ]
    ended: datetime | None = None

    def terminate(at: datetime, why: frozenset[str]) -> None:
        nonlocal ended
        ended = at
        stretches.append(Stretch(at, State.TERMINATED, NoticeState.NONE, why))

    for event in sorted(events, key=lambda e: utc(e.at)):
        at = utc(event.at)
        if event.kind is EventKind.RECORD:
            applied.append(event.id)
            continue
        if at < entry:
            ignored.append(event.id)
            continue
        end, why = pending()
        if ended is None and end is not None and end <= at:
            terminate(end, why)
        if ended is not None:
            ignored.append(event.id)
            continue
        kind = event.kind
        if kind is EventKind.TERMINATION:
            when = effective_of(event)
            if scheduled is None or when < scheduled[0]:
                scheduled = (when, frozenset({event.id}))
            elif when == scheduled[0]:
                scheduled = (when, scheduled[1] | {event.id})
        elif kind is EventKind.TERMINATION_NOTICE:
            if notice is not NoticeState.NONE:
                ignored.append(event.id)
                continue
            notice = NoticeState.PENDING
            given_end = plan.notice_end(at)
            notice_end = (given_end, frozenset({event.id})) if given_end else None
        elif kind is EventKind.NOTICE_SUSPENSION:
            if notice is not NoticeState.PENDING:
                ignored.append(event.id)
                continue
            notice, notice_end = NoticeState.SUSPENDED, None
            claim = event if event.terminable_at_any_time else None
        elif kind is EventKind.NOTICE_RESUMPTION:
            if notice is not NoticeState.SUSPENDED:
                ignored.append(event.id)
                continue
            resumed_end = effective_of(event) if claim else plan.notice_end(at)
            notice_end = (resumed_end, frozenset({event.id})) if resumed_end else None
            notice, claim = NoticeState.PENDING, None
        elif kind is EventKind.NOTICE_WITHDRAWAL:
            if notice is NoticeState.NONE:
                ignored.append(event.id)
                continue
            # Only the notice goes: a scheduled termination and an expiry stay.
            notice, notice_end, claim = NoticeState.NONE, None, None
        else:  # pragma: no cover
            raise AssertionError(kind)
        applied.append(event.id)
        end, why = pending()
        if end is not None and end <= at:
            terminate(at, why)
        else:
            stretches.append(stretch(at, event.id))
    end, why = pending()
    if ended is None and end is not None:
        terminate(end, why)
    return Replay(tuple(stretches), tuple(applied), tuple(ignored))


def show(segments: Sequence[Segment | Stretch]) -> str:
    rows = []
    for s in segments:
        start = utc(s.start).isoformat() if s.start else "-"
        end = utc(s.pending_end).isoformat() if s.pending_end else "-"
        rows.append(f"  {start} {s.state.value} {s.notice.value} until {end}")
    return "\n".join(rows)


def check_against_replay(plan: Plan, instrument: Instrument, history: History) -> None:
    want = replay(plan, instrument.events)
    got = history.segments
    message = f"engine:\n{show(got)}\nby hand:\n{show(want.stretches)}"
    assert len(got) == len(want.stretches), message
    for segment, expected in zip(got, want.stretches, strict=True):
        assert same_instant(segment.start, expected.start), message
        assert segment.state is expected.state, message
        assert segment.notice is expected.notice, message
        assert segment.cause in expected.causes, message
        assert same_instant(segment.pending_end, expected.pending_end), message
        assert segment.pending_cause in expected.pending_causes, message
        claim = segment.terminable_claim
        assert (claim.id if claim else None) == expected.claim, message
    assert tuple(e.id for e in history.applied) == want.applied
    assert tuple(e.id for e, _ in history.ignored) == want.ignored


# -- strategies -------------------------------------------------------------------------------


@functools.cache
def clock_changes(zone: str) -> tuple[datetime, ...]:
    """The UTC instants, 1999-2046, at which ``zone``'s offset changes (found by scanning)."""
    tz = ZoneInfo(zone)

    def offset(t: datetime) -> timedelta | None:
        return t.astimezone(tz).utcoffset()

    out: list[datetime] = []
    t = datetime(1999, 1, 1, tzinfo=UTC)
    while t.year < 2046:
        if offset(t) != offset(t + DAY):
            low, high = t, t + DAY  # offset(low) differs from offset(high): bisect to the second
            while high - low > timedelta(seconds=1):
                mid = low + (high - low) / 2
                low, high = (mid, high) if offset(mid) == offset(low) else (low, mid)
            out.append(high)
        t += DAY
    return tuple(out)


# Strategies built once: hypothesis validates each new strategy object, and building them per
# draw made data generation most of the run time.
MODES = st.sampled_from((TerminationMode.AT_TERM_END, TerminationMode.AFTER_NOTICE))
ZONE_NAMES = st.sampled_from(ZONES)
# Any day: month ends and 29 February often, so that anniversaries and deadlines clamp.
ANCHORS = (
    st.dates(date(2000, 1, 1), date(2035, 12, 31))
    | st.builds(
        lambda y, m, back: month_end(date(y, m, 1)) - timedelta(days=back),
        st.integers(2000, 2035),
        st.integers(1, 12),
        st.integers(0, 2),
    )
    | st.sampled_from((date(2000, 2, 29), date(2024, 2, 29), date(2028, 2, 29)))
)
MONTHS = st.integers(1, 36).map(lambda m: Period(months=m))
DAYS = st.integers(10, 800).map(lambda d: Period(days=d))
TERMS = MONTHS | DAYS
RENEWALS = st.none() | MONTHS | DAYS
NOTICES = st.integers(0, 200).map(lambda d: Period(days=d)) | st.integers(1, 12).map(
    lambda m: Period(months=m)
)
NEAR = st.sampled_from((-US, timedelta(0), US)) | st.integers(-3 * 86400, 3 * 86400).map(
    lambda s: timedelta(seconds=s)
)
NEAR_CLOCK = st.sampled_from((-1, 0, 1)) | st.integers(-3 * 3600, 3 * 3600)
HOW = st.sampled_from(("any", "boundary", "deadline", "clock", "notice-ends-at-clock"))
DEADLINE_SIDE = st.sampled_from((DAY, timedelta(0)))
ANYWHERE = st.integers(-300 * 86400, 8 * 366 * 86400)
GIVEN_AS = st.sampled_from(("utc", "offset", "zone", "other-zone"))
PARTIES = st.sampled_from(("JPN", "KOR", None))
LATER = st.integers(-86400, 400 * 86400)
GAPS = st.integers(0, 120 * 86400)


@st.composite
def plans(draw: st.DrawFn, fixed_term: bool = False) -> Plan:
    mode = draw(MODES)
    zone = draw(ZONE_NAMES)
    anchor = draw(ANCHORS)
    initial: Period | None
    renewal: Period | None
    if fixed_term:
        initial, renewal = draw(TERMS), None
    elif draw(st.integers(0, 3)) == 0:
        initial, renewal = None, None  # indefinite, like TISA
    else:
        initial, renewal = draw(TERMS), draw(RENEWALS)
    return Plan(anchor, zone, initial, renewal, draw(NOTICES), mode)


@functools.cache
def landmarks(
    plan: Plan,
) -> tuple[tuple[datetime, ...], tuple[datetime, ...], tuple[datetime, ...]]:
    """Where instants are worth drawing: term boundaries, the first instants of each deadline day
    and of the day after, and clock changes (all within eight years of entry into force)."""
    horizon = plan.anchor + timedelta(days=8 * 366)
    days = plan.boundary_list(horizon)[:40]
    bounds = tuple(plan.first_instant(day) for day in days) if len(days) >= 2 else ()
    deadlines: tuple[datetime, ...] = ()
    if bounds and plan.mode is TerminationMode.AT_TERM_END:
        deadlines = tuple(
            plan.first_instant(plan.deadline(end) + side)
            for end in days[1:]
            for side in (timedelta(0), DAY)
        )
    first, last = plan.entry - 300 * DAY, plan.entry + 8 * 366 * DAY
    changes = tuple(t for t in clock_changes(plan.zone) if first <= t <= last)
    return bounds, deadlines, changes


def pick(draw: st.DrawFn, options: Sequence[datetime]) -> datetime:
    return options[draw(st.integers(0, len(options) - 1))]


@st.composite
def utc_instants(draw: st.DrawFn, plan: Plan) -> datetime:
    """An instant in UTC, often at or next to a term boundary, a deadline or a clock change."""
    bounds, deadlines, changes = landmarks(plan)
    how = draw(HOW)
    if how == "boundary" and bounds:
        return pick(draw, bounds) + draw(NEAR)
    if how == "deadline" and deadlines:
        return pick(draw, deadlines) + draw(NEAR)
    if how in ("clock", "notice-ends-at-clock") and changes:
        at = pick(draw, changes) + timedelta(seconds=draw(NEAR_CLOCK))
        if how == "clock" or plan.mode is not TerminationMode.AFTER_NOTICE:
            return at
        # The same local time one notice period earlier: the notice ends next to the change.
        local = at.astimezone(plan.tz)
        day = add_months(local.date(), -plan.notice.months) - timedelta(days=plan.notice.days)
        return utc(datetime.combine(day, local.time(), tzinfo=plan.tz))
    return plan.entry + timedelta(seconds=draw(ANYWHERE))


def given_as(draw: st.DrawFn, plan: Plan, instant: datetime) -> datetime:
    """The same instant in UTC, at the local fixed offset, in the instrument's zone, or in
    another zone (a ZoneInfo, with the fold of a repeated hour)."""
    how = draw(GIVEN_AS)
    if how == "utc":
        return utc(instant)
    if how == "offset":
        return instant.astimezone(timezone(instant.astimezone(plan.tz).utcoffset() or timedelta(0)))
    if how == "zone":
        return instant.astimezone(plan.tz)
    return instant.astimezone(ZoneInfo(draw(ZONE_NAMES)))


@st.composite
def instants(draw: st.DrawFn, plan: Plan) -> datetime:
    return given_as(draw, plan, draw(utc_instants(plan)))


LEGAL = (
    EventKind.TERMINATION_NOTICE,
    EventKind.TERMINATION_NOTICE,
    EventKind.NOTICE_SUSPENSION,
    EventKind.NOTICE_RESUMPTION,
    EventKind.NOTICE_WITHDRAWAL,
    EventKind.TERMINATION,
    EventKind.RECORD,
)


# The kind that makes sense after each kind (a notice is followed by a suspension or a withdrawal,
# ...): histories mostly follow it, so that notices are often suspended, resumed and withdrawn,
# and scheduled terminations are followed by notices and withdrawals.
NEXT = {
    None: (EventKind.TERMINATION_NOTICE, EventKind.TERMINATION),
    EventKind.TERMINATION_NOTICE: (*STOPS, EventKind.TERMINATION),
    EventKind.NOTICE_SUSPENSION: (EventKind.NOTICE_RESUMPTION, EventKind.NOTICE_WITHDRAWAL),
    EventKind.NOTICE_RESUMPTION: (*STOPS, EventKind.TERMINATION),
    EventKind.NOTICE_WITHDRAWAL: (EventKind.TERMINATION_NOTICE,),
    EventKind.TERMINATION: (EventKind.TERMINATION_NOTICE, EventKind.NOTICE_WITHDRAWAL),
}


def random_event(
    draw: st.DrawFn, plan: Plan, event_id: str, kind: EventKind, at: datetime
) -> Event:
    extra: dict[str, Any] = {}
    if kind is EventKind.NOTICE_SUSPENSION:
        extra["terminable_at_any_time"] = draw(st.booleans())
    if kind in (EventKind.NOTICE_RESUMPTION, EventKind.TERMINATION) and draw(st.booleans()):
        later = utc(at) + timedelta(seconds=draw(LATER))
        extra["effective"] = given_as(draw, plan, later)
    return Event(
        id=event_id,
        kind=kind,
        at=given_as(draw, plan, at),
        summary="random",
        provenance=PROVENANCE,
        by=draw(PARTIES),
        **extra,
    )


@st.composite
def histories(
    draw: st.DrawFn, plan: Plan, kinds: Sequence[EventKind] = LEGAL, max_size: int = 8
) -> tuple[Event, ...]:
    """Random events, recorded in time order (or in any order); most follow a plausible script."""
    if draw(st.booleans()):
        times = sorted(draw(st.lists(utc_instants(plan), max_size=max_size)))
    else:  # a burst: events days or weeks apart, so that a notice is acted on before it ends
        start = draw(utc_instants(plan))
        gaps = draw(st.lists(GAPS, max_size=max_size))
        times = [start + timedelta(seconds=sum(gaps[:i])) for i in range(len(gaps))]
    events: list[Event] = []
    last: EventKind | None = None
    for i, at in enumerate(times):
        scripted = [k for k in NEXT.get(last, ()) if k in kinds]
        if scripted and draw(st.integers(0, 3)) > 0:
            kind = draw(st.sampled_from(scripted))
        else:
            kind = draw(st.sampled_from(kinds))
        if kind is not EventKind.RECORD:
            last = kind
        events.append(random_event(draw, plan, f"e{i}", kind, at))
    if draw(st.booleans()):
        return tuple(draw(st.permutations(events)))
    return tuple(events)


@dataclass(frozen=True)
class Case:
    plan: Plan
    instrument: Instrument
    probes: tuple[datetime, ...]

    @property
    def history(self) -> History:
        return resolve(self.instrument)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # used by hypothesis
        printer.text(repr(self))

    def __repr__(self) -> str:  # short: the instrument's clauses are noise in a failure
        events = ", ".join(describe(e) for e in self.instrument.events)
        probes = [p.isoformat() for p in self.probes]
        return f"Case({self.plan}, events=[{events}], probes={probes})"


def describe(e: Event) -> str:
    def at(t: datetime) -> str:
        zone = f"[{t.tzinfo}{',fold' if t.fold else ''}]" if isinstance(t.tzinfo, ZoneInfo) else ""
        return t.isoformat() + zone

    return (
        f"{e.id}:{e.kind.value}@{at(e.at)}"
        + (" claim" if e.terminable_at_any_time else "")
        + (f" eff={at(e.effective)}" if e.effective else "")
    )


@st.composite
def real_cases(draw: st.DrawFn) -> Case:
    events = draw(histories(REAL_PLAN))
    probes = tuple(draw(st.lists(instants(REAL_PLAN), min_size=1, max_size=12)))
    return Case(REAL_PLAN, dataclasses.replace(REAL, events=events), probes)


@st.composite
def synthetic_cases(draw: st.DrawFn, fixed_term: bool = False) -> Case:
    plan = draw(plans(fixed_term=fixed_term))
    events = draw(histories(plan))
    probes = tuple(draw(st.lists(instants(plan), min_size=1, max_size=12)))
    return Case(plan, build(plan, events), probes)


FAMILIES = [
    pytest.param(real_cases(), id="jpn-kor-gsomia"),
    pytest.param(synthetic_cases(), id="synthetic"),
]


def all_probes(case: Case, history: History) -> list[datetime]:
    """The drawn probes plus both sides of entry into force, termination, every event and every
    effective instant, in time order."""
    points = [*case.probes, case.plan.entry - US, case.plan.entry]
    if history.terminated_at is not None:
        points += [utc(history.terminated_at) - US, utc(history.terminated_at)]
    for event in case.instrument.events:
        points += [utc(event.at) - US, utc(event.at)]
        if event.effective is not None:
            points += [utc(event.effective) - US, utc(event.effective)]
    return sorted(points, key=utc)


def end_or_never(at: datetime | None) -> datetime:
    return utc(at) if at is not None else datetime.max.replace(tzinfo=UTC)


# -- the hand-made oracle and its self-check --------------------------------------------------


def test_hand_computation_matches_the_published_jpn_kor_facts(real: Instrument) -> None:
    assert plan_of(real) == REAL_PLAN
    ends = REAL_PLAN.boundary_list(date(2020, 1, 1))[1:5]
    assert ends == [date(2017, 11, 23), date(2018, 11, 23), date(2019, 11, 23), date(2020, 11, 23)]
    # The last notice day reported in 2017, 2019 and 2020: 24 Aug.
    assert REAL_PLAN.deadline(date(2019, 11, 23)) == date(2019, 8, 24)
    assert REAL_PLAN.first_instant(date(2019, 11, 23)) == datetime(2019, 11, 23, tzinfo=KST)
    given = datetime(2019, 8, 23, tzinfo=KST)
    assert REAL_PLAN.notice_end(given) == datetime(2019, 11, 23, tzinfo=KST)
    late = datetime(2019, 8, 25, tzinfo=KST)
    assert REAL_PLAN.notice_end(late) == datetime(2020, 11, 23, tzinfo=KST)


def test_hand_computation_of_month_deadlines_and_anchored_renewals() -> None:
    monthly = dataclasses.replace(REAL_PLAN, notice=Period(months=1))
    assert monthly.deadline(date(2024, 3, 1)) == date(2024, 1, 31)  # 31 Jan + 1 month = 29 Feb
    assert monthly.deadline(date(2023, 3, 31)) == date(2023, 2, 28)
    assert monthly.deadline(date(2023, 5, 1)) == date(2023, 3, 31)
    drifting = dataclasses.replace(
        REAL_PLAN, anchor=date(2023, 1, 31), initial=Period(days=29), renewal=Period(months=1)
    )
    # 31 Jan + 29 days = 1 Mar; then 1 Apr, 1 May, ... from that anchor.
    assert drifting.boundary_list(date(2023, 5, 1))[:5] == [
        date(2023, 1, 31),
        date(2023, 3, 1),
        date(2023, 4, 1),
        date(2023, 5, 1),
        date(2023, 6, 1),
    ]
    month_end_anchor = dataclasses.replace(REAL_PLAN, anchor=date(2024, 1, 31))
    yearly = dataclasses.replace(month_end_anchor, initial=Period(months=1))
    # 31 Jan + 1 month = 29 Feb 2024; renewals from 29 Feb 2024 clamp to 28 Feb and come back.
    assert yearly.boundary_list(date(2028, 1, 1))[1:] == [
        date(2024, 2, 29),
        date(2025, 2, 28),
        date(2026, 2, 28),
        date(2027, 2, 28),
        date(2028, 2, 29),
    ]


@SETTINGS
@given(end=st.dates(date(2000, 1, 1), date(2040, 12, 31)), months=st.integers(1, 24))
def test_month_deadline_is_the_last_day_whose_notice_period_fits(end: date, months: int) -> None:
    """The closed form in ``Plan.deadline`` against the definition, by counting back."""
    plan = dataclasses.replace(REAL_PLAN, notice=Period(months=months))
    day = end - DAY
    while add_months(day, months) > end - DAY:
        day -= DAY
    assert plan.deadline(end) == day
    assert add_months(day + DAY, months) > end - DAY


# -- properties ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cases", FAMILIES)
@SETTINGS
@given(data=st.data())
def test_never_in_force_before_entry_into_force(cases: Any, data: st.DataObject) -> None:
    case: Case = data.draw(cases)
    history = case.history
    assert same_instant(history.entered_into_force, case.plan.entry)
    for t in all_probes(case, history):
        status = history.status(t)
        if utc(t) < case.plan.entry:
            assert status.state is State.NOT_YET_IN_FORCE, t
            assert status.term is None
            assert status.notice is NoticeState.NONE
        else:
            assert status.state is not State.NOT_YET_IN_FORCE, t
    # A notice before entry into force is ignored, never applied.
    for event in history.applied:
        assert event.kind is EventKind.RECORD or utc(event.at) >= case.plan.entry


@pytest.mark.parametrize("cases", FAMILIES)
@SETTINGS
@given(data=st.data())
def test_it_ends_at_the_earliest_of_notice_end_scheduled_termination_and_expiry(
    cases: Any, data: st.DataObject
) -> None:
    """The engine's segments are the hand replay's, stretch for stretch."""
    case: Case = data.draw(cases)
    check_against_replay(case.plan, case.instrument, case.history)


@pytest.mark.parametrize("cases", FAMILIES)
@SETTINGS
@given(data=st.data())
def test_a_notice_ends_it_at_the_first_term_end_whose_deadline_it_meets(
    cases: Any, data: st.DataObject
) -> None:
    """Right after an applied notice (or a resumption without a claim), it is due to end at the
    earliest of the notice's end and whatever was already due; an at-term-end notice's end is a
    term boundary whose deadline it met, and no earlier boundary's deadline was still open."""
    case: Case = data.draw(cases)
    plan, history = case.plan, case.history
    legal = [e for e in history.applied if e.kind is not EventKind.RECORD]
    shared = {t for t, n in collections.Counter(utc(e.at) for e in legal).items() if n > 1}
    suspension: Event | None = None
    for event in legal:
        if event.kind is EventKind.NOTICE_SUSPENSION:
            suspension = event
        if event.kind not in (EventKind.TERMINATION_NOTICE, EventKind.NOTICE_RESUMPTION):
            continue
        if event.kind is EventKind.NOTICE_RESUMPTION:
            assert suspension is not None
            if suspension.terminable_at_any_time:
                continue
        if utc(event.at) in shared:  # another event at that instant: "just before" is unclear
            continue
        end = plan.notice_end(event.at)
        status = history.status(event.at)
        before = history.status(utc(event.at) - US)
        due = before.terminates_at if before.state is State.IN_FORCE else None
        if status.state is State.IN_FORCE:
            assert status.notice is NoticeState.PENDING
            # (At the entry-into-force instant nothing was due just before; the expiry is.)
            due_now = earliest(end, due, plan.expiry)
            assert same_instant(status.terminates_at, due_now), (end, due)
        else:  # it ended at the notice's instant: only an after-notice period of zero does that
            assert same_instant(history.terminated_at, event.at)
            assert end is not None and utc(end) == utc(event.at)
        if end is None or plan.mode is not TerminationMode.AT_TERM_END:
            continue
        day = plan.local_day(end)
        assert end == plan.first_instant(day)
        bounds = plan.boundary_list(day)
        assert day in bounds[1:]
        given_day = plan.local_day(event.at)
        assert given_day <= plan.deadline(day)
        for earlier in bounds[1 : bounds.index(day)]:
            if plan.first_instant(earlier) > utc(event.at):
                assert given_day > plan.deadline(earlier), (earlier, event)


@pytest.mark.parametrize("cases", FAMILIES)
@SETTINGS
@given(data=st.data())
def test_terms_are_contiguous_from_entry_into_force(cases: Any, data: st.DataObject) -> None:
    case: Case = data.draw(cases)
    plan, history = case.plan, case.history
    until = max(case.probes, key=utc)
    terms = list(history.terms(until))
    if not terms:  # only when it ended at the very instant it entered into force
        assert same_instant(history.terminated_at, plan.entry)
        return
    assert same_instant(terms[0].start, plan.entry)
    expected = list(itertools.islice(plan.boundaries(), len(terms) + 1))
    for index, term in enumerate(terms):
        assert term.index == index
        assert term.start == plan.first_instant(expected[index])
        if term.end is None:
            assert index == len(terms) - 1
            assert plan.initial is None
            continue
        assert term.start < term.end
        assert term.end == plan.first_instant(expected[index + 1])
        if index + 1 < len(terms):
            assert terms[index + 1].start == term.end
        if plan.mode is TerminationMode.AT_TERM_END:
            assert term.notice_deadline == plan.deadline(expected[index + 1])
        else:
            assert term.notice_deadline is None
    last = terms[-1]
    ended = history.terminated_at
    assert last.end is None or last.end > until or (ended is not None and last.end >= ended)
    if ended is not None:
        assert last.start < ended
    for t in all_probes(case, history):
        term = history.term_at(t)
        if history.status(t).state is State.IN_FORCE:
            assert term is not None
            assert term.start <= t
            assert term.end is None or t < term.end
        else:
            assert term is None


@pytest.mark.parametrize("cases", FAMILIES)
@SETTINGS
@given(data=st.data())
def test_a_termination_event_never_postpones_an_end(cases: Any, data: st.DataObject) -> None:
    """Adding a termination event ends the instrument no later than before, and no later than
    the termination's effective instant (once in force)."""
    case: Case = data.draw(cases)
    plan = case.plan
    at = data.draw(utc_instants(plan))
    extra = data.draw(st.none() | st.integers(-86400, 400 * 86400))
    effective = at + timedelta(seconds=extra) if extra is not None else None
    termination = Event(
        "added-termination",
        EventKind.TERMINATION,
        given_as(data.draw, plan, at),
        "what-if",
        PROVENANCE,
        effective=given_as(data.draw, plan, effective) if effective else None,
        hypothetical=True,
    )
    before = case.history
    after = resolve(case.instrument, WhatIf(added=(termination,)))
    assert end_or_never(after.terminated_at) <= end_or_never(before.terminated_at)
    if at >= plan.entry:
        assert after.terminated_at is not None
        assert utc(after.terminated_at) <= effective_of(termination)
    else:
        assert after.terminated_at == before.terminated_at
    # And in the histories as drawn: each applied termination event bounds the end.
    for event in before.applied:
        if event.kind is EventKind.TERMINATION:
            assert before.terminated_at is not None
            assert utc(before.terminated_at) <= effective_of(event), event


@pytest.mark.parametrize("cases", FAMILIES)
@SETTINGS
@given(data=st.data())
def test_a_withdrawal_never_cancels_a_scheduled_termination(
    cases: Any, data: st.DataObject
) -> None:
    """A termination scheduled once in force, then notices and withdrawals after it: it still
    ends no later than the scheduled instant."""
    case: Case = data.draw(cases)
    plan = case.plan
    at = max(data.draw(utc_instants(plan)), plan.entry)
    effective = at + timedelta(seconds=data.draw(st.integers(0, 400 * 86400)))
    added = [Event("t", EventKind.TERMINATION, at, "what-if", PROVENANCE, effective=effective)]
    gaps = data.draw(st.lists(GAPS, min_size=1, max_size=4))
    for i, gap in enumerate(itertools.accumulate(gaps)):
        kind = (EventKind.TERMINATION_NOTICE, EventKind.NOTICE_WITHDRAWAL)[i % 2]
        when = given_as(data.draw, plan, at + timedelta(seconds=gap))
        added.append(Event(f"{kind.value}-{i}", kind, when, "what-if", PROVENANCE))
    history = resolve(case.instrument, WhatIf(added=tuple(added)))
    assert history.terminated_at is not None
    assert utc(history.terminated_at) <= utc(effective)
    assert history.status(effective).state is State.TERMINATED
    legal = [e for e in history.applied if e.kind is not EventKind.RECORD]
    alone = {t for t, n in collections.Counter(utc(e.at) for e in legal).items() if n == 1}
    for withdrawal in legal:
        if not withdrawal.id.startswith("notice-withdrawal-") or utc(withdrawal.at) not in alone:
            continue  # (another event at that instant: its effect shows there too)
        status = history.status(withdrawal.at)
        if status.state is State.IN_FORCE:
            assert status.notice is NoticeState.NONE
            assert status.terminates_at is not None
            assert utc(status.terminates_at) <= utc(effective)


@SETTINGS
@given(case=synthetic_cases(fixed_term=True))
def test_nothing_is_in_force_after_a_fixed_terms_expiry(case: Case) -> None:
    plan, history = case.plan, case.history
    expiry = plan.expiry
    assert expiry is not None
    ended = history.terminated_at
    assert ended is not None
    assert utc(ended) <= expiry
    assert history.status(expiry).state is State.TERMINATED
    for t in all_probes(case, history):
        status = history.status(t)
        if utc(t) >= expiry:
            assert status.state is State.TERMINATED, t
        if status.state is State.IN_FORCE:
            assert status.terminates_at is not None
            assert utc(status.terminates_at) <= expiry
            assert status.term is not None and status.term.index == 0
    for event in history.applied:
        assert event.kind is EventKind.RECORD or utc(event.at) < expiry, event


@pytest.mark.parametrize("cases", FAMILIES)
@SETTINGS
@given(data=st.data())
def test_events_in_a_zone_or_at_fixed_offsets_give_identical_histories(
    cases: Any, data: st.DataObject
) -> None:
    case: Case = data.draw(cases)
    plan = case.plan

    def regiven(how: Any) -> History:
        events = tuple(
            dataclasses.replace(
                e, at=how(e.at), effective=how(e.effective) if e.effective else None
            )
            for e in case.instrument.events
        )
        return resolve(dataclasses.replace(case.instrument, events=events))

    def offset(t: datetime) -> datetime:
        return t.astimezone(timezone(t.astimezone(plan.tz).utcoffset() or timedelta(0)))

    def any_way(t: datetime) -> datetime:
        return given_as(data.draw, plan, t)

    def key(history: History) -> tuple[object, ...]:
        segments = tuple(
            (
                utc_or_none(s.start),
                s.state,
                s.notice,
                s.cause,
                utc_or_none(s.pending_end),
                s.pending_cause,
                s.terminable_claim.id if s.terminable_claim else None,
            )
            for s in history.segments
        )
        applied = tuple(e.id for e in history.applied)
        ignored = tuple(e.id for e, _ in history.ignored)
        return segments, applied, ignored

    histories = [
        case.history,
        regiven(utc),
        regiven(offset),
        regiven(lambda t: t.astimezone(plan.tz)),
        regiven(any_way),
    ]
    first = key(histories[0])
    for other in histories[1:]:
        assert key(other) == first
    for t in all_probes(case, histories[0]):
        answers = {
            (
                s.state,
                s.notice,
                s.term,
                utc_or_none(s.terminates_at),
                s.notice_deadline,
                s.cause,
                utc_or_none(s.terminated_at),
            )
            for s in (h.status(t) for h in histories)
        }
        assert len(answers) == 1, (t, answers)


@pytest.mark.parametrize("cases", FAMILIES)
@SETTINGS
@given(data=st.data())
def test_the_empty_whatif_is_the_recorded_history(cases: Any, data: st.DataObject) -> None:
    case: Case = data.draw(cases)
    recorded = case.history
    same = resolve(case.instrument, WhatIf())
    events = case.instrument.events
    # Every recorded event removed and added back as a hypothetical one: the same history.
    readded = resolve(
        case.instrument,
        WhatIf(
            without=frozenset(e.id for e in events),
            added=tuple(dataclasses.replace(e, hypothetical=True) for e in events),
        ),
    )
    assert same.segments == recorded.segments
    for t in all_probes(case, recorded):
        a, b, c = recorded.status(t), same.status(t), readded.status(t)
        assert a == b
        assert a.hypothetical is False
        assert c.hypothetical is bool(events)
        for field in ("state", "notice", "term", "terminates_at", "notice_deadline", "cause"):
            assert getattr(a, field) == getattr(c, field), field
        assert a.terminated_at == c.terminated_at
        assert [e.id for e in a.events_applied] == [e.id for e in c.events_applied]


@pytest.mark.parametrize("cases", FAMILIES)
@SETTINGS
@given(data=st.data())
def test_once_terminated_always_terminated(cases: Any, data: st.DataObject) -> None:
    case: Case = data.draw(cases)
    history = case.history
    states = [history.segments[0].state]
    for segment in history.segments[1:]:
        assert ORDER[segment.state] >= ORDER[states[-1]]
        states.append(segment.state)
    seen: datetime | None = None
    previous = State.NOT_YET_IN_FORCE
    for t in all_probes(case, history):
        status = history.status(t)
        assert ORDER[status.state] >= ORDER[previous], t
        previous = status.state
        if status.state is State.TERMINATED:
            assert status.terminated_at is not None
            assert seen is None or status.terminated_at == seen
            seen = status.terminated_at
            assert status.terminates_at is None
            assert status.term is None
    ended = history.terminated_at
    if ended is None:
        assert history.segments[-1].state is not State.TERMINATED
        return
    assert history.status(ended + timedelta(days=20 * 366)).state is State.TERMINATED
    ignored = {e.id: why for e, why in history.ignored}
    for event in case.instrument.events:
        if event.kind is not EventKind.RECORD and utc(event.at) > utc(ended):
            assert ignored[event.id].startswith("after termination"), event


@pytest.mark.parametrize("cases", FAMILIES)
@SETTINGS
@given(data=st.data())
def test_status_is_deterministic(cases: Any, data: st.DataObject) -> None:
    case: Case = data.draw(cases)
    first, second = case.history, resolve(case.instrument)
    assert first.segments == second.segments
    assert first.applied == second.applied
    assert first.ignored == second.ignored
    for t in all_probes(case, first):
        assert first.status(t) == second.status(t)
        # The same instant at its local offset, or in the zone itself, gives the same answer.
        local = timezone(t.astimezone(case.plan.tz).utcoffset() or timedelta(0))
        assert first.status(t) == dataclasses.replace(first.status(t.astimezone(local)), at=t)
        assert first.status(t) == dataclasses.replace(
            first.status(t.astimezone(case.plan.tz)), at=t
        )
    # The order events are recorded in does not matter when their instants differ.
    events = case.instrument.events
    if len({utc(e.at) for e in events}) == len(events):
        shuffled = data.draw(st.permutations(events))
        other = resolve(dataclasses.replace(case.instrument, events=tuple(shuffled)))
        assert other.segments == first.segments
        assert other.applied == first.applied


# -- engine bugs once found here, pinned as regressions ---------------------------------------


def event(event_id: str, kind: EventKind, at: datetime, **extra: Any) -> Event:
    return Event(event_id, kind, at, "pinned", PROVENANCE, **extra)


NOTICE_2019 = event("n", EventKind.TERMINATION_NOTICE, datetime(2019, 8, 23, tzinfo=KST))
MUTUAL_2020 = event(
    "t",
    EventKind.TERMINATION,
    datetime(2019, 9, 1, tzinfo=KST),
    effective=datetime(2020, 1, 1, tzinfo=KST),
)
POSTPONED = (NOTICE_2019, MUTUAL_2020)
CANCELLED = (
    MUTUAL_2020,
    event("n", EventKind.TERMINATION_NOTICE, datetime(2019, 9, 2, tzinfo=KST)),
    event("w", EventKind.NOTICE_WITHDRAWAL, datetime(2019, 9, 3, tzinfo=KST)),
)


@SETTINGS
@given(events=histories(REAL_PLAN, kinds=(*LEGAL, EventKind.TERMINATION)))
@example(events=POSTPONED)
@example(events=CANCELLED)
def test_the_pinned_histories_replay_by_hand(events: tuple[Event, ...]) -> None:
    instrument = dataclasses.replace(REAL, events=events)
    check_against_replay(REAL_PLAN, instrument, resolve(instrument))


def test_a_termination_event_does_not_postpone_a_pending_notice(real: Instrument) -> None:
    history = resolve(dataclasses.replace(real, events=POSTPONED))
    assert history.terminated_at == datetime(2019, 11, 23, tzinfo=KST)


def test_a_withdrawal_does_not_cancel_an_agreed_termination(real: Instrument) -> None:
    history = resolve(dataclasses.replace(real, events=CANCELLED))
    assert history.terminated_at == datetime(2020, 1, 1, tzinfo=KST)


def test_a_termination_event_alone_ends_at_its_effective_instant(real: Instrument) -> None:
    history = resolve(dataclasses.replace(real, events=(MUTUAL_2020,)))
    assert history.terminated_at == datetime(2020, 1, 1, tzinfo=KST)
    assert history.status(datetime(2019, 12, 31, 23, 59, tzinfo=KST)).state is State.IN_FORCE


def fixed_term(real: Instrument, *events: Event) -> Instrument:
    return dataclasses.replace(
        real, term=TermClause(Period(months=12), None, real.term.clause), events=events
    )


def test_a_late_notice_on_a_fixed_term_lets_it_expire(real: Instrument) -> None:
    # Fixed term 2016-11-23 to 2017-11-23; the last deadline was 24 Aug 2017.
    late = event("n", EventKind.TERMINATION_NOTICE, datetime(2017, 9, 1, tzinfo=KST))
    history = resolve(fixed_term(real, late))
    assert history.terminated_at == datetime(2017, 11, 23, tzinfo=KST)
    assert history.segments[-1].cause == "expiry"
    assert history.status(datetime(2017, 9, 2, tzinfo=KST)).notice is NoticeState.PENDING


def test_nothing_outlives_a_fixed_term(real: Instrument) -> None:
    # A claim-backed resumption and a termination both set past the expiry.
    events = (
        event("n", EventKind.TERMINATION_NOTICE, datetime(2017, 3, 1, tzinfo=KST)),
        event(
            "s",
            EventKind.NOTICE_SUSPENSION,
            datetime(2017, 4, 1, tzinfo=KST),
            terminable_at_any_time=True,
        ),
        event(
            "r",
            EventKind.NOTICE_RESUMPTION,
            datetime(2017, 5, 1, tzinfo=KST),
            effective=datetime(2018, 5, 1, tzinfo=KST),
        ),
        event(
            "t",
            EventKind.TERMINATION,
            datetime(2017, 6, 1, tzinfo=KST),
            effective=datetime(2018, 6, 1, tzinfo=KST),
        ),
    )
    history = resolve(fixed_term(real, *events))
    assert history.terminated_at == datetime(2017, 11, 23, tzinfo=KST)
    assert history.segments[-1].cause == "expiry"


def test_renewal_terms_run_from_the_end_of_the_initial_term(real: Instrument) -> None:
    instrument = dataclasses.replace(
        real,
        entry_into_force=dataclasses.replace(real.entry_into_force, on=date(2023, 1, 1)),
        term=TermClause(Period(days=90), Period(months=12), real.term.clause),
        events=(),
    )
    terms = list(resolve(instrument).terms(datetime(2025, 6, 1, tzinfo=KST)))
    # Initial term: 90 days from 1 Jan 2023 is 1 Apr 2023; each renewal lasts one year.
    assert [(t.start, t.end) for t in terms[:3]] == [
        (datetime(2023, 1, 1, tzinfo=KST), datetime(2023, 4, 1, tzinfo=KST)),
        (datetime(2023, 4, 1, tzinfo=KST), datetime(2024, 4, 1, tzinfo=KST)),
        (datetime(2024, 4, 1, tzinfo=KST), datetime(2025, 4, 1, tzinfo=KST)),
    ]


def test_a_month_notice_deadline_is_walked_over_month_end_clamping(real: Instrument) -> None:
    instrument = dataclasses.replace(
        real,
        entry_into_force=dataclasses.replace(real.entry_into_force, on=date(2023, 3, 1)),
        termination=dataclasses.replace(real.termination, notice=Period(months=1)),
        events=(),
    )
    history = resolve(instrument)
    term = history.term_at(datetime(2023, 6, 1, tzinfo=KST))
    assert term is not None
    assert term.end == datetime(2024, 3, 1, tzinfo=KST)
    assert term.notice_deadline == date(2024, 1, 31)  # 31 Jan + 1 month = 29 Feb 2024


NEW_YORK = ZoneInfo("America/New_York")
EDT = timezone(timedelta(hours=-4))
EST = timezone(timedelta(hours=-5))
# 7 Nov 2021, New York: 01:00-02:00 happens twice (EDT, then EST after fold).
FIRST_0150 = datetime(2021, 11, 7, 1, 50, tzinfo=NEW_YORK, fold=0)  # 05:50 UTC
SECOND_0110 = datetime(2021, 11, 7, 1, 10, tzinfo=NEW_YORK, fold=1)  # 06:10 UTC, 20 min later


def in_new_york(real: Instrument, events: tuple[Event, ...], mode: TerminationMode) -> Instrument:
    return dataclasses.replace(
        real,
        timezone="America/New_York",
        termination=dataclasses.replace(real.termination, mode=mode, notice=Period(months=6)),
        events=events,
    )


def test_events_in_a_repeated_hour_apply_in_order_when_given_in_utc(real: Instrument) -> None:
    events = (
        event("n", EventKind.TERMINATION_NOTICE, utc(FIRST_0150)),
        event("w", EventKind.NOTICE_WITHDRAWAL, utc(SECOND_0110)),
    )
    history = resolve(in_new_york(real, events, TerminationMode.AT_TERM_END))
    assert [e.id for e in history.applied] == ["n", "w"]
    assert history.terminated_at is None


def test_events_in_a_repeated_hour_apply_in_instant_order(real: Instrument) -> None:
    events = (
        event("n", EventKind.TERMINATION_NOTICE, FIRST_0150),
        event("w", EventKind.NOTICE_WITHDRAWAL, SECOND_0110),
    )
    history = resolve(in_new_york(real, events, TerminationMode.AT_TERM_END))
    assert [e.id for e in history.applied] == ["n", "w"]
    assert history.terminated_at is None


def test_a_query_in_a_repeated_hour_is_placed_by_instant(real: Instrument) -> None:
    # Six months after 01:30 EDT on 7 May 2021: 01:30 EDT (the first one) on 7 Nov 2021.
    notice = event("n", EventKind.TERMINATION_NOTICE, datetime(2021, 5, 7, 1, 30, tzinfo=EDT))
    history = resolve(in_new_york(real, (notice,), TerminationMode.AFTER_NOTICE))
    assert history.terminated_at == datetime(2021, 11, 7, 1, 30, tzinfo=EDT)
    assert history.status(utc(SECOND_0110)).state is State.TERMINATED
    assert history.status(SECOND_0110).state is State.TERMINATED  # same instant, fold=1
    assert history.status(FIRST_0150.replace(minute=29)).state is State.IN_FORCE
