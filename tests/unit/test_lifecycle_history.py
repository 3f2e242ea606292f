"""The lifecycle engine on the real, sourced history (shared/domain/gsomia.md §2-3)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from gsomia import WhatIf, load_registry
from gsomia.core.errors import UnknownEventError
from gsomia.core.lifecycle import History, NoticeState, State

KST = timezone(timedelta(hours=9), "KST")
JST = timezone(timedelta(hours=9), "JST")
MINUTE = timedelta(minutes=1)
SUSPENSION = "kor-notice-suspension-2019"


def kst(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=KST)


@pytest.fixture(scope="module")
def gsomia() -> History:
    return load_registry().history("JPN-KOR-GSOMIA")


@pytest.fixture(scope="module")
def lapsed() -> History:
    return load_registry().history("JPN-KOR-GSOMIA", WhatIf(without=frozenset({SUSPENSION})))


# -- entry into force and term boundaries --------------------------------------------------


def test_not_in_force_one_minute_before_midnight_of_entry_into_force(gsomia: History) -> None:
    s = gsomia.status(kst("2016-11-23T00:00") - MINUTE)
    assert s.state is State.NOT_YET_IN_FORCE
    assert s.term is None


def test_in_force_from_midnight_of_entry_into_force_in_seoul(gsomia: History) -> None:
    s = gsomia.status(kst("2016-11-23T00:00"))
    assert s.state is State.IN_FORCE
    assert s.term is not None
    assert (s.term.number, s.term.start, s.term.end) == (1, kst("2016-11-23"), kst("2017-11-23"))


def test_the_same_instant_in_utc_gives_the_same_answer(gsomia: History) -> None:
    # 2016-11-22T15:00Z is midnight in Seoul: the instrument's zone decides, not the caller's.
    utc = datetime(2016, 11, 22, 15, 0, tzinfo=UTC)
    assert gsomia.status(utc).state is State.IN_FORCE
    assert gsomia.status(utc - MINUTE).state is State.NOT_YET_IN_FORCE


@pytest.mark.parametrize("year", [2017, 2018, 2019, 2020, 2021, 2022, 2023, 2024, 2025])
def test_terms_turn_over_at_midnight_in_seoul_on_23_november(gsomia: History, year: int) -> None:
    boundary = kst(f"{year}-11-23T00:00")
    before, after = gsomia.status(boundary - MINUTE), gsomia.status(boundary)
    assert before.term is not None and after.term is not None
    assert before.term.end == boundary == after.term.start
    assert after.term.number == before.term.number + 1 == year - 2016 + 1


@pytest.mark.parametrize(
    ("year", "deadline"),
    [
        (2017, date(2017, 8, 24)),
        (2018, date(2018, 8, 24)),
        (2019, date(2019, 8, 24)),
        (2020, date(2020, 8, 24)),
    ],
)
def test_notice_deadline_of_each_term(gsomia: History, year: int, deadline: date) -> None:
    # Art. 21(3): 90 days' notice before the anniversary (23 Nov); the deadline reported in the
    # press each year was 24 Aug.
    s = gsomia.status(kst(f"{year}-06-01T12:00"))
    assert s.notice_deadline == deadline
    assert s.term is not None and s.term.end == kst(f"{year}-11-23T00:00")


# -- the 2019 notice, its suspension, and its withdrawal ---------------------------------------


def test_before_the_notice_nothing_is_pending(gsomia: History) -> None:
    s = gsomia.status(kst("2019-08-23T00:00") - MINUTE)
    assert (s.state, s.notice, s.terminates_at) == (State.IN_FORCE, NoticeState.NONE, None)
    assert "kor-nsc-decision-2019" in [e.id for e in s.events_applied]  # a record, no effect


def test_the_notice_of_23_august_2019_would_end_it_at_midnight_on_23_november(
    gsomia: History,
) -> None:
    s = gsomia.status(kst("2019-08-23T00:00"))
    assert s.notice is NoticeState.PENDING
    assert s.terminates_at == kst("2019-11-23T00:00")
    assert not s.terminable_at_any_time


def test_the_suspension_of_22_november_keeps_it_in_force(gsomia: History) -> None:
    before = gsomia.status(kst("2019-11-22T00:00") - MINUTE)
    after = gsomia.status(kst("2019-11-22T00:00"))
    assert before.notice is NoticeState.PENDING
    assert after.notice is NoticeState.SUSPENDED
    assert after.terminates_at is None
    assert after.terminable_at_any_time
    assert after.terminable_claim is not None
    assert after.terminable_claim.by == "KOR"
    assert after.terminable_claim.disputed_by == ("JPN",)


def test_midnight_on_23_november_2019_passes_with_the_agreement_in_force(gsomia: History) -> None:
    for at in (kst("2019-11-23T00:00") - MINUTE, kst("2019-11-23T00:00"), kst("2020-11-23")):
        s = gsomia.status(at)
        assert s.state is State.IN_FORCE
        assert s.notice is NoticeState.SUSPENDED


def test_the_withdrawal_of_21_march_2023_normalises_it(gsomia: History) -> None:
    before = gsomia.status(kst("2023-03-21T00:00") - MINUTE)
    after = gsomia.status(kst("2023-03-21T00:00"))
    assert before.notice is NoticeState.SUSPENDED and before.terminable_at_any_time
    assert after.notice is NoticeState.NONE and not after.terminable_at_any_time
    assert after.notice_deadline == date(2023, 8, 24)
    assert [e.id for e in after.events_applied][-1] == "kor-notice-withdrawal-2023"


# -- what-if: no suspension --------------------------------------------------------------------


def test_without_the_suspension_it_terminates_at_midnight_in_seoul(lapsed: History) -> None:
    lapse = datetime.fromisoformat("2019-11-23T00:00+09:00")
    assert lapsed.status(lapse - MINUTE).state is State.IN_FORCE
    s = lapsed.status(lapse)
    assert s.state is State.TERMINATED
    assert s.terminated_at == lapse
    assert s.cause == "kor-termination-notice-2019"
    assert s.hypothetical


def test_without_the_suspension_the_2023_withdrawal_has_no_effect(lapsed: History) -> None:
    s = lapsed.status(kst("2023-06-01"))
    assert s.state is State.TERMINATED
    assert [(e.id, why.startswith("after termination")) for e, why in s.events_ignored] == [
        ("kor-notice-withdrawal-2023", True)
    ]


def test_what_if_without_an_unknown_event_is_refused() -> None:
    with pytest.raises(UnknownEventError, match="kor-notice-suspension-2O19"):
        load_registry().history(
            "JPN-KOR-GSOMIA", WhatIf(without=frozenset({"kor-notice-suspension-2O19"}))
        )


def test_what_if_without_the_notice_means_nothing_was_ever_pending() -> None:
    h = load_registry().history(
        "JPN-KOR-GSOMIA", WhatIf(without=frozenset({"kor-termination-notice-2019"}))
    )
    s = h.status(kst("2019-11-22T12:00"))
    assert s.notice is NoticeState.NONE
    assert "kor-notice-suspension-2019" in [e.id for e, _ in s.events_ignored]


# -- TISA --------------------------------------------------------------------------------------


def test_tisa_takes_effect_on_29_december_2014() -> None:
    tisa = load_registry().history("TISA")
    assert tisa.status(datetime(2014, 12, 28, 23, 59, tzinfo=JST)).state is State.NOT_YET_IN_FORCE
    s = tisa.status(datetime(2014, 12, 29, 0, 0, tzinfo=JST))
    assert s.state is State.IN_FORCE
    # A non-binding arrangement that ends on a participant's notice: no term end, no deadline.
    assert s.term is not None and s.term.end is None
    assert s.notice_deadline is None
    assert s.terminable_at_any_time
    assert "termination" in s.instrument.unverified()  # the notice length is not public


def test_instruments_whose_entry_into_force_is_unconfirmed_are_never_in_force() -> None:
    s = load_registry().history("JPN-UKR-ISA").status(datetime(2026, 1, 1, tzinfo=JST))
    assert s.state is State.NOT_YET_IN_FORCE
    assert "entry-into-force" in s.instrument.unverified()
