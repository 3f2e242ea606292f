"""Banner, portion, FGI and native markings: the domain examples, the errors, and round trips."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsomia import load_registry
from gsomia.core.errors import InvalidLabelError, InvalidMarkingError
from gsomia.core.labels import SecurityLabel
from gsomia.core.markings import (
    MarkingForm,
    marked_fields,
    parse,
    parse_marking,
    rel_to_order,
    render,
)

REG = load_registry()
TRI = frozenset({"USA", "JPN", "KOR"})
US_SECRET = SecurityLabel("USA", "USA", "secret", releasable_to=TRI)
JPN_GOKUHI = SecurityLabel("JPN", "JPN", "gokuhi", releasable_to=TRI)
KOR_GUNSA2 = SecurityLabel("KOR", "KOR", "gunsa-2", releasable_to=TRI)
JPN_HELD_BY_US = JPN_GOKUHI.remarked("USA", "secret")


# -- the examples of the domain reference (shared/domain/gsomia.md §6.3, §6.4) ----------------


@pytest.mark.parametrize(
    ("label", "form", "marking"),
    [
        (US_SECRET, MarkingForm.BANNER, "SECRET//REL TO USA, JPN, KOR"),
        (US_SECRET, MarkingForm.PORTION, "(S//REL TO USA, JPN, KOR)"),
        (JPN_HELD_BY_US, MarkingForm.BANNER, "//JPN S//REL TO USA, JPN, KOR"),
        (JPN_HELD_BY_US, MarkingForm.PORTION, "(//JPN S//REL TO USA, JPN, KOR)"),
        (JPN_HELD_BY_US, MarkingForm.FGI_BANNER, "SECRET//FGI JPN//REL TO USA, JPN, KOR"),
        (
            KOR_GUNSA2.remarked("USA", "secret"),
            MarkingForm.PORTION,
            "(//KOR S//REL TO USA, JPN, KOR)",
        ),
        (
            JPN_GOKUHI.remarked("KOR", "gunsa-2"),
            MarkingForm.NATIVE,
            "군사II급비밀 (Provided by the Government of Japan)//REL TO USA, JPN, KOR",
        ),
        (
            KOR_GUNSA2.remarked("JPN", "gokuhi"),
            MarkingForm.NATIVE,
            "極秘（大韓民国政府提供）//REL TO USA, JPN, KOR",
        ),
        (SecurityLabel("KOR", "JPN", "hi"), MarkingForm.NATIVE, "秘（大韓民国政府提供）"),
        (JPN_GOKUHI, MarkingForm.NATIVE, "極秘//REL TO USA, JPN, KOR"),
        (SecurityLabel("USA", "USA", "top-secret"), MarkingForm.BANNER, "TOP SECRET"),
        # the US's native marking is its banner
        (JPN_HELD_BY_US, MarkingForm.NATIVE, "//JPN S//REL TO USA, JPN, KOR"),
    ],
)
def test_renders_the_documented_markings(
    label: SecurityLabel, form: MarkingForm, marking: str
) -> None:
    assert render(REG, label, form) == marking


@pytest.mark.parametrize(
    ("marking", "form", "label"),
    [
        ("SECRET//REL TO USA, JPN, KOR", MarkingForm.BANNER, US_SECRET),
        ("(S//REL TO USA, JPN, KOR)", MarkingForm.PORTION, US_SECRET),
        (
            "//JPN S//REL TO USA, JPN, KOR",
            MarkingForm.BANNER,
            SecurityLabel("JPN", "USA", "secret", TRI),
        ),
        (
            "(//JPN S//REL TO USA, JPN, KOR)",
            MarkingForm.PORTION,
            SecurityLabel("JPN", "USA", "secret", TRI),
        ),
        (
            "//JPN SECRET//REL TO USA, JPN, KOR",
            MarkingForm.BANNER,
            SecurityLabel("JPN", "USA", "secret", TRI),
        ),
        (
            "SECRET//FGI JPN//REL TO USA, JPN, KOR",
            MarkingForm.FGI_BANNER,
            SecurityLabel("JPN", "USA", "secret", TRI),
        ),
        ("(//DEU TS)", MarkingForm.PORTION, SecurityLabel("DEU", "USA", "top-secret")),
        (
            "군사II급비밀 (Provided by the Government of Japan)",
            MarkingForm.NATIVE,
            SecurityLabel("JPN", "KOR", "gunsa-2"),
        ),
        (
            "極秘（大韓民国政府提供）//REL TO USA, JPN, KOR",
            MarkingForm.NATIVE,
            SecurityLabel("KOR", "JPN", "gokuhi", TRI),
        ),
        (
            "極秘 (Provided by the Government of the Republic of Korea)",
            MarkingForm.NATIVE,
            SecurityLabel("KOR", "JPN", "gokuhi"),
        ),
        ("特定秘密", MarkingForm.NATIVE, SecurityLabel("JPN", "JPN", "tokutei-himitsu")),
        (
            "NATO SECRET//REL TO JPN, NATO",
            MarkingForm.NATIVE,
            SecurityLabel("NATO", "NATO", "nato-secret", frozenset({"JPN", "NATO"})),
        ),
        # REL TO order is an unverified convention: it is written, not demanded of what is read
        ("  SECRET//REL TO KOR, USA, JPN  ", MarkingForm.BANNER, US_SECRET),
    ],
)
def test_parses_the_documented_markings(
    marking: str, form: MarkingForm, label: SecurityLabel
) -> None:
    parsed = parse_marking(REG, marking)
    assert parsed.form is form
    assert parsed.label == label


def test_rel_to_lists_usa_then_trigraphs_then_tetragraphs() -> None:
    assert rel_to_order({"NATO", "KOR", "USA", "AUS", "JPN"}) == [
        "USA",
        "AUS",
        "JPN",
        "KOR",
        "NATO",
    ]
    label = SecurityLabel("USA", "USA", "secret", frozenset({"NATO", "KOR", "USA", "GBR"}))
    assert render(REG, label) == "SECRET//REL TO USA, GBR, KOR, NATO"


def test_compartments_come_after_the_classification_sorted_and_slash_separated() -> None:
    label = SecurityLabel("JPN", "USA", "secret", TRI, compartments=frozenset({"BRAVO", "ALPHA-2"}))
    assert (
        render(REG, label, MarkingForm.PORTION) == "(//JPN S//ALPHA-2/BRAVO//REL TO USA, JPN, KOR)"
    )
    assert (
        render(REG, label, MarkingForm.FGI_BANNER)
        == "SECRET//ALPHA-2/BRAVO//FGI JPN//REL TO USA, JPN, KOR"
    )
    assert parse(REG, "SECRET//BRAVO/ALPHA-2//FGI JPN//REL TO USA, JPN, KOR") == label


def test_a_parsed_label_carries_only_what_the_marking_says() -> None:
    label = parse(REG, "//JPN S//REL TO USA, JPN, KOR")
    # //JPN S cannot say whether the original was 極秘 or 特定秘密
    assert label.original is None
    assert label.topics == frozenset() and label.created is None
    assert label.originator_consent_required is True


def test_holder_chooses_the_scheme_of_a_native_marking() -> None:
    assert parse(REG, "Gokuhi", holder="JPN") == SecurityLabel("JPN", "JPN", "gokuhi")
    with pytest.raises(InvalidMarkingError, match="unknown classification 'Gokuhi' in the KOR"):
        parse(REG, "Gokuhi", holder="KOR")


def test_an_english_equivalent_is_never_read_as_a_native_level() -> None:
    # CONFIDENTIAL is the English equivalent of 군사III급비밀; reading it as that would turn a
    # US (or mistyped) marking into a Korean one.
    with pytest.raises(InvalidMarkingError, match="unknown classification 'CONFIDENTIAL'"):
        parse(REG, "CONFIDENTIAL (Provided by the Government of Japan)", holder="KOR")


# -- labels that cannot be written --------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "form", "message"),
    [
        (JPN_GOKUHI, MarkingForm.BANNER, "the banner form is a US marking"),
        (JPN_GOKUHI, MarkingForm.PORTION, "under the JPN policy"),
        (
            SecurityLabel("USA", "USA", "secret", frozenset({"JPN"})),
            MarkingForm.BANNER,
            "must include USA",
        ),
        (US_SECRET, MarkingForm.FGI_BANNER, "FGI banner is for foreign information"),
        (
            SecurityLabel("USA", "USA", "secret", compartments=frozenset({"alpha"})),
            MarkingForm.BANNER,
            "'alpha' cannot be marked",
        ),
        (
            SecurityLabel("USA", "USA", "secret", compartments=frozenset({"NOFORN"})),
            MarkingForm.BANNER,
            "'NOFORN' cannot be marked",
        ),
        (
            SecurityLabel("JPN", "JPN", "gokuhi", compartments=frozenset({"A/B"})),
            MarkingForm.NATIVE,
            "'A/B' cannot be marked",
        ),
        (SecurityLabel("JPN", "JPN", "極秘"), MarkingForm.NATIVE, "not a level id"),
        (
            SecurityLabel("JPN", "JPN", "hi", frozenset({"XYZ"})),
            MarkingForm.NATIVE,
            "unknown party 'XYZ'",
        ),
    ],
)
def test_render_refuses_labels_it_cannot_mark(
    label: SecurityLabel, form: MarkingForm, message: str
) -> None:
    with pytest.raises(InvalidLabelError) as info:
        render(REG, label, form)
    assert message in info.value.message


# -- markings that do not parse ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("marking", "message"),
    [
        ("", "empty marking"),
        ("S" * 3000, "longer than"),
        ("SECRET\n//REL TO USA", "non-printable character"),
        ("SECRET//REL TO USA,JPN", "separated by ', '"),
        ("SECRET//REL TO USA,  JPN", "stray space"),
        ("SECRET//REL TO USA ,JPN", "separated by ', '"),
        ("SECRET//REL TO USA, JPN, JPN", "lists JPN twice"),
        ("SECRET//REL TO JPN, KOR", "must include USA"),
        ("SECRET//REL TO USA, XYZ", "unknown country code 'XYZ' in REL TO"),
        ("SECRET//REL TO", "lists no country"),
        ("SECRET///REL TO USA", "exactly '//'"),
        ("SECRET//", "exactly '//'"),
        ("SECRET// REL TO USA", "stray space"),
        ("SUPER SECRET//REL TO USA", "unknown classification 'SUPER SECRET'"),
        ("(SECRET//REL TO USA)", "unknown US classification 'SECRET' in a portion"),
        ("(S//REL TO USA", "enclosed in '(' and ')'"),
        ("()", "enclosed"),
        ("//XYZ S", "unknown country code 'XYZ'"),
        ("//JPN", "a country code, a space and a level"),
        ("//JPN Q", "unknown US classification 'Q' after '//JPN'"),
        ("(//JPN SECRET)", "unknown US classification 'SECRET'"),
        ("//USA S", "without '//USA'"),
        ("//FGI S", "conceals the originator"),
        ("SECRET//FGI", "conceals the originator"),
        ("SECRET//FGI JPN KOR", "exactly one originator"),
        ("SECRET//FGI USA", "FGI cannot name USA"),
        ("//JPN S//FGI KOR", "cannot follow"),
        ("SECRET//REL TO USA, JPN//ALPHA", "out of order"),
        ("SECRET//REL TO USA//REL TO USA", "appears twice"),
        ("SECRET//ALPHA//BRAVO", "appears twice"),
        ("SECRET//NOFORN", "unsupported control marking 'NOFORN'"),
        ("SECRET//alpha", "malformed compartment 'alpha'"),
        ("SECRET//ALPHA/ALPHA", "appears twice"),
        ("極秘//FGI KOR", "FGI category belongs to US markings only"),
        ("極秘（中華民国政府提供）", "unknown providing government"),
        ("극비 (Provided by the Government of Atlantis)", "unknown providing government"),
        ("極秘 (from Korea)", "malformed provider note"),
        ("CONFIDENTIAL (Provided by the Government of Japan)//REL TO JPN", "must include USA"),
    ],
)
def test_malformed_markings_raise_one_line_naming_the_problem(marking: str, message: str) -> None:
    with pytest.raises(InvalidMarkingError) as info:
        parse(REG, marking)
    assert message in info.value.message
    assert "\n" not in info.value.message


def test_unknown_holder_is_a_marking_error() -> None:
    with pytest.raises(InvalidMarkingError, match="unknown holder 'ATL'"):
        parse(REG, "極秘", holder="ATL")
    with pytest.raises(InvalidMarkingError, match="no classification scheme"):
        parse(REG, "極秘", holder="FRA")


# -- properties --------------------------------------------------------------------------------

PARTIES = sorted(REG.parties)
COMPARTMENTS = ["ALPHA", "BRAVO", "CHARLIE", "X-1", "Z9"]
HOLDERS = ["JPN", "KOR", "USA", "NATO"]


@st.composite
def labels(draw: st.DrawFn, *, us_policy: bool = False) -> SecurityLabel:
    """Random labels: an originator's own label or one re-marked under a holder's scheme."""
    originator = draw(st.sampled_from(["JPN", "KOR", "USA"]))
    level = draw(st.sampled_from(REG.schemes[originator].levels))
    label = SecurityLabel(
        originator=originator,
        policy=originator,
        classification=level.id,
        releasable_to=draw(st.frozensets(st.sampled_from(PARTIES))),
        compartments=draw(st.frozensets(st.sampled_from(COMPARTMENTS))),
        topics=draw(st.frozensets(st.sampled_from(sorted(REG.topics)))),
    )
    holder = "USA" if us_policy else draw(st.sampled_from(HOLDERS))
    if holder != originator:
        held = draw(st.sampled_from(REG.schemes[holder].levels))
        label = label.remarked(holder, held.id)
    if label.policy == "USA" and label.releasable_to:
        label = SecurityLabel(  # a US REL TO always names USA
            label.originator,
            label.policy,
            label.classification,
            label.releasable_to | {"USA"},
            label.compartments,
            label.topics,
            original=label.original,
        )
    return label


@given(labels(us_policy=True), st.sampled_from([MarkingForm.BANNER, MarkingForm.PORTION]))
def test_us_markings_round_trip(label: SecurityLabel, form: MarkingForm) -> None:
    text = render(REG, label, form)
    parsed = parse_marking(REG, text)
    assert parsed.form is form
    assert marked_fields(parsed.label) == marked_fields(label)
    assert render(REG, parsed.label, form) == text


@given(labels(us_policy=True).filter(lambda label: label.originator != "USA"))
def test_fgi_banner_round_trips(label: SecurityLabel) -> None:
    text = render(REG, label, MarkingForm.FGI_BANNER)
    assert f"//FGI {label.originator}" in text
    assert marked_fields(parse(REG, text)) == marked_fields(label)


@given(labels())
def test_native_markings_round_trip_with_and_without_the_holder(label: SecurityLabel) -> None:
    text = render(REG, label, MarkingForm.NATIVE)
    holder = next(p.code for p in REG.parties.values() if p.scheme == label.policy)
    assert marked_fields(parse(REG, text)) == marked_fields(label)
    assert marked_fields(parse(REG, text, holder=holder)) == marked_fields(label)


@given(labels())
def test_an_own_label_without_topics_round_trips_whole(label: SecurityLabel) -> None:
    own = SecurityLabel(
        label.originator,
        label.policy,
        label.classification,
        label.releasable_to,
        label.compartments,
    )
    if own.originator == own.policy:
        assert parse(REG, render(REG, own, MarkingForm.NATIVE)) == own


def _parses_or_refuses(text: str) -> None:
    """Parse ``text``: a label or an InvalidMarkingError; anything else fails the test."""
    message = ""
    try:
        result = parse(REG, text)
    except InvalidMarkingError as e:
        message = e.message
    else:
        assert isinstance(result, SecurityLabel)
        return
    assert message
    assert "\n" not in message


@given(st.text(max_size=80))
def test_random_text_parses_or_raises_invalid_marking(text: str) -> None:
    _parses_or_refuses(text)


MARKING_ALPHABET = (
    "/(), SCTREL OUSAJPNKORFGIALPH-極秘（）提供군사II급비밀 Provided by the Government of"
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(labels(), st.sampled_from(list(MarkingForm)), st.data())
def test_mutated_markings_parse_or_raise_invalid_marking(
    label: SecurityLabel, form: MarkingForm, data: st.DataObject
) -> None:
    try:
        text = render(REG, label, form)
    except InvalidLabelError:
        text = render(REG, label, MarkingForm.NATIVE)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        edit = data.draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        piece = data.draw(st.text(alphabet=MARKING_ALPHABET, min_size=1, max_size=6))
        if edit == "insert":
            text = text[:at] + piece + text[at:]
        elif edit == "delete":
            text = text[:at] + text[at + len(piece) :]
        elif edit == "replace":
            text = text[:at] + piece + text[at + len(piece) :]
        else:
            text = text[:at] + text[at // 2 : at] + text[at:]
    _parses_or_refuses(text)
