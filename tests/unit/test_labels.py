"""SecurityLabel's JSON form (to_dict / from_dict) and its validation against the registry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gsomia import load_registry
from gsomia.core.errors import InvalidLabelError
from gsomia.core.labels import LABEL_FIELDS, SecurityLabel, validate_label

REG = load_registry()
JST = timezone(timedelta(hours=9))

LABEL = SecurityLabel(
    originator="JPN",
    policy="USA",
    classification="secret",
    releasable_to=frozenset({"USA", "KOR", "JPN"}),
    compartments=frozenset({"BRAVO", "ALPHA"}),
    topics=frozenset({"dprk-missile", "dprk-nuclear"}),
    created=datetime(2023, 12, 19, 9, 30, tzinfo=JST),
    originator_consent_required=True,
    original=("JPN", "gokuhi"),
)


def test_to_dict_is_json_with_sorted_lists_and_an_iso_instant() -> None:
    data = LABEL.to_dict()
    assert list(data) == list(LABEL_FIELDS)
    assert data["releasable_to"] == ["JPN", "KOR", "USA"]
    assert data["compartments"] == ["ALPHA", "BRAVO"]
    assert data["created"] == "2023-12-19T09:30:00+09:00"
    assert data["original"] == ["JPN", "gokuhi"]
    assert json.loads(json.dumps(data)) == data


def test_from_dict_reads_what_to_dict_writes() -> None:
    assert SecurityLabel.from_dict(json.loads(json.dumps(LABEL.to_dict()))) == LABEL


def test_from_dict_fills_defaults_for_optional_fields() -> None:
    label = SecurityLabel.from_dict({"originator": "KOR", "policy": "KOR", "classification": "x"})
    assert label == SecurityLabel("KOR", "KOR", "x")
    assert label.originator_consent_required is True


def _with(**changes: Any) -> dict[str, Any]:
    return {**LABEL.to_dict(), **changes}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (["JPN"], "must be an object"),
        ({"policy": "JPN", "classification": "hi"}, "missing: originator"),
        (_with(secret_sauce=True), "unknown label field(s): secret_sauce"),
        (_with(originator=""), "'originator' must be a non-empty string"),
        (_with(policy=" JPN"), "'policy' must be a non-empty string"),
        (_with(classification=3), "'classification' must be a non-empty string"),
        (_with(releasable_to="USA"), "'releasable_to' must be a list"),
        (_with(releasable_to=["USA", "USA"]), "lists a value twice"),
        (_with(topics=["dprk-missile", 7]), "each value of label field 'topics'"),
        (_with(created="2023-12-19T09:30:00"), "has no UTC offset"),
        (_with(created="yesterday"), "not ISO 8601"),
        (_with(created=1700000000), "ISO 8601 string or null"),
        (_with(originator_consent_required="yes"), "must be a boolean"),
        (_with(original=["JPN"]), "[policy, classification]"),
        (_with(original=["JPN", ""]), "the classification in label field 'original'"),
    ],
)
def test_from_dict_refuses_malformed_labels_with_one_line(data: Any, message: str) -> None:
    with pytest.raises(InvalidLabelError) as info:
        SecurityLabel.from_dict(data)
    assert message in info.value.message
    assert "\n" not in info.value.message


def test_validate_label_accepts_a_label_the_registry_knows() -> None:
    validate_label(REG, LABEL)


@pytest.mark.parametrize(
    ("label", "message"),
    [
        (SecurityLabel("XYZ", "JPN", "gokuhi"), "originator 'XYZ'"),
        (SecurityLabel("JPN", "ATL", "gokuhi"), "policy 'ATL'"),
        # a native name is not a level id: labels hold ids, markings hold names
        (SecurityLabel("JPN", "JPN", "極秘"), "classification '極秘'"),
        (SecurityLabel("JPN", "USA", "secret", original=("JPN", "secret")), "original"),
        (SecurityLabel("JPN", "JPN", "hi", releasable_to=frozenset({"ATL"})), "'ATL'"),
        (SecurityLabel("JPN", "JPN", "hi", topics=frozenset({"weather"})), "'weather'"),
    ],
)
def test_validate_label_fails_closed_on_unknown_names(label: SecurityLabel, message: str) -> None:
    with pytest.raises(InvalidLabelError, match="label") as info:
        validate_label(REG, label)
    assert message in info.value.message


names = st.text(alphabet="ABCDEFGHIJ-k", min_size=1, max_size=6)
instants = st.datetimes(
    min_value=datetime(1990, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, JST, timezone(timedelta(hours=-5))]),
)
labels = st.builds(
    SecurityLabel,
    originator=names,
    policy=names,
    classification=names,
    releasable_to=st.frozensets(names, max_size=4),
    compartments=st.frozensets(names, max_size=4),
    topics=st.frozensets(names, max_size=3),
    created=st.none() | instants,
    originator_consent_required=st.booleans(),
    original=st.none() | st.tuples(names, names),
)


@given(labels)
def test_json_round_trip_keeps_every_field(label: SecurityLabel) -> None:
    text = json.dumps(label.to_dict(), ensure_ascii=False)
    assert SecurityLabel.from_dict(json.loads(text)) == label
