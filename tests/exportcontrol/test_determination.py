"""Licence determination on the real timeline, as decision tables (case -> licence and reasons).

Dates are the days on either side of each change: the three-item measure (2019-07-04, lifted
2023-03-23), resist's relaxation (2019-12-20), the ROK's group (B from 2019-08-28, A again from
2023-07-21) and the catch-all reform (2025-10-09).
"""

from __future__ import annotations

from datetime import date

import pytest

from gsomia.exportcontrol.determination import (
    Determination,
    EndUse,
    EndUserFinding,
    ExportRequest,
    Outcome,
    determine,
)
from gsomia.exportcontrol.errors import ExportDateOutOfRangeError, UnknownExportItemError
from gsomia.exportcontrol.tables import Concern, Tables

THREE = ("fluorinated-polyimide", "resist", "hydrogen-fluoride")
WMD_LISTED = EndUserFinding(
    "Listed Co", listed=True, review=False, concerns=frozenset({Concern.WMD})
)
CONV_LISTED = EndUserFinding(
    "Conventional Co", listed=True, review=False, concerns=frozenset({Concern.CONVENTIONAL})
)
POSSIBLE = EndUserFinding("Maybe Co", listed=True, review=True, concerns=frozenset({Concern.WMD}))
CLEAR = EndUserFinding("Clear Co", listed=False, review=False, concerns=frozenset())


def run(
    tables: Tables,
    item: str,
    to: str,
    on: str,
    end_use: EndUse | None = None,
    informed: bool = False,
    end_user: EndUserFinding | None = None,
) -> Determination:
    request = ExportRequest(item, to, date.fromisoformat(on), end_use, informed, end_user)
    return determine(tables, request)


def licences(d: Determination) -> list[str]:
    return [e.licence.id for e in d.eligible]


def rules(d: Determination) -> set[str]:
    return {r.rule for r in d.reasons}


# -- the three items to the ROK --------------------------------------------------------------------


@pytest.mark.parametrize("item", THREE)
def test_three_items_before_4_july_2019_go_under_a_general_bulk_licence(
    tables: Tables, item: str
) -> None:
    d = run(tables, item, "KOR", "2019-07-03")
    assert d.group.group.id == "A"
    assert d.license_required
    assert d.license is not None and d.license.licence.id == "general-bulk"
    assert licences(d) == ["general-bulk", "special-general-bulk", "specific-bulk", "individual"]
    assert "kor-three-items-2019" not in rules(d)


@pytest.mark.parametrize("item", THREE)
def test_three_items_from_4_july_2019_need_an_individual_licence(tables: Tables, item: str) -> None:
    d = run(tables, item, "KOR", "2019-07-04")
    assert d.group.group.id == "A"  # still Group A: the group changed on 28 Aug
    assert licences(d) == ["individual"]
    measure = next(r for r in d.reasons if r.rule == "kor-three-items-2019")
    assert measure.step == "measure" and measure.effective == "2019-07-04 to 2023-03-22"
    assert "1 Jul 2019" in measure.citation and "4 Jul 2019" in measure.citation


def test_the_measure_is_item_specific(tables: Tables) -> None:
    d = run(tables, "carbon-fibre", "KOR", "2019-07-04")
    assert d.license is not None and d.license.licence.id == "general-bulk"


def test_the_measure_is_destination_specific(tables: Tables) -> None:
    d = run(tables, "resist", "TWN", "2019-07-04")
    assert d.group.group.id == "C"
    assert d.license is not None and d.license.licence.id == "special-general-bulk"


@pytest.mark.parametrize(
    ("on", "expected"),
    [
        ("2019-12-19", ["individual"]),
        ("2019-12-20", ["specific-bulk", "individual"]),
        ("2023-03-22", ["specific-bulk", "individual"]),
    ],
)
def test_resist_relaxation_of_20_december_2019(
    tables: Tables, on: str, expected: list[str]
) -> None:
    d = run(tables, "resist", "KOR", on)
    assert licences(d) == expected
    if "specific-bulk" in expected:
        relax = next(r for r in d.reasons if r.rule == "kor-resist-relaxation-2019")
        assert relax.provenance.evidence.value == "unverified"  # the sources disagree
        assert d.eligible[0].evidence.value == "unverified"
        assert any("kor-resist-relaxation-2019" in u for u in d.unverified)


@pytest.mark.parametrize("item", ["fluorinated-polyimide", "hydrogen-fluoride"])
def test_other_two_items_stay_individual_until_the_lifting(tables: Tables, item: str) -> None:
    assert licences(run(tables, item, "KOR", "2023-03-22")) == ["individual"]


@pytest.mark.parametrize("item", THREE)
def test_three_items_from_23_march_2023_go_under_special_general_bulk(
    tables: Tables, item: str
) -> None:
    d = run(tables, item, "KOR", "2023-03-23")
    assert d.group.group.id == "B"  # Group A only from 21 Jul 2023
    assert licences(d) == ["special-general-bulk", "specific-bulk", "individual"]
    assert "kor-three-items-2019" not in rules(d)


# -- the ROK's group ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("on", "group", "least"),
    [
        ("2019-08-27", "A", "general-bulk"),
        ("2019-08-28", "B", "special-general-bulk"),
        ("2023-07-20", "B", "special-general-bulk"),
        ("2023-07-21", "A", "general-bulk"),
    ],
)
def test_korea_group_history(tables: Tables, on: str, group: str, least: str) -> None:
    assignment = tables.group_on("KOR", date.fromisoformat(on))
    assert assignment.group.id == group
    assert assignment.provenance.verified
    d = run(tables, "carbon-fibre", "KOR", on)
    assert d.license is not None and d.license.licence.id == least


def test_korea_in_group_b_is_subject_to_the_catch_all(tables: Tables) -> None:
    before = run(tables, "steel-bolts", "KOR", "2019-08-27", end_user=WMD_LISTED)
    after = run(tables, "steel-bolts", "KOR", "2019-08-28", end_user=WMD_LISTED)
    assert not before.license_required  # Group A: no catch-all before 9 Oct 2025
    assert after.license_required and after.license is not None
    assert after.license.licence.id == "individual"


def test_group_names_before_2_august_2019_are_marked(tables: Tables) -> None:
    assignment = tables.group_on("KOR", date(2019, 7, 4))
    assert assignment.group.id == "A" and not assignment.named
    assert "2 Aug 2019" in assignment.detail()


# -- list control -------------------------------------------------------------------------------


@pytest.mark.parametrize("country", ["USA", "DEU", "AUS"])
def test_a_listed_item_to_group_a_still_needs_a_licence(tables: Tables, country: str) -> None:
    d = run(tables, "carbon-fibre", country, "2024-06-01")
    assert d.group.group.id == "A"
    assert d.license_required
    assert d.license is not None and d.license.licence.id == "general-bulk"
    list_control = next(r for r in d.reasons if r.step == "list-control")
    assert list_control.outcome is Outcome.LICENCE_REQUIRED
    assert "Group A included" in list_control.detail
    assert "FEFTA Art. 48(1)" in list_control.citation and "row 5" in list_control.citation


def test_rows_without_bulk_scope_need_an_individual_licence(tables: Tables) -> None:
    d = run(tables, "small-arms", "USA", "2024-06-01")
    assert licences(d) == ["individual"]


@pytest.mark.parametrize(
    ("country", "expected"),
    [
        ("USA", ["general-bulk", "special-general-bulk", "specific-bulk", "individual"]),
        ("TUR", ["special-general-bulk", "specific-bulk", "individual"]),
        ("CHN", ["special-general-bulk", "specific-bulk", "individual"]),
        ("IRN", ["individual"]),
    ],
)
def test_the_chart_by_group(tables: Tables, country: str, expected: list[str]) -> None:
    assert licences(run(tables, "encryption-equipment", country, "2024-06-01")) == expected


def test_a_listed_item_with_a_catch_all_condition_loses_its_bulk_licences(tables: Tables) -> None:
    d = run(tables, "carbon-fibre", "USA", "2024-06-01", end_use=EndUse.WMD)
    assert licences(d) == ["individual"]
    assert "catch-all-conditions" in rules(d)


# -- catch-all ----------------------------------------------------------------------------------

BEFORE, AFTER = "2025-10-08", "2025-10-09"


@pytest.mark.parametrize(
    ("name", "item", "to", "on", "end_use", "informed", "end_user", "required"),
    [
        # general country, WMD: objective and inform requirements, before and after the reform
        ("general, no hit", "steel-bolts", "CHN", BEFORE, None, False, CLEAR, False),
        ("general, no hit", "steel-bolts", "CHN", AFTER, None, False, CLEAR, False),
        ("general, civil", "steel-bolts", "CHN", AFTER, EndUse.CIVIL, False, None, False),
        ("general, EUL hit", "steel-bolts", "CHN", BEFORE, None, False, WMD_LISTED, True),
        ("general, EUL hit", "steel-bolts", "CHN", AFTER, None, False, WMD_LISTED, True),
        ("general, WMD use", "steel-bolts", "CHN", BEFORE, EndUse.WMD, False, None, True),
        ("general, WMD use", "steel-bolts", "CHN", AFTER, EndUse.WMD, False, None, True),
        ("general, informed", "steel-bolts", "CHN", BEFORE, None, True, None, True),
        ("general, informed", "steel-bolts", "CHN", AFTER, None, True, None, True),
        # general country, conventional: inform only before; objective for 16(1) after
        ("16(1), conv. use", "cnc-lathe", "CHN", BEFORE, EndUse.CONVENTIONAL, False, None, False),
        ("16(1), conv. use", "cnc-lathe", "CHN", AFTER, EndUse.CONVENTIONAL, False, None, True),
        ("16(2), conv. use", "steel-bolts", "CHN", AFTER, EndUse.CONVENTIONAL, False, None, False),
        ("16(1), conv. user", "cnc-lathe", "CHN", BEFORE, None, False, CONV_LISTED, False),
        ("16(1), conv. user", "cnc-lathe", "CHN", AFTER, None, False, CONV_LISTED, True),
        # Group A: exempt before; a licence when METI informs after
        ("group A, EUL hit", "steel-bolts", "USA", BEFORE, None, False, WMD_LISTED, False),
        ("group A, EUL hit", "steel-bolts", "USA", AFTER, None, False, WMD_LISTED, False),
        ("group A, WMD use", "cnc-lathe", "USA", AFTER, EndUse.WMD, False, None, False),
        ("group A, informed", "cnc-lathe", "USA", BEFORE, None, True, None, False),
        ("group A, informed", "cnc-lathe", "USA", AFTER, None, True, None, True),
        # UN arms-embargoed: the conventional end-use requirement applies
        ("3-2, conv. use", "steel-bolts", "LBY", BEFORE, EndUse.CONVENTIONAL, False, None, True),
        ("3-2, conv. use", "steel-bolts", "LBY", AFTER, EndUse.CONVENTIONAL, False, None, True),
        ("3-2, civil", "steel-bolts", "LBY", AFTER, EndUse.CIVIL, False, CLEAR, False),
        # a possible match is treated as a hit until a person clears it
        ("general, review", "steel-bolts", "CHN", AFTER, None, False, POSSIBLE, True),
        # goods outside Appended Table 1
        ("outside, WMD use", "green-tea", "CHN", AFTER, EndUse.WMD, False, WMD_LISTED, False),
    ],
)
def test_catch_all(
    tables: Tables,
    name: str,
    item: str,
    to: str,
    on: str,
    end_use: EndUse | None,
    informed: bool,
    end_user: EndUserFinding | None,
    required: bool,
) -> None:
    d = run(tables, item, to, on, end_use, informed, end_user)
    assert d.license_required is required, (name, [r.detail for r in d.reasons])
    if required:
        assert licences(d) == ["individual"]
        met = [r for r in d.reasons if r.step == "catch-all" and r.outcome is Outcome.MET]
        assert met and all("row 16" in r.citation for r in met)
    else:
        assert d.license is None and d.eligible == ()


def test_catch_all_rules_switch_on_9_october_2025(tables: Tables) -> None:
    before = run(tables, "cnc-lathe", "CHN", BEFORE, EndUse.CONVENTIONAL)
    after = run(tables, "cnc-lathe", "CHN", AFTER, EndUse.CONVENTIONAL)
    assert "conventional-general-before-2025" in rules(before)
    assert "conventional-general-specified-from-2025" in rules(after)
    assert "conventional-general-before-2025" not in rules(after)


def test_group_a_before_2025_has_no_catch_all_rule(tables: Tables) -> None:
    d = run(tables, "steel-bolts", "USA", BEFORE, EndUse.WMD)
    reason = next(r for r in d.reasons if r.step == "catch-all")
    assert reason.rule == "none-in-force" and reason.outcome is Outcome.NOT_APPLICABLE


def test_a_possible_match_asks_for_review(tables: Tables) -> None:
    d = run(tables, "steel-bolts", "CHN", AFTER, end_user=POSSIBLE)
    assert d.needs_review
    assert any("fail closed" in r.detail for r in d.reasons if r.step == "end-user")


# -- embargo, goods outside the table, bad input --------------------------------------------------


def test_north_korea_is_embargoed_and_says_so_unverified(tables: Tables) -> None:
    d = run(tables, "green-tea", "PRK", "2024-06-01")
    assert d.prohibited and d.license_required and d.license is None and d.eligible == ()
    embargo = next(r for r in d.reasons if r.step == "embargo")
    assert not embargo.provenance.verified


def test_goods_outside_the_table_need_no_licence(tables: Tables) -> None:
    d = run(tables, "sawn-timber", "CHN", "2024-06-01")
    assert not d.license_required
    assert "outside-row-16" in rules(d)


def test_items_by_name_and_alias(tables: Tables) -> None:
    assert run(tables, "Photoresist", "KOR", "2019-07-04").item.id == "resist"
    assert run(tables, "フッ化水素", "KOR", "2019-07-04").item.id == "hydrogen-fluoride"


def test_unknown_item_suggests_close_ids(tables: Tables) -> None:
    with pytest.raises(UnknownExportItemError, match="did you mean 'resist'"):
        run(tables, "resits", "KOR", "2019-07-04")


def test_dates_before_the_coverage_are_refused(tables: Tables) -> None:
    with pytest.raises(ExportDateOutOfRangeError, match="2019-01-01"):
        run(tables, "resist", "KOR", "2018-12-31")


def test_every_reason_carries_its_source(tables: Tables) -> None:
    d = run(tables, "resist", "KOR", "2020-01-10", EndUse.CIVIL, True, WMD_LISTED)
    for r in d.reasons:
        assert r.provenance.source, r
    data = d.to_dict()
    assert {"license_required", "license", "eligible_licenses", "group", "reasons"} <= set(data)
    assert data["license"] == "individual"  # informed + listed end user: bulk licences not used
