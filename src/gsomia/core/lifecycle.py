"""The lifecycle engine: an instrument's state at any instant, under any what-if history.

``resolve(instrument, whatif)`` replays the instrument's events once and returns a
:class:`History`: the piecewise-constant segments of its life (state, notice, pending end) and
the terms computed from the term clause. Queries on a History are a binary search, which is what
lets release decisions treat an instrument's state as a lookup.

Conventions (each documented in docs/lifecycle.md):

- An instrument is in force from the first instant of its entry-into-force day in its own time
  zone; a term ends at the first instant of its anniversary day (JPN-KOR: 00:00 on 23 Nov, Seoul).
- A notice "N days in advance" must leave N whole days between the day it is given and the end of
  the term, so the last day to give it is ``end - N - 1 day`` (for JPN-KOR, 24 Aug: the deadline
  reported in 2017, 2019 and 2020).
- An event at instant ``t`` is in effect at ``t``.
"""

from __future__ import annotations

import bisect
import calendar
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, tzinfo
from enum import StrEnum

from gsomia.core.agreements import Event, EventKind, Instrument, TerminationMode
from gsomia.core.errors import InputError, UnknownEventError
from gsomia.core.time import Period, add_period, fixed, local_date, start_of_day, zone

__all__ = [
    "History",
    "NoticeState",
    "Segment",
    "State",
    "Status",
    "Term",
    "WhatIf",
    "resolve",
    "status_at",
]


class State(StrEnum):
    NOT_YET_IN_FORCE = "not-yet-in-force"
    IN_FORCE = "in-force"
    TERMINATED = "terminated"


class NoticeState(StrEnum):
    NONE = "none"
    PENDING = "pending"
    SUSPENDED = "suspended"


@dataclass(frozen=True, slots=True)
class WhatIf:
    """A hypothetical history: recorded events removed by id, hypothetical events added."""

    without: frozenset[str] = frozenset()
    added: tuple[Event, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.without and not self.added


@dataclass(frozen=True, slots=True)
class Term:
    index: int  # 0 for the initial term
    start: datetime
    end: datetime | None  # None: indefinite
    notice_deadline: date | None  # last local day a notice may be given to end it at ``end``

    @property
    def number(self) -> int:
        return self.index + 1


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of time over which nothing about the instrument's standing changes."""

    start: datetime | None  # None: since the beginning of time
    state: State
    notice: NoticeState
    cause: str  # what began this segment: an event id, "entry-into-force", "expiry", ...
    pending_end: datetime | None = None  # when a pending notice (or expiry) will end it
    pending_cause: str = ""
    terminable_claim: Event | None = None  # the suspension whose party claims it may end any time


@dataclass(frozen=True, slots=True)
class Status:
    """What an instrument is at one instant, with everything needed to explain it."""

    instrument: Instrument
    at: datetime
    state: State
    notice: NoticeState
    term: Term | None
    terminates_at: datetime | None
    notice_deadline: date | None
    terminable_at_any_time: bool
    terminable_claim: Event | None
    terminated_at: datetime | None
    cause: str
    events_applied: tuple[Event, ...]
    events_ignored: tuple[tuple[Event, str], ...]
    hypothetical: bool

    @property
    def in_force(self) -> bool:
        return self.state is State.IN_FORCE

    def to_dict(self) -> dict[str, object]:
        """The status as JSON-ready data (the shape of ``agreements status --json``)."""
        claim = self.terminable_claim
        return {
            "agreement": self.instrument.id,
            "at": self.at.isoformat(),
            "state": self.state.value,
            "notice": self.notice.value,
            "term_number": self.term.number if self.term else None,
            "term_start": self.term.start.isoformat() if self.term else None,
            "term_end": self.term.end.isoformat() if self.term and self.term.end else None,
            "terminates_at": self.terminates_at.isoformat() if self.terminates_at else None,
            "notice_deadline": self.notice_deadline.isoformat() if self.notice_deadline else None,
            "terminable_at_any_time": self.terminable_at_any_time,
            "terminable_claim": {
                "event": claim.id,
                "by": claim.by,
                "disputed_by": list(claim.disputed_by),
                "condition": claim.condition,
            }
            if claim
            else None,
            "terminated_at": self.terminated_at.isoformat() if self.terminated_at else None,
            "cause": self.cause,
            "events_applied": [e.id for e in self.events_applied],
            "events_ignored": [{"id": e.id, "reason": why} for e, why in self.events_ignored],
            "hypothetical": self.hypothetical,
            "unverified": self.instrument.unverified(),
        }


@dataclass(frozen=True)
class History:
    instrument: Instrument
    whatif: WhatIf
    segments: tuple[Segment, ...]
    applied: tuple[Event, ...]
    ignored: tuple[tuple[Event, str], ...]
    tz: tzinfo = field(repr=False)
    _starts: tuple[datetime, ...] = field(init=False, repr=False)
    _stamps: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # segments[0] starts at the beginning of time; the rest start at real instants. Lookups
        # bisect POSIX timestamps: exact, and immune to PEP 495's wall-clock comparisons.
        starts = tuple(s.start for s in self.segments[1:] if s.start is not None)
        object.__setattr__(self, "_starts", starts)
        object.__setattr__(self, "_stamps", tuple(s.timestamp() for s in starts))

    # -- queries ----------------------------------------------------------------------------

    @property
    def change_points(self) -> tuple[datetime, ...]:
        """The instants at which the instrument's standing changes, in order."""
        return self._starts

    @property
    def terminated_at(self) -> datetime | None:
        last = self.segments[-1]
        return last.start if last.state is State.TERMINATED else None

    @property
    def entered_into_force(self) -> datetime | None:
        on = self.instrument.entry_into_force.on
        return start_of_day(on, self.tz) if on is not None else None

    def segment_at(self, at: datetime) -> Segment:
        _require_aware(at)
        return self.segments[bisect.bisect_right(self._stamps, at.timestamp())]

    def term_at(self, at: datetime) -> Term | None:
        """The term running at ``at`` (None before entry into force or after termination)."""
        if self.segment_at(at).state is not State.IN_FORCE:
            return None
        return self.term(_term_index(self.instrument, self.tz, at))

    def term(self, index: int) -> Term:
        start_day = _boundary(self.instrument, index)
        end_day = _boundary(self.instrument, index + 1)
        assert start_day is not None  # index 0 exists whenever the instrument entered into force
        return Term(
            index=index,
            start=start_of_day(start_day, self.tz),
            end=start_of_day(end_day, self.tz) if end_day else None,
            notice_deadline=_notice_deadline(self.instrument, end_day),
        )

    def terms(self, until: datetime) -> Iterator[Term]:
        """Every term from entry into force to the one running at ``until`` (or the last)."""
        if self.entered_into_force is None:
            return
        end_of_life = self.terminated_at
        index = 0
        while True:
            term = self.term(index)
            if end_of_life is not None and term.start >= end_of_life:
                return
            yield term
            if term.end is None or term.end > until:
                return
            index += 1

    def status(self, at: datetime) -> Status:
        seg = self.segment_at(at)
        term = self.term_at(at)
        in_force = seg.state is State.IN_FORCE
        mode = self.instrument.termination.mode
        after_notice = mode is TerminationMode.AFTER_NOTICE
        deadline = None
        if in_force and term is not None and mode is TerminationMode.AT_TERM_END:
            deadline = term.notice_deadline
        return Status(
            instrument=self.instrument,
            at=at,
            state=seg.state,
            notice=seg.notice,
            term=term,
            terminates_at=seg.pending_end if in_force else None,
            notice_deadline=deadline,
            terminable_at_any_time=in_force and (after_notice or seg.terminable_claim is not None),
            terminable_claim=seg.terminable_claim if in_force else None,
            terminated_at=seg.start if seg.state is State.TERMINATED else None,
            cause=seg.cause,
            events_applied=tuple(e for e in self.applied if e.at <= at),
            events_ignored=tuple((e, why) for e, why in self.ignored if e.at <= at),
            hypothetical=not self.whatif.is_empty,
        )


def status_at(instrument: Instrument, at: datetime, whatif: WhatIf | None = None) -> Status:
    """The status of ``instrument`` at ``at``. Resolve once with :func:`resolve` to ask often."""
    return resolve(instrument, whatif).status(at)


def resolve(instrument: Instrument, whatif: WhatIf | None = None) -> History:
    """Replay the instrument's history (recorded, or as changed by ``whatif``) into segments."""
    whatif = whatif or WhatIf()
    tz = zone(instrument.timezone)
    events = _effective_events(instrument, whatif)
    replay = _Replay(instrument, tz)
    for event in events:
        replay.apply(event)
    replay.finish()
    return History(
        instrument=instrument,
        whatif=whatif,
        segments=tuple(replay.segments),
        applied=tuple(replay.applied),
        ignored=tuple(replay.ignored),
        tz=tz,
    )


# -- replay -----------------------------------------------------------------------------------


class _Replay:
    """The state machine that turns ordered events into segments.

    Three things can end an instrument, and each is tracked on its own: a pending notice, a
    scheduled termination (a termination event with a later effective date), and the expiry of a
    fixed term. The instrument ends at the earliest of them, so withdrawing a notice never cancels
    a scheduled termination and nothing outlives a fixed term.
    """

    def __init__(self, instrument: Instrument, tz: tzinfo) -> None:
        self.instrument = instrument
        self.tz = tz
        self.applied: list[Event] = []
        self.ignored: list[tuple[Event, str]] = []
        self.segments: list[Segment] = [
            Segment(start=None, state=State.NOT_YET_IN_FORCE, notice=NoticeState.NONE, cause="")
        ]
        self.notice = NoticeState.NONE
        self.notice_end: tuple[datetime, str] | None = None
        self.scheduled: tuple[datetime, str] | None = None
        self.claim: Event | None = None
        expiry = _expiry(instrument, tz)
        self.expiry: tuple[datetime, str] | None = (expiry, "expiry") if expiry else None
        on = instrument.entry_into_force.on
        self.start = start_of_day(on, tz) if on is not None else None
        if self.start is not None:
            self._emit(self.start, "entry-into-force")

    @property
    def current(self) -> Segment:
        return self.segments[-1]

    def _pending(self) -> tuple[datetime, str] | None:
        ends = [e for e in (self.notice_end, self.scheduled, self.expiry) if e is not None]
        return min(ends, key=lambda e: e[0].timestamp()) if ends else None

    def _emit(self, at: datetime, cause: str) -> None:
        pending = self._pending()
        self.segments.append(
            Segment(
                start=at,
                state=State.IN_FORCE,
                notice=self.notice,
                cause=cause,
                pending_end=pending[0] if pending else None,
                pending_cause=pending[1] if pending else "",
                terminable_claim=self.claim,
            )
        )

    def apply(self, event: Event) -> None:
        if event.kind is EventKind.RECORD:
            self.applied.append(event)
            return
        if self.start is None:
            self.ignored.append((event, "the instrument has not entered into force"))
            return
        if event.at < self.start:
            self.ignored.append((event, "before entry into force"))
            return
        self._lapse_pending(before_or_at=event.at)
        cur = self.current
        if cur.state is State.TERMINATED:
            assert cur.start is not None
            self.ignored.append((event, f"after termination at {cur.start.isoformat()}"))
            return
        why_not = self._transition(event)
        if why_not is not None:
            self.ignored.append((event, why_not))
            return
        self.applied.append(event)
        pending = self._pending()
        if pending is not None and pending[0] <= event.at:
            self._terminate(event.at, pending[1])
        else:
            self._emit(event.at, event.id)

    def finish(self) -> None:
        cur = self.current
        if cur.state is State.IN_FORCE and cur.pending_end is not None:
            self._terminate(cur.pending_end, cur.pending_cause)

    def _lapse_pending(self, before_or_at: datetime) -> None:
        cur = self.current
        if cur.state is State.IN_FORCE and cur.pending_end and cur.pending_end <= before_or_at:
            self._terminate(cur.pending_end, cur.pending_cause)

    def _terminate(self, at: datetime, cause: str) -> None:
        self.segments.append(
            Segment(start=at, state=State.TERMINATED, notice=NoticeState.NONE, cause=cause)
        )

    def _transition(self, event: Event) -> str | None:
        """Apply ``event`` to the replay's state; the reason it has no effect, or None."""
        kind, at = event.kind, event.at
        mode = self.instrument.termination.mode
        if kind is EventKind.TERMINATION:
            effective = max(event.effective or at, at, key=lambda t: t.timestamp())
            if self.scheduled is None or effective < self.scheduled[0]:
                self.scheduled = (effective, event.id)
            return None
        if kind is EventKind.TERMINATION_NOTICE:
            if self.notice is not NoticeState.NONE:
                return f"a notice is already {self.notice.value}"
            if mode is TerminationMode.UNKNOWN:
                return "the termination clause is not known (unverified): no effect computed"
            self.notice = NoticeState.PENDING
            self.notice_end = _notice_end(self.instrument, self.tz, at, event.id)
            return None
        if kind is EventKind.NOTICE_SUSPENSION:
            if self.notice is not NoticeState.PENDING:
                return "no pending notice to suspend"
            self.notice = NoticeState.SUSPENDED
            self.notice_end = None
            self.claim = event if event.terminable_at_any_time else None
            return None
        if kind is EventKind.NOTICE_RESUMPTION:
            if self.notice is not NoticeState.SUSPENDED:
                return "no suspended notice to resume"
            if self.claim is not None:
                # The party claimed it may end the instrument at any time: on resumption the
                # notice takes effect when the resumption says, or at once.
                effective = max(event.effective or at, at, key=lambda t: t.timestamp())
                self.notice_end = (effective, event.id)
            elif mode is TerminationMode.UNKNOWN:
                return "the termination clause is not known (unverified): no effect computed"
            else:
                self.notice_end = _notice_end(self.instrument, self.tz, at, event.id)
            self.notice = NoticeState.PENDING
            self.claim = None
            return None
        if kind is EventKind.NOTICE_WITHDRAWAL:
            if self.notice is NoticeState.NONE:
                return "no notice to withdraw"
            self.notice = NoticeState.NONE
            self.notice_end = None
            self.claim = None
            return None
        raise AssertionError(f"unhandled event kind {kind}")  # pragma: no cover


def _notice_end(
    instrument: Instrument, tz: tzinfo, given: datetime, cause: str
) -> tuple[datetime, str] | None:
    """When a notice given at ``given`` ends the instrument, and why; None: not before expiry."""
    end = _notice_takes_effect(instrument, tz, given)
    return (end, cause) if end is not None else None


# -- terms and deadlines ----------------------------------------------------------------------


def _boundary(instrument: Instrument, index: int) -> date | None:
    """The local date term ``index`` starts (index 0: entry into force); None if none does."""
    on = instrument.entry_into_force.on
    if on is None:
        return None
    if index == 0:
        return on
    initial, renewal = instrument.term.initial, instrument.term.renewal
    if initial is None:
        return None  # indefinite: a single term with no end
    if index == 1:
        return add_period(on, initial)
    if renewal is None:
        return None  # no renewal: there is no third boundary
    # Renewals run from the end of the initial term, computed from that anchor every time so
    # that day clamping (29 Feb) never drifts and an initial term in days does not skew them.
    return add_period(add_period(on, initial), renewal.times(index - 1))


def _term_index(instrument: Instrument, tz: tzinfo, at: datetime) -> int:
    """The index of the term running at ``at`` (binary search over term boundaries)."""
    day = local_date(at, tz)

    def starts_after(index: int) -> bool:
        boundary = _boundary(instrument, index)
        return boundary is None or boundary > day

    if starts_after(1):
        return 0
    low, high = 1, 2
    while not starts_after(high):
        low, high = high, high * 2
    while high - low > 1:  # invariant: term ``low`` has started, term ``high`` has not
        mid = (low + high) // 2
        if starts_after(mid):
            high = mid
        else:
            low = mid
    return low


def _notice_deadline(instrument: Instrument, term_end: date | None) -> date | None:
    clause = instrument.termination
    if term_end is None or clause.mode is not TerminationMode.AT_TERM_END:
        return None
    # The last day D such that D + notice still falls before the term's end: counted back, then
    # walked forward over month-end clamping (a month before 1 Mar is 31 Jan, not 29 Jan).
    last_day = term_end - timedelta(days=1)
    day = _subtract(last_day, clause.notice)
    while add_period(day, clause.notice) > last_day:
        day -= timedelta(days=1)
    while add_period(day + timedelta(days=1), clause.notice) <= last_day:
        day += timedelta(days=1)
    return day


def _subtract(day: date, period: Period) -> date:
    """``day`` minus ``period``: months first (clamped to the month's end), then days."""
    year, month0 = divmod(day.year * 12 + day.month - 1 - period.months, 12)
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(day.day, last)) - timedelta(days=period.days)


def _notice_takes_effect(instrument: Instrument, tz: tzinfo, given: datetime) -> datetime | None:
    """When a notice given at ``given`` ends the instrument; None if no term end is left to
    end it at (a fixed term past its last deadline simply expires)."""
    clause = instrument.termination
    given_day = local_date(given, tz)
    if clause.mode is TerminationMode.AFTER_NOTICE:
        local = given.astimezone(tz)
        return fixed(datetime.combine(add_period(given_day, clause.notice), local.time(), tz))
    index = _term_index(instrument, tz, given)
    while True:
        end = _boundary(instrument, index + 1)
        if end is None:
            return None
        deadline = _notice_deadline(instrument, end)
        if deadline is not None and given_day <= deadline:
            return start_of_day(end, tz)
        index += 1


def _expiry(instrument: Instrument, tz: tzinfo) -> datetime | None:
    """The end of an instrument whose term is not renewed automatically."""
    if instrument.term.initial is None or instrument.term.renewal is not None:
        return None
    end = _boundary(instrument, 1)
    return start_of_day(end, tz) if end else None


def _effective_events(instrument: Instrument, whatif: WhatIf) -> list[Event]:
    known = {e.id for e in instrument.events}
    for event_id in sorted(whatif.without):
        if event_id not in known:
            raise UnknownEventError(event_id, known, where=instrument.id)
    events = [e for e in instrument.events if e.id not in whatif.without]
    kept = {e.id for e in events}
    for event in whatif.added:
        if event.id in kept:
            raise InputError(f"{instrument.id}: event id {event.id!r} is used twice")
        kept.add(event.id)
        _require_aware(event.at)
        events.append(event)
    # Fixed offsets, sorted by absolute time: a wall-clock sort misorders the repeated hour at
    # the end of daylight saving. Stable: events at one instant apply in the recorded order.
    events = [
        replace(e, at=fixed(e.at), effective=fixed(e.effective) if e.effective else None)
        for e in events
    ]
    return sorted(events, key=lambda e: e.at.timestamp())


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise InputError(f"instant {at.isoformat()} has no time zone")
