"""Release decisions on the real history: a named decision table, then properties."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsomia import load_registry
from gsomia.core.errors import ReleaseDeniedError
from gsomia.core.labels import SecurityLabel
from gsomia.core.registry import Registry
from gsomia.core.release import Person, ReleaseRequest, _tables, decide, enforce

KST = timezone(timedelta(hours=9))
REGISTRY = load_registry()
LAPSED = REGISTRY.what_if(without=["kor-notice-suspension-2019"])
ALL3 = frozenset({"USA", "JPN", "KOR"})


def label(
    level: str = "gokuhi",
    originator: str = "JPN",
    topics: tuple[str, ...] = ("dprk-missile",),
    rel_to: frozenset[str] = ALL3,
    compartments: frozenset[str] = frozenset(),
) -> SecurityLabel:
    return SecurityLabel(
        originator=originator,
        policy=originator,
        classification=level,
        releasable_to=rel_to,
        compartments=compartments,
        topics=frozenset(topics),
    )


@dataclass(frozen=True)
class Case:
    name: str
    request: ReleaseRequest
    at: str
    allowed: bool
    route: tuple[str, ...] = ()
    recipient_level: str | None = None
    failed_rule: str | None = None
    registry: Registry = field(default=REGISTRY)


CASES = [
    Case(
        "JPN 極秘 DPRK-missile report to KOR on 2019-12-01 goes directly, arrives as II급",
        ReleaseRequest(label("gokuhi"), "JPN", "KOR"),
        "2019-12-01",
        True,
        ("JPN", "KOR"),
        "KOR:gunsa-2",
    ),
    Case(
        "JPN 秘 arrives in KOR as III급",
        ReleaseRequest(label("hi"), "JPN", "KOR"),
        "2019-12-01",
        True,
        ("JPN", "KOR"),
        "KOR:gunsa-3",
    ),
    Case(
        "KOR II급 arrives in JPN as 極秘 (the first of the row)",
        ReleaseRequest(label("gunsa-2", originator="KOR"), "KOR", "JPN"),
        "2024-01-01",
        True,
        ("KOR", "JPN"),
        "JPN:gokuhi",
    ),
    Case(
        "JPN 機密 is outside the GSOMIA (and TISA)",
        ReleaseRequest(label("kimitsu"), "JPN", "KOR", consents=frozenset({"JPN"})),
        "2019-12-01",
        False,
        failed_rule="level-excluded",
    ),
    Case(
        "KOR I급 is outside the GSOMIA",
        ReleaseRequest(label("gunsa-1", originator="KOR"), "KOR", "JPN"),
        "2024-01-01",
        False,
        failed_rule="level-excluded",
    ),
    Case(
        "KOR passing a JPN item to the US without JPN's consent is refused",
        ReleaseRequest(label(), "KOR", "USA", received_under="JPN-KOR-GSOMIA"),
        "2019-12-01",
        False,
        failed_rule="third-party",
    ),
    Case(
        "KOR passing a JPN item to the US with JPN's consent is allowed",
        ReleaseRequest(
            label(), "KOR", "USA", received_under="JPN-KOR-GSOMIA", consents=frozenset({"JPN"})
        ),
        "2019-12-01",
        True,
        ("KOR", "USA"),
        "USA:secret",
    ),
    Case(
        "a non-originator holder that does not say how it got the item is refused",
        ReleaseRequest(label(), "KOR", "USA", consents=frozenset({"JPN"})),
        "2019-12-01",
        False,
        failed_rule="provenance",
    ),
    Case(
        "lapsed GSOMIA: DPRK-missile report goes JPN→USA→KOR under TISA with JPN's consent",
        ReleaseRequest(label(), "JPN", "KOR", consents=frozenset({"JPN"})),
        "2019-11-24",
        True,
        ("JPN", "USA", "KOR"),
        "KOR:gunsa-2",
        registry=LAPSED,
    ),
    Case(
        "lapsed GSOMIA: JPN routing its own report through the hub is its consent",
        ReleaseRequest(label(), "JPN", "KOR"),
        "2019-11-24",
        True,
        ("JPN", "USA", "KOR"),
        "KOR:gunsa-2",
        registry=LAPSED,
    ),
    Case(
        "the US may not pass on a JPN item received under TISA without JPN's consent",
        ReleaseRequest(label(), "USA", "KOR", received_under="TISA"),
        "2019-11-24",
        False,
        failed_rule="third-party",
        registry=LAPSED,
    ),
    Case(
        "with JPN's consent the US may pass it on to KOR",
        ReleaseRequest(label(), "USA", "KOR", received_under="TISA", consents=frozenset({"JPN"})),
        "2019-11-24",
        True,
        ("USA", "KOR"),
        "KOR:gunsa-2",
        registry=LAPSED,
    ),
    Case(
        "lapsed GSOMIA: a PRC-maritime report is refused (outside TISA's scope)",
        ReleaseRequest(label(topics=("prc-maritime",)), "JPN", "KOR", consents=frozenset({"JPN"})),
        "2019-11-24",
        False,
        failed_rule="instrument-in-force",
        registry=LAPSED,
    ),
    Case(
        "recorded history: the same PRC-maritime report goes directly",
        ReleaseRequest(label(topics=("prc-maritime",)), "JPN", "KOR"),
        "2019-11-24",
        True,
        ("JPN", "KOR"),
        "KOR:gunsa-2",
    ),
    Case(
        "lapsed GSOMIA: an item KOR received under it may go back to JPN (survival)",
        ReleaseRequest(label(), "KOR", "JPN", received_under="JPN-KOR-GSOMIA"),
        "2020-06-01",
        True,
        ("KOR", "JPN"),
        "JPN:gokuhi",
        registry=LAPSED,
    ),
    Case(
        "lapsed GSOMIA: an item KOR received under it may not go to the US, even with consent",
        ReleaseRequest(
            label(), "KOR", "USA", received_under="JPN-KOR-GSOMIA", consents=frozenset({"JPN"})
        ),
        "2020-06-01",
        False,
        failed_rule="received-under",
        registry=LAPSED,
    ),
    Case(
        "before 2016-11-23 JPN→KOR can only go through TISA",
        ReleaseRequest(label(), "JPN", "KOR", consents=frozenset({"JPN"})),
        "2016-11-22T23:59",
        True,
        ("JPN", "USA", "KOR"),
        "KOR:gunsa-2",
    ),
    Case(
        "before TISA and the GSOMIA, nothing carries JPN→KOR",
        ReleaseRequest(label(), "JPN", "KOR", consents=frozenset({"JPN"})),
        "2014-12-28",
        False,
        failed_rule="instrument-in-force",
    ),
    Case(
        "a recipient outside REL TO is refused",
        ReleaseRequest(label(rel_to=frozenset({"USA", "JPN"})), "JPN", "KOR"),
        "2019-12-01",
        False,
        failed_rule="releasable-to",
    ),
    Case(
        "the originator always may receive its own item back, REL TO or not",
        ReleaseRequest(
            label(rel_to=frozenset({"KOR"})), "KOR", "JPN", received_under="JPN-KOR-GSOMIA"
        ),
        "2019-12-01",
        True,
        ("KOR", "JPN"),
        "JPN:gokuhi",
    ),
    Case(
        "a person cleared to III급 may not receive II급",
        ReleaseRequest(
            label(), "JPN", "KOR", person=Person("gunsa-3", frozenset({"dprk-missile"}))
        ),
        "2019-12-01",
        False,
        failed_rule="clearance",
    ),
    Case(
        "a person without need-to-know for the topic is refused",
        ReleaseRequest(
            label(), "JPN", "KOR", person=Person("gunsa-2", frozenset({"prc-maritime"}))
        ),
        "2019-12-01",
        False,
        failed_rule="need-to-know",
    ),
    Case(
        "a person cleared and with need-to-know is allowed",
        ReleaseRequest(
            label(), "JPN", "KOR", person=Person("gunsa-1", frozenset({"dprk-missile"}))
        ),
        "2019-12-01",
        True,
        ("JPN", "KOR"),
        "KOR:gunsa-2",
    ),
    Case(
        "a person not read into a compartment is refused",
        ReleaseRequest(
            label(compartments=frozenset({"ALPHA"})),
            "JPN",
            "KOR",
            person=Person("gunsa-2", frozenset({"dprk-missile"})),
        ),
        "2019-12-01",
        False,
        failed_rule="compartments",
    ),
    Case(
        "no instrument covers Japan and India's classification levels: fail closed",
        ReleaseRequest(label(rel_to=frozenset({"IND"})), "JPN", "IND"),
        "2020-01-01",
        False,
        failed_rule="equivalence",
    ),
    Case(
        "an unknown topic fails closed",
        ReleaseRequest(label(topics=("martian-activity",)), "JPN", "KOR"),
        "2020-01-01",
        False,
        failed_rule="request-valid",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decision_table(case: Case) -> None:
    at = datetime.fromisoformat(case.at).replace(tzinfo=KST)
    d = decide(case.registry, case.request, at)
    assert d.allowed is case.allowed, [r for r in d.reasons if not r.passed]
    if case.allowed:
        assert d.route == case.route
        assert d.recipient_label is not None
        assert d.recipient_label.level_key == case.recipient_level
        assert d.failed == ()
    else:
        assert case.failed_rule in {r.rule for r in d.failed}, d.failed


def test_allowed_direct_decision_names_the_obligation_to_mark_the_originator() -> None:
    d = decide(REGISTRY, ReleaseRequest(label(), "JPN", "KOR"), datetime(2019, 12, 1, tzinfo=KST))
    assert d.instruments == ("JPN-KOR-GSOMIA",)
    assert any("provided by the Government of Japan" in o for o in d.obligations)
    assert any("Art. 21(4)" in o for o in d.obligations)
    cited = {r.rule: r.citation for r in d.reasons}
    assert cited["equivalence"] == "JPN-KOR-GSOMIA Art. 4(2)"
    assert cited["level-excluded"] == "JPN-KOR-GSOMIA Art. 4(1)"


def test_hub_route_explains_both_routes_and_cites_the_hub_clause() -> None:
    request = ReleaseRequest(label(), "JPN", "KOR", consents=frozenset({"JPN"}))
    d = decide(LAPSED, request, datetime(2019, 11, 24, tzinfo=KST))
    assert d.instruments == ("TISA", "TISA")
    assert [o.allowed for o in d.routes_considered] == [False, True]
    assert "terminated" in d.routes_considered[0].summary()
    assert {r.citation for r in d.reasons if r.rule == "hub-forwarding"} == {"TISA para 4"}
    assert d.hops[0].label.level_key == "USA:secret"  # the hub's own equivalent marking
    assert d.hypothetical
    assert d.registry_hash != REGISTRY.content_hash
    # The US tables are not published cell by cell: the decision says so.
    assert any("JPN-USA-GSOMIA" in c and "unverified" in c for c in d.caveats)


def test_enforce_raises_with_the_decision() -> None:
    with pytest.raises(ReleaseDeniedError, match="level-excluded") as info:
        enforce(REGISTRY, ReleaseRequest(label("kimitsu"), "JPN", "KOR"), datetime.now(KST))
    assert info.value.decision.allowed is False  # type: ignore[attr-defined]


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(REGISTRY, ReleaseRequest(label(), "JPN", "KOR"), datetime(2020, 1, 1))


# -- properties --------------------------------------------------------------------------------

PARTIES = ("JPN", "KOR", "USA")
LEVELS = {
    "JPN": ("hi", "gokuhi", "tokutei-himitsu", "kimitsu"),
    "KOR": ("gunsa-3", "gunsa-2", "gunsa-1"),
    "USA": ("confidential", "secret", "top-secret"),
}
TOPICS = ("dprk-nuclear", "dprk-missile", "dprk-military", "prc-maritime", "other")
START = datetime(2014, 6, 1, tzinfo=KST)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Registry, ReleaseRequest, datetime]:
    originator = draw(st.sampled_from(PARTIES))
    holder = draw(st.sampled_from(PARTIES))
    recipient = draw(st.sampled_from([p for p in PARTIES if p != holder]))
    lab = SecurityLabel(
        originator=originator,
        policy=originator,
        classification=draw(st.sampled_from(LEVELS[originator])),
        releasable_to=frozenset(draw(st.sets(st.sampled_from(PARTIES)))),
        topics=frozenset(draw(st.sets(st.sampled_from(TOPICS), max_size=2))),
    )
    received_under = None
    if holder != originator:
        received_under = draw(
            st.sampled_from(
                [None, *(i.id for i in REGISTRY.instruments_between(holder, originator))]
            )
        )
    person = None
    if draw(st.booleans()):
        person = Person(
            draw(st.sampled_from(LEVELS[recipient])),
            frozenset(draw(st.sets(st.sampled_from(TOPICS)))),
        )
    request = ReleaseRequest(
        lab,
        holder,
        recipient,
        person=person,
        consents=frozenset(draw(st.sets(st.sampled_from(PARTIES)))),
        received_under=received_under,
    )
    at = START + timedelta(hours=draw(st.integers(0, 24 * 365 * 11)))
    registry = LAPSED if draw(st.booleans()) else REGISTRY
    return registry, request, at


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_never_allowed_outside_releasable_to(s: tuple[Registry, ReleaseRequest, datetime]) -> None:
    registry, request, at = s
    d = decide(registry, request, at)
    if d.allowed:
        for hop in d.hops:
            assert hop.recipient in request.label.releasable_to or (
                hop.recipient == request.label.originator
            )


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_never_allowed_at_an_excluded_level(s: tuple[Registry, ReleaseRequest, datetime]) -> None:
    registry, request, at = s
    d = decide(registry, request, at)
    for hop in d.hops:
        eq = registry.instruments[hop.instrument].equivalence
        excluded = set(eq.excluded) if eq else set()
        assert hop.label.level_key not in excluded
        assert f"{request.label.policy}:{request.label.classification}" not in excluded


def _table_equivalent(registry: Registry, instrument_id: str, lab: SecurityLabel, to: str) -> str:
    """The first level of ``to``'s column in the row holding ``lab``'s level, read off the data."""
    inst = registry.instruments[instrument_id]
    from_party = next(p.code for p in registry.parties.values() if p.scheme == lab.policy)
    for table in (inst, *(registry.instruments[i] for i in inst.protected_under)):
        for row in table.equivalence.rows if table.equivalence else ():
            if lab.classification in row.levels.get(from_party, ()) and to in row.levels:
                return row.levels[to][0]
    if inst.hub and inst.hub.party not in (from_party, to):
        # Received through the hub: the marking went originator → hub → holder.
        hub_scheme = str(registry.parties[inst.hub.party].scheme)
        at_hub = _table_equivalent(registry, instrument_id, lab, inst.hub.party)
        hub_label = SecurityLabel(lab.originator, hub_scheme, at_hub)
        return _table_equivalent(registry, instrument_id, hub_label, to)
    raise AssertionError(f"no table row for {lab.level_key} to {to} under {instrument_id}")


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_allowed_hops_carry_the_tables_equivalent(
    s: tuple[Registry, ReleaseRequest, datetime],
) -> None:
    registry, request, at = s
    d = decide(registry, request, at)
    original = request.label
    previous = original
    holder_scheme = registry.parties[request.holder].scheme
    if d.hops and request.received_under and holder_scheme != original.policy:
        # A holder that is not the originator marks the item in its own scheme first.
        held = _table_equivalent(registry, request.received_under, original, request.holder)
        previous = SecurityLabel(original.originator, str(holder_scheme), held)
    for hop in d.hops:
        if hop.recipient == original.originator:
            assert (hop.label.policy, hop.label.classification) == (
                original.policy,
                original.classification,
            )
        elif previous.policy != registry.parties[hop.recipient].scheme:
            expected = _table_equivalent(registry, hop.instrument, previous, hop.recipient)
            assert hop.label.classification == expected
        previous = hop.label


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_decisions_are_deterministic_and_the_cache_changes_nothing(
    s: tuple[Registry, ReleaseRequest, datetime],
) -> None:
    registry, request, at = s
    first = decide(registry, request, at).to_dict()
    _tables(registry).cache.clear()
    assert decide(registry, request, at).to_dict() == first
    # Another instant of the same interval between change points shares the verdict.
    assert decide(registry, request, at).to_dict() == first


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_every_refusal_names_a_failed_rule(s: tuple[Registry, ReleaseRequest, datetime]) -> None:
    registry, request, at = s
    d = decide(registry, request, at)
    assert d.allowed == (not d.failed)
    for r in d.reasons:
        assert r.rule and r.citation and r.detail


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.sampled_from(PARTIES))
def test_adding_a_consent_never_turns_an_allow_into_a_refusal(
    s: tuple[Registry, ReleaseRequest, datetime], party: str
) -> None:
    registry, request, at = s
    before = decide(registry, request, at)
    more = ReleaseRequest(
        request.label,
        request.holder,
        request.recipient,
        request.person,
        request.consents | {party},
        request.received_under,
    )
    if before.allowed:
        assert decide(registry, more, at).allowed


def test_an_item_received_through_the_hub_is_marked_through_the_hub() -> None:
    # KOR received a JPN 極秘 report under TISA: JPN → USA (SECRET) → KOR (II급). It can go back
    # to JPN, and on to the US with JPN's consent, like any item KOR holds.
    at = datetime(2018, 1, 1, tzinfo=KST)
    home = decide(REGISTRY, ReleaseRequest(label(), "KOR", "JPN", received_under="TISA"), at)
    assert home.allowed, home.failed
    assert home.recipient_label is not None
    assert home.recipient_label.level_key == "JPN:gokuhi"
    onward = ReleaseRequest(label(), "KOR", "USA", received_under="TISA")
    assert not decide(REGISTRY, onward, at).allowed
    consented = ReleaseRequest(
        label(), "KOR", "USA", received_under="TISA", consents=frozenset({"JPN"})
    )
    assert decide(REGISTRY, consented, at).allowed


def test_the_missile_warning_link_never_carries_an_item() -> None:
    # In 2024, with the GSOMIA in force, items go under it; the link is for track data only.
    at = datetime(2024, 6, 1, tzinfo=KST)
    d = decide(REGISTRY, ReleaseRequest(label(), "JPN", "KOR"), at)
    assert "TRILATERAL-MISSILE-WARNING-2023" not in {o.instrument for o in d.routes_considered}
    asked = ReleaseRequest(label(), "JPN", "KOR", under="TRILATERAL-MISSILE-WARNING-2023")
    named = decide(REGISTRY, asked, at)
    assert {o.instrument for o in named.routes_considered} == {"TRILATERAL-MISSILE-WARNING-2023"}
