"""The lifecycle engine is generic: fictional instruments with other terms, notices and zones.

The fixtures in ``tests/fixtures/registry-fictional`` describe two instruments that share nothing
with JPN-KOR GSOMIA but the file format:

- ZZA-ZZB-GSOMIA: initial term P2Y, renewal P6M, notice P30D at the end of a term,
  America/New_York (entry into force on the day DST ends; term ends alternate EST/EDT);
- ZZA-ZZB-PILOT: a fixed term of P2Y9M with no renewal (it expires), notice P6M after notice,
  Pacific/Auckland (entry into force while it is still the previous day in UTC).

Every expected value below is worked out by hand and written as a literal instant with its offset.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from gsomia.core.agreements import Event, EventKind, Instrument, TerminationMode
from gsomia.core.lifecycle import NoticeState, State, WhatIf, resolve
from gsomia.core.provenance import Evidence, Provenance
from gsomia.core.registry import Registry
from gsomia.core.time import Period
from gsomia.loader import DATA_DIR, load_events, load_registry, whatif_from

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FICTIONAL = FIXTURES / "registry-fictional"
WHATIF_FILE = FIXTURES / "whatif-zza-zzb-gsomia.toml"

EDT = timezone(timedelta(hours=-4))  # America/New_York, summer
EST = timezone(timedelta(hours=-5))  # America/New_York, winter
NZDT = timezone(timedelta(hours=13))  # Pacific/Auckland, summer
NZST = timezone(timedelta(hours=12))  # Pacific/Auckland, winter
US = timedelta(microseconds=1)

IN = State.IN_FORCE
NOT_YET = State.NOT_YET_IN_FORCE
ENDED = State.TERMINATED
NONE = NoticeState.NONE
PENDING = NoticeState.PENDING
SUSPENDED = NoticeState.SUSPENDED


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0, tz: timezone = UTC) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=tz)


def just_before(instant: datetime) -> datetime:
    return instant - US


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry([FICTIONAL])


@pytest.fixture(scope="module")
def gsomia(registry: Registry) -> Instrument:
    return registry.instrument("ZZA-ZZB-GSOMIA")


@pytest.fixture(scope="module")
def pilot(registry: Registry) -> Instrument:
    return registry.instrument("ZZA-ZZB-PILOT")


def hypothetical(event_id: str, kind: EventKind, instant: datetime, **kw: object) -> Event:
    return Event(
        id=event_id,
        kind=kind,
        at=instant,
        summary="hypothetical",
        provenance=Provenance("test", Evidence.DESIGN_NOTE),
        hypothetical=True,
        **kw,  # type: ignore[arg-type]
    )


# -- ZZA-ZZB-GSOMIA: P2Y + P6M renewals, P30D notice at term end, America/New_York ------------

END_T1 = at(2024, 5, 7, tz=EDT)  # the end of T1 (a late notice in T0 ends the agreement here)
END_T2 = at(2024, 11, 7, tz=EST)
END_T3 = at(2025, 5, 7, tz=EDT)

# (name, instant, state, notice, terminates_at, term index)
GSOMIA_STATES: list[tuple[str, datetime, State, NoticeState, datetime | None, int | None]] = [
    ("signature-record-before", just_before(at(2021, 10, 1, tz=EDT)), NOT_YET, NONE, None, None),
    ("signature-record-at", at(2021, 10, 1, tz=EDT), NOT_YET, NONE, None, None),
    ("premature-notice-before", at(2021, 11, 6, 23, tz=EDT) - US, NOT_YET, NONE, None, None),
    ("premature-notice-at (ignored)", at(2021, 11, 6, 23, tz=EDT), NOT_YET, NONE, None, None),
    ("eif-before", just_before(at(2021, 11, 7, tz=EDT)), NOT_YET, NONE, None, None),
    ("eif-day-in-utc-only", at(2021, 11, 7, tz=UTC), NOT_YET, NONE, None, None),
    ("eif-at", at(2021, 11, 7, tz=EDT), IN, NONE, None, 0),
    ("eif-repeated-hour", at(2021, 11, 7, 1, 30, tz=EST), IN, NONE, None, 0),
    ("notice-2023-before", at(2023, 10, 8, 9, tz=EDT) - US, IN, NONE, None, 0),
    ("notice-2023-at", at(2023, 10, 8, 9, tz=EDT), IN, PENDING, END_T1, 0),
    ("t0-t1-before", just_before(at(2023, 11, 7, tz=EST)), IN, PENDING, END_T1, 0),
    ("t0-t1-at", at(2023, 11, 7, tz=EST), IN, PENDING, END_T1, 1),
    ("suspension-before", just_before(at(2024, 3, 1, tz=EST)), IN, PENDING, END_T1, 1),
    ("suspension-at", at(2024, 3, 1, tz=EST), IN, SUSPENDED, None, 1),
    ("resumption-before", just_before(at(2024, 4, 7, tz=EDT)), IN, SUSPENDED, None, 1),
    ("resumption-at", at(2024, 4, 7, tz=EDT), IN, PENDING, END_T2, 1),
    ("t1-t2-before", just_before(at(2024, 5, 7, tz=EDT)), IN, PENDING, END_T2, 1),
    ("t1-t2-at (suspension kept it)", at(2024, 5, 7, tz=EDT), IN, PENDING, END_T2, 2),
    ("withdrawal-before", just_before(at(2024, 6, 3, tz=EDT)), IN, PENDING, END_T2, 2),
    ("withdrawal-at", at(2024, 6, 3, tz=EDT), IN, NONE, None, 2),
    ("t2-t3-before", just_before(at(2024, 11, 7, tz=EST)), IN, NONE, None, 2),
    ("t2-t3-at", at(2024, 11, 7, tz=EST), IN, NONE, None, 3),
    ("notice-2025-before", at(2025, 4, 6, 23, 30, tz=EDT) - US, IN, NONE, None, 3),
    ("notice-2025-at", at(2025, 4, 6, 23, 30, tz=EDT), IN, PENDING, END_T3, 3),
    ("end-before", just_before(at(2025, 5, 7, tz=EDT)), IN, PENDING, END_T3, 3),
    ("end-at", at(2025, 5, 7, tz=EDT), ENDED, NONE, None, None),
    ("end-in-utc", at(2025, 5, 7, 4, tz=UTC), ENDED, NONE, None, None),
    ("late-withdrawal-before", just_before(at(2025, 5, 20, tz=EDT)), ENDED, NONE, None, None),
    ("late-withdrawal-at (ignored)", at(2025, 5, 20, tz=EDT), ENDED, NONE, None, None),
    ("archive-record-before", just_before(at(2025, 6, 1, tz=EDT)), ENDED, NONE, None, None),
    ("archive-record-at", at(2025, 6, 1, tz=EDT), ENDED, NONE, None, None),
]


@pytest.mark.parametrize(
    ("instant", "state", "notice", "terminates_at", "term_index"),
    [pytest.param(*row[1:], id=row[0]) for row in GSOMIA_STATES],
)
def test_gsomia_states_on_both_sides_of_every_event_and_boundary(
    gsomia: Instrument,
    instant: datetime,
    state: State,
    notice: NoticeState,
    terminates_at: datetime | None,
    term_index: int | None,
) -> None:
    status = resolve(gsomia).status(instant)
    assert status.state is state
    assert status.notice is notice
    assert status.terminates_at == terminates_at
    assert (status.term.index if status.term else None) == term_index
    assert status.terminable_at_any_time is False
    assert status.hypothetical is False


def test_gsomia_change_points_and_cause(gsomia: Instrument) -> None:
    history = resolve(gsomia)
    assert list(history.change_points) == [
        at(2021, 11, 7, tz=EDT),
        at(2023, 10, 8, 9, tz=EDT),
        at(2024, 3, 1, tz=EST),
        at(2024, 4, 7, tz=EDT),
        at(2024, 6, 3, tz=EDT),
        at(2025, 4, 6, 23, 30, tz=EDT),
        at(2025, 5, 7, tz=EDT),
    ]
    assert history.terminated_at == at(2025, 5, 7, tz=EDT)
    assert history.status(at(2025, 5, 7, tz=EDT)).cause == "zzb-notice-2025"
    assert history.status(at(2025, 5, 7, tz=EDT)).terminated_at == at(2025, 5, 7, tz=EDT)


def test_gsomia_ignored_events_say_why(gsomia: Instrument) -> None:
    history = resolve(gsomia)
    reasons = {event.id: why for event, why in history.ignored}
    assert set(reasons) == {"zza-premature-notice-2021", "zza-late-withdrawal-2025"}
    assert reasons["zza-premature-notice-2021"] == "before entry into force"
    assert "after termination" in reasons["zza-late-withdrawal-2025"]
    assert "2025-05-07T00:00:00-04:00" in reasons["zza-late-withdrawal-2025"]
    applied = [e.id for e in history.applied]
    assert applied == [
        "zz-signature-2021",
        "zza-notice-2023",
        "zza-suspension-2024",
        "zza-resumption-2024",
        "zza-withdrawal-2024",
        "zzb-notice-2025",
        "zz-archive-2025",
    ]


def test_gsomia_terms_and_notice_deadlines(gsomia: Instrument) -> None:
    terms = list(resolve(gsomia).terms(until=at(2030, 1, 1)))
    assert [(t.index, t.start, t.end, t.notice_deadline) for t in terms] == [
        (0, at(2021, 11, 7, tz=EDT), at(2023, 11, 7, tz=EST), date(2023, 10, 7)),
        (1, at(2023, 11, 7, tz=EST), at(2024, 5, 7, tz=EDT), date(2024, 4, 6)),
        (2, at(2024, 5, 7, tz=EDT), at(2024, 11, 7, tz=EST), date(2024, 10, 7)),
        (3, at(2024, 11, 7, tz=EST), at(2025, 5, 7, tz=EDT), date(2025, 4, 6)),
    ]


def test_gsomia_terms_go_on_without_the_last_notice(gsomia: Instrument) -> None:
    history = resolve(gsomia, WhatIf(without=frozenset({"zzb-notice-2025"})))
    assert history.terminated_at is None
    terms = list(history.terms(until=at(2026, 6, 1, tz=EDT)))
    assert [(t.index, t.start, t.end, t.notice_deadline) for t in terms[3:]] == [
        (3, at(2024, 11, 7, tz=EST), at(2025, 5, 7, tz=EDT), date(2025, 4, 6)),
        (4, at(2025, 5, 7, tz=EDT), at(2025, 11, 7, tz=EST), date(2025, 10, 7)),
        (5, at(2025, 11, 7, tz=EST), at(2026, 5, 7, tz=EDT), date(2026, 4, 6)),
        (6, at(2026, 5, 7, tz=EDT), at(2026, 11, 7, tz=EST), date(2026, 10, 7)),
    ]
    status = history.status(at(2026, 6, 1, tz=EDT))
    assert status.state is IN
    assert status.term is not None
    assert status.term.index == 6
    assert status.notice_deadline == date(2026, 10, 7)


@pytest.mark.parametrize(
    ("instant", "deadline"),
    [
        pytest.param(at(2023, 10, 7, 23, 59, tz=EDT), date(2023, 10, 7), id="t0-last-notice-day"),
        pytest.param(at(2023, 11, 7, tz=EST), date(2024, 4, 6), id="t1-first-instant"),
        pytest.param(at(2024, 11, 6, 23, 59, tz=EST), date(2024, 10, 7), id="t2-last-minute"),
        pytest.param(at(2025, 4, 7, 3, 30, tz=UTC), date(2025, 4, 6), id="t3-in-utc"),
        pytest.param(at(2025, 5, 7, tz=EDT), None, id="after-termination"),
        pytest.param(at(2021, 11, 6, tz=EDT), None, id="before-entry-into-force"),
    ],
)
def test_gsomia_status_reports_the_running_terms_deadline(
    gsomia: Instrument, instant: datetime, deadline: date | None
) -> None:
    assert resolve(gsomia).status(instant).notice_deadline == deadline


@pytest.mark.parametrize(
    ("given", "ends"),
    [
        pytest.param(at(2023, 10, 7, tz=EDT), at(2023, 11, 7, tz=EST), id="deadline-day-start"),
        pytest.param(
            at(2023, 10, 7, 23, 59, tz=EDT) + timedelta(seconds=59, microseconds=999_999),
            at(2023, 11, 7, tz=EST),
            id="deadline-day-last-instant",
        ),
        pytest.param(at(2023, 10, 8, tz=EDT), at(2024, 5, 7, tz=EDT), id="day-after-deadline"),
        # The deadline is a local day: 03:59 UTC on 8 Oct is still 7 Oct in New York.
        pytest.param(at(2023, 10, 8, 3, 59, tz=UTC), at(2023, 11, 7, tz=EST), id="utc-still-7-oct"),
        pytest.param(at(2023, 10, 8, 4, 0, tz=UTC), at(2024, 5, 7, tz=EDT), id="utc-8-oct-local"),
        pytest.param(at(2021, 11, 7, tz=EDT), at(2023, 11, 7, tz=EST), id="on-entry-into-force"),
        pytest.param(at(2024, 4, 6, 12, tz=EDT), at(2024, 5, 7, tz=EDT), id="t1-deadline-day"),
        pytest.param(at(2024, 4, 7, tz=EDT), at(2024, 11, 7, tz=EST), id="t1-one-day-late"),
    ],
)
def test_gsomia_a_notice_ends_the_first_term_whose_deadline_it_meets(
    gsomia: Instrument, given: datetime, ends: datetime
) -> None:
    notice = hypothetical("h-notice", EventKind.TERMINATION_NOTICE, given, by="ZZB")
    history = resolve(gsomia, WhatIf(without=frozenset({"zza-notice-2023"}), added=(notice,)))
    status = history.status(given)
    assert status.notice is PENDING
    assert status.terminates_at == ends
    assert status.hypothetical is True


def test_gsomia_whatif_without_the_suspension(gsomia: Instrument) -> None:
    history = resolve(gsomia, WhatIf(without=frozenset({"zza-suspension-2024"})))
    # The late 2023 notice now ends the agreement at the end of T1.
    assert history.terminated_at == at(2024, 5, 7, tz=EDT)
    before = history.status(just_before(at(2024, 5, 7, tz=EDT)))
    assert (before.state, before.notice, before.hypothetical) == (IN, PENDING, True)
    assert history.status(at(2024, 5, 7, tz=EDT)).state is ENDED
    assert history.status(at(2024, 5, 7, tz=EDT)).cause == "zza-notice-2023"
    reasons = {event.id: why for event, why in history.ignored}
    assert reasons["zza-resumption-2024"] == "no suspended notice to resume"
    assert "after termination" in reasons["zza-withdrawal-2024"]
    assert "after termination" in reasons["zzb-notice-2025"]
    # The recorded history is untouched.
    assert resolve(gsomia).status(at(2024, 5, 7, tz=EDT)).state is IN


def test_gsomia_whatif_from_an_events_file(gsomia: Instrument, registry: Registry) -> None:
    added = load_events(WHATIF_FILE, gsomia.timezone)
    assert [(e.id, e.kind, e.at, e.by, e.hypothetical) for e in added] == [
        (
            "zzb-hypothetical-notice-2024",
            EventKind.TERMINATION_NOTICE,
            at(2024, 10, 7, 23, 59, tz=EDT),
            "ZZB",
            True,
        )
    ]
    whatif = whatif_from(registry, "ZZA-ZZB-GSOMIA", [], [str(WHATIF_FILE)])
    assert whatif == WhatIf(added=added)
    history = registry.history("ZZA-ZZB-GSOMIA", whatif)
    # Given on T2's last notice day, after the 2024 withdrawal: it ends T2.
    given = history.status(at(2024, 10, 7, 23, 59, tz=EDT))
    assert (given.notice, given.terminates_at) == (PENDING, at(2024, 11, 7, tz=EST))
    assert history.status(just_before(at(2024, 11, 7, tz=EST))).state is IN
    ended = history.status(at(2024, 11, 7, tz=EST))
    assert (ended.state, ended.cause, ended.hypothetical) == (
        ENDED,
        "zzb-hypothetical-notice-2024",
        True,
    )
    reasons = {event.id: why for event, why in history.ignored}
    assert "after termination at 2024-11-07T00:00:00-05:00" in reasons["zzb-notice-2025"]
    # The registry's recorded history is not changed by the what-if.
    assert registry.history("ZZA-ZZB-GSOMIA").status(at(2024, 11, 7, tz=EST)).state is IN


# -- ZZA-ZZB-PILOT: fixed term P2Y9M, no renewal, P6M after notice, Pacific/Auckland ---------

EXPIRY = at(2025, 7, 1, tz=NZST)
NOTICE_END = at(2024, 9, 15, 10, tz=NZST)  # six months after the 2024 notice, same local time

PILOT_STATES: list[tuple[str, datetime, State, NoticeState, datetime | None]] = [
    ("eif-before-local", just_before(at(2022, 10, 1, tz=NZDT)), NOT_YET, NONE, None),
    ("eif-before-utc", at(2022, 9, 30, 10, 59, tz=UTC), NOT_YET, NONE, None),
    ("eif-at-utc", at(2022, 9, 30, 11, tz=UTC), IN, NONE, EXPIRY),
    ("eif-at-local", at(2022, 10, 1, tz=NZDT), IN, NONE, EXPIRY),
    ("notice-before", at(2024, 3, 15, 10, tz=NZDT) - US, IN, NONE, EXPIRY),
    ("notice-at", at(2024, 3, 15, 10, tz=NZDT), IN, PENDING, NOTICE_END),
    ("withdrawal-before", just_before(at(2024, 5, 1, tz=NZST)), IN, PENDING, NOTICE_END),
    ("withdrawal-at", at(2024, 5, 1, tz=NZST), IN, NONE, EXPIRY),
    ("would-be-end-before", at(2024, 9, 15, 10, tz=NZST) - US, IN, NONE, EXPIRY),
    ("would-be-end-at", at(2024, 9, 15, 10, tz=NZST), IN, NONE, EXPIRY),
    ("notice-2025-before", just_before(at(2025, 3, 1, tz=NZDT)), IN, NONE, EXPIRY),
    ("notice-2025-at (capped by expiry)", at(2025, 3, 1, tz=NZDT), IN, PENDING, EXPIRY),
    ("expiry-before", just_before(EXPIRY), IN, PENDING, EXPIRY),
    ("expiry-at", EXPIRY, ENDED, NONE, None),
    ("expiry-in-utc", at(2025, 6, 30, 12, tz=UTC), ENDED, NONE, None),
]


@pytest.mark.parametrize(
    ("instant", "state", "notice", "terminates_at"),
    [pytest.param(*row[1:], id=row[0]) for row in PILOT_STATES],
)
def test_pilot_states_on_both_sides_of_every_event_and_boundary(
    pilot: Instrument,
    instant: datetime,
    state: State,
    notice: NoticeState,
    terminates_at: datetime | None,
) -> None:
    status = resolve(pilot).status(instant)
    assert status.state is state
    assert status.notice is notice
    assert status.terminates_at == terminates_at
    # After-notice mode: a party may end it at any time (with six months' notice); no deadline.
    assert status.terminable_at_any_time is (state is IN)
    assert status.notice_deadline is None
    assert (status.term.index if status.term else None) == (0 if state is IN else None)


def test_pilot_has_one_term_and_expires(pilot: Instrument) -> None:
    history = resolve(pilot)
    terms = list(history.terms(until=at(2030, 1, 1)))
    assert [(t.index, t.start, t.end, t.notice_deadline) for t in terms] == [
        (0, at(2022, 10, 1, tz=NZDT), EXPIRY, None)
    ]
    assert history.terminated_at == EXPIRY
    assert history.status(EXPIRY).cause == "expiry"
    reasons = {event.id: why for event, why in history.ignored}
    why = "after termination at 2025-07-01T00:00:00+12:00"
    assert reasons == {"zzb-notice-at-expiry-2025": why}


def test_pilot_expires_even_with_no_events(pilot: Instrument) -> None:
    history = resolve(dataclasses.replace(pilot, events=()))
    assert history.terminated_at == EXPIRY
    assert history.status(just_before(EXPIRY)).state is IN
    assert history.status(EXPIRY).state is ENDED


def test_pilot_whatif_without_the_withdrawal(pilot: Instrument) -> None:
    history = resolve(pilot, WhatIf(without=frozenset({"zzb-withdrawal-2024"})))
    # Six months after 10:00 NZDT on 15 Mar 2024 is 10:00 NZST on 15 Sep 2024 (same local time).
    assert history.terminated_at == at(2024, 9, 14, 22, tz=UTC)
    assert history.status(at(2024, 9, 15, 10, tz=NZST) - US).state is IN
    ended = history.status(at(2024, 9, 15, 10, tz=NZST))
    assert (ended.state, ended.cause, ended.hypothetical) == (ENDED, "zzb-notice-2024", True)
    reasons = {event.id: why for event, why in history.ignored}
    assert "after termination" in reasons["zza-notice-2025"]


def test_pilot_whatif_notice_before_expiry_ends_it_early(pilot: Instrument) -> None:
    notice = hypothetical(
        "h-notice", EventKind.TERMINATION_NOTICE, at(2024, 12, 31, 18, tz=NZDT), by="ZZA"
    )
    history = resolve(pilot, WhatIf(added=(notice,)))
    assert history.terminated_at == at(2025, 6, 30, 18, tz=NZST)
    assert history.status(at(2025, 6, 30, 18, tz=NZST)).cause == "h-notice"


@pytest.mark.parametrize(
    "added",
    [
        pytest.param(
            (
                hypothetical("h-suspension", EventKind.NOTICE_SUSPENSION, at(2024, 4, 1, tz=NZDT)),
                hypothetical("h-resumption", EventKind.NOTICE_RESUMPTION, at(2025, 6, 1, tz=NZST)),
            ),
            id="resumption-6-months-before-a-later-end",
        ),
        pytest.param(
            (
                hypothetical(
                    "h-termination",
                    EventKind.TERMINATION,
                    at(2024, 4, 1, tz=NZDT),
                    effective=at(2025, 12, 31, tz=NZDT),
                ),
            ),
            id="termination-effective-after-expiry",
        ),
    ],
)
def test_pilot_never_outlives_its_expiry(pilot: Instrument, added: tuple[Event, ...]) -> None:
    without = {"zzb-withdrawal-2024", "zza-notice-2025"}
    if not any(e.kind is EventKind.NOTICE_SUSPENSION for e in added):
        # Unsuspended, the 2024 notice would end the pilot on 2024-09-15, before anything else.
        without.add("zzb-notice-2024")
    whatif = WhatIf(without=frozenset(without), added=added)
    history = resolve(pilot, whatif)
    assert history.status(EXPIRY).state is ENDED
    assert history.terminated_at == EXPIRY


def test_fixed_term_at_term_end_late_notice_leaves_expiry(pilot: Instrument) -> None:
    at_term_end = dataclasses.replace(
        pilot,
        termination=dataclasses.replace(
            pilot.termination, mode=TerminationMode.AT_TERM_END, notice=Period(days=30)
        ),
        events=(),
    )
    # Last notice day: 2025-06-30 minus 30 days = 2025-05-31. A notice on 1 June is late.
    late = hypothetical("h-late", EventKind.TERMINATION_NOTICE, at(2025, 6, 1, tz=NZST), by="ZZA")
    history = resolve(at_term_end, WhatIf(added=(late,)))
    assert history.terminated_at == EXPIRY


def test_fixed_term_at_term_end_timely_notice(pilot: Instrument) -> None:
    at_term_end = dataclasses.replace(
        pilot,
        termination=dataclasses.replace(
            pilot.termination, mode=TerminationMode.AT_TERM_END, notice=Period(days=30)
        ),
        events=(),
    )
    history = resolve(at_term_end)
    assert [t.notice_deadline for t in history.terms(at(2030, 1, 1))] == [date(2025, 5, 31)]
    timely = hypothetical("h", EventKind.TERMINATION_NOTICE, at(2025, 5, 31, 23, tz=NZST))
    history = resolve(at_term_end, WhatIf(added=(timely,)))
    assert history.terminated_at == EXPIRY
    assert history.status(at(2025, 5, 31, 23, tz=NZST)).notice is PENDING


# -- the registry: shipped and fictional together, and overrides by id ------------------------


def test_registry_holds_real_and_fictional_instruments(registry: Registry) -> None:
    shipped = load_registry()
    assert {"JPN-KOR-GSOMIA", "TISA"} <= set(shipped.instruments)
    assert set(registry.instruments) == set(shipped.instruments) | {
        "ZZA-ZZB-GSOMIA",
        "ZZA-ZZB-PILOT",
    }
    assert {"JPN", "KOR", "USA", "ZZA", "ZZB"} <= set(registry.parties)
    assert {"ZZA", "ZZB", "JPN"} <= set(registry.schemes)
    assert set(registry.topics) == set(shipped.topics) | {"zz-fisheries"}
    assert registry.instrument("JPN-KOR-GSOMIA") == shipped.instrument("JPN-KOR-GSOMIA")
    assert registry.instrument("ZZA-ZZB-GSOMIA").source_file.startswith(str(FICTIONAL))
    assert registry.level("ZZB", "b-secret").english == "SECRET"
    assert [i.id for i in registry.instruments_between("ZZA", "ZZB")] == [
        "ZZA-ZZB-GSOMIA",
        "ZZA-ZZB-PILOT",
    ]
    assert registry.content_hash != shipped.content_hash
    # The real history is unchanged by the fictional additions.
    kst = timezone(timedelta(hours=9))
    real = registry.history("JPN-KOR-GSOMIA").status(at(2019, 11, 23, tz=kst))
    assert (real.state, real.notice) == (IN, SUSPENDED)


def test_an_extra_directory_overrides_a_shipped_instrument_by_id(tmp_path: Path) -> None:
    shipped_text = (DATA_DIR / "instruments" / "jpn-kor-gsomia.toml").read_text(encoding="utf-8")
    marker = '[[events]]\nid = "kor-notice-withdrawal-2023"'
    assert marker in shipped_text
    text = shipped_text.split(marker)[0].replace(
        'title = "Agreement between', 'title = "OVERRIDDEN Agreement between', 1
    )
    (tmp_path / "instruments").mkdir()
    (tmp_path / "instruments" / "override.toml").write_text(text, encoding="utf-8")

    plain = load_registry([FICTIONAL])
    overridden = load_registry([FICTIONAL, tmp_path])
    assert set(overridden.instruments) == set(plain.instruments)
    inst = overridden.instrument("JPN-KOR-GSOMIA")
    assert inst.title.startswith("OVERRIDDEN")
    assert inst.source_file == str(tmp_path / "instruments" / "override.toml")
    assert inst.event("kor-notice-withdrawal-2023") is None
    assert overridden.instrument("ZZA-ZZB-GSOMIA") == plain.instrument("ZZA-ZZB-GSOMIA")
    assert overridden.content_hash != plain.content_hash
    # Without the 2023 withdrawal the 2019 notice is still suspended in 2024.
    kst = timezone(timedelta(hours=9))
    assert overridden.history("JPN-KOR-GSOMIA").status(at(2024, 1, 1, tz=kst)).notice is SUSPENDED
    assert plain.history("JPN-KOR-GSOMIA").status(at(2024, 1, 1, tz=kst)).notice is NONE
