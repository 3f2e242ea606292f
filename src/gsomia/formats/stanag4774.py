"""Security labels as NATO ADatP-4774 (STANAG 4774) style XML, written and read back.

The official 4774 schema (XSD) is not public (domain reference §6.1 and §7, gap 5): the element
names below come from public examples and open-source implementations, and must be checked
against the XSD before this format is exchanged with anyone else. A label's own originator label
is written as the document element::

    <originatorConfidentialityLabel xmlns="urn:nato:stanag:4774:confidentialitymetadatalabel:1:0">
      <ConfidentialityInformation>
        <PolicyIdentifier>JPN</PolicyIdentifier>
        <Classification>極秘</Classification>
        <Category TagName="Releasable To" Type="PERMISSIVE">
          <GenericValue>USA</GenericValue>
          <GenericValue>JPN</GenericValue>
        </Category>
        <Category TagName="Compartment" Type="RESTRICTIVE">...</Category>
        <Category TagName="Topic" Type="INFORMATIVE">...</Category>
        <Category TagName="Originator Consent Required" Type="INFORMATIVE">
          <GenericValue>true</GenericValue>
        </Category>
      </ConfidentialityInformation>
      <OriginatorID>JPN</OriginatorID>
      <CreationDateTime>2024-05-01T03:00:00Z</CreationDateTime>
    </originatorConfidentialityLabel>

``PolicyIdentifier`` is the registry's scheme id and ``Classification`` the level's native name
(its id is also read); ``OriginatorID`` is the originator's party code (its ``IDType`` is not
read: the standard's vocabulary for it is not public); ``CreationDateTime`` is UTC and is left
out when the label has no creation time. The category tag names and the consent category are
gsomia's choices [design note]. A document element ``ConfidentialityLabel`` is read as well.

An alternative (equivalent) label, as a recipient re-marks the originator's label under its own
policy, is written as the 4778 ``Metadata`` element holding both labels: the
``originatorConfidentialityLabel`` with the originator's policy and level, and the
``alternativeConfidentialityLabel`` with the holder's. Their categories, originator and creation
time must agree, since a :class:`SecurityLabel` holds one set of each.

Reading is fail-closed: anything not understood (an unknown element or category, a category
whose Type does not match its tag, a duplicate value) is refused. XML with a DTD (so entity
expansion such as "billion laughs", and external entities) is refused by defusedxml before any
of it is expanded; malformed XML, and documents over :data:`MAX_XML_BYTES`, are refused too.
Every refusal is an :class:`InvalidLabelError` with one line saying why.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime

import defusedxml.ElementTree as SafeET
from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

from gsomia.core.errors import InvalidLabelError
from gsomia.core.labels import SecurityLabel, validate_label
from gsomia.core.markings import rel_to_order
from gsomia.core.parties import Level
from gsomia.core.registry import Registry

__all__ = ["BINDING_NAMESPACE", "MAX_XML_BYTES", "NAMESPACE", "from_xml", "to_xml"]

NAMESPACE = "urn:nato:stanag:4774:confidentialitymetadatalabel:1:0"
BINDING_NAMESPACE = "urn:nato:stanag:4778:bindinginformation:1:0"
MAX_XML_BYTES = 64 * 1024  # a label is a few hundred bytes; refuse anything absurd unread

RELEASABLE_TO = "Releasable To"
COMPARTMENT = "Compartment"
TOPIC = "Topic"
CONSENT = "Originator Consent Required"
# Each tag's Type is fixed: a "Releasable To" read as RESTRICTIVE would mean the opposite.
_TYPES = {
    RELEASABLE_TO: "PERMISSIVE",
    COMPARTMENT: "RESTRICTIVE",
    TOPIC: "INFORMATIVE",
    CONSENT: "INFORMATIVE",
}
_ORIGINATOR = "originatorConfidentialityLabel"
_ALTERNATIVE = "alternativeConfidentialityLabel"


def _q(name: str, namespace: str = NAMESPACE) -> str:
    return f"{{{namespace}}}{name}"


# -- writing ----------------------------------------------------------------------------------


def to_xml(registry: Registry, label: SecurityLabel) -> str:
    """``label`` as a 4774-style XML document (UTF-8 text with an XML declaration).

    Raises:
        InvalidLabelError: the label names something the registry does not know.
    """
    validate_label(registry, label)
    if label.original is None:
        root = _label_element(registry, _ORIGINATOR, label, label.policy, label.classification)
    else:
        root = ET.Element("Metadata", xmlns=BINDING_NAMESPACE)
        root.append(_label_element(registry, _ORIGINATOR, label, *label.original))
        root.append(
            _label_element(registry, _ALTERNATIVE, label, label.policy, label.classification)
        )
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'


def _label_element(
    registry: Registry, name: str, label: SecurityLabel, policy: str, level_id: str
) -> ET.Element:
    # Written with plain names and an explicit xmlns: ElementTree's default_namespace option
    # refuses the unqualified TagName and Type attributes, and register_namespace is global.
    element = ET.Element(name, xmlns=NAMESPACE)
    info = ET.SubElement(element, "ConfidentialityInformation")
    ET.SubElement(info, "PolicyIdentifier").text = policy
    level = next(lv for lv in registry.schemes[policy].levels if lv.id == level_id)
    ET.SubElement(info, "Classification").text = level.native
    for tag, values in (
        (RELEASABLE_TO, rel_to_order(label.releasable_to)),
        (COMPARTMENT, sorted(label.compartments)),
        (TOPIC, sorted(label.topics)),
        (CONSENT, ["true" if label.originator_consent_required else "false"]),
    ):
        if values:
            category = ET.SubElement(info, "Category", TagName=tag, Type=_TYPES[tag])
            for value in values:
                ET.SubElement(category, "GenericValue").text = value
    ET.SubElement(element, "OriginatorID").text = label.originator
    if label.created is not None:
        created = label.created.astimezone(UTC).isoformat().replace("+00:00", "Z")
        ET.SubElement(element, "CreationDateTime").text = created
    return element


# -- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Read:
    """One label element as read: its own policy and level, and what the two labels share."""

    policy: str
    classification: str
    originator: str
    created: datetime | None
    categories: dict[str, frozenset[str]]


def from_xml(registry: Registry, data: str | bytes) -> SecurityLabel:
    """The label in a 4774-style XML document written by :func:`to_xml` (or shaped like it).

    Raises:
        InvalidLabelError: hostile XML (a DTD, entities, external references), malformed XML, an
            oversized document, an element or category not understood, or a label whose names
            the registry does not know.
    """
    size = len(data.encode("utf-8") if isinstance(data, str) else data)
    if size > MAX_XML_BYTES:
        raise InvalidLabelError(f"XML label refused: larger than {MAX_XML_BYTES} bytes")
    root = _parse(data)
    if root.tag in (_q(_ORIGINATOR), _q("ConfidentialityLabel")):
        label = _to_label(_read_label(registry, root))
    elif root.tag == _q("Metadata", BINDING_NAMESPACE):
        label = _read_metadata(registry, root)
    else:
        raise InvalidLabelError(
            f"XML label refused: unexpected document element {_name(root)}; expected "
            f"{_ORIGINATOR} in {NAMESPACE} or Metadata in {BINDING_NAMESPACE}"
        )
    validate_label(registry, label)
    return label


def _parse(data: str | bytes) -> ET.Element:
    try:
        root: ET.Element = SafeET.fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DTDForbidden as e:
        raise InvalidLabelError(
            "XML label refused: it has a DTD (entity expansion and external entities are "
            "not allowed)"
        ) from e
    except EntitiesForbidden as e:
        raise InvalidLabelError("XML label refused: it declares entities") from e
    except ExternalReferenceForbidden as e:
        raise InvalidLabelError("XML label refused: it references an external resource") from e
    except (SyntaxError, ValueError) as e:  # ParseError is a SyntaxError; bad encodings raise
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InvalidLabelError(f"malformed XML label: {detail}") from e
    return root


def _name(element: ET.Element) -> str:
    namespace, _, local = element.tag[1:].partition("}")
    return local if namespace == NAMESPACE else element.tag


def _children(
    element: ET.Element, allowed: dict[str, tuple[int, int]]
) -> dict[str, list[ET.Element]]:
    """The children of ``element`` by local name, each name within its (min, max) count."""
    found: dict[str, list[ET.Element]] = {name: [] for name in allowed}
    for child in element:
        name = _name(child)
        if name not in allowed:
            raise InvalidLabelError(
                f"XML label refused: unexpected element {name} in {_name(element)}"
            )
        found[name].append(child)
    for name, (least, most) in allowed.items():
        count = len(found[name])
        if count < least:
            raise InvalidLabelError(f"XML label refused: {_name(element)} has no {name}")
        if count > most:
            raise InvalidLabelError(f"XML label refused: {_name(element)} has {count} {name}")
    return found


def _text(element: ET.Element) -> str:
    text = (element.text or "").strip()
    if not text:
        raise InvalidLabelError(f"XML label refused: {_name(element)} is empty")
    return text


def _read_label(registry: Registry, element: ET.Element) -> _Read:
    parts = _children(
        element,
        {"ConfidentialityInformation": (1, 1), "OriginatorID": (1, 1), "CreationDateTime": (0, 1)},
    )
    info = _children(
        parts["ConfidentialityInformation"][0],
        {"PolicyIdentifier": (1, 1), "Classification": (1, 1), "Category": (0, len(_TYPES))},
    )
    policy = _text(info["PolicyIdentifier"][0])
    level = _level(registry, policy, _text(info["Classification"][0]))
    categories: dict[str, frozenset[str]] = {}
    for category in info["Category"]:
        tag, values = _category(category)
        if tag in categories:
            raise InvalidLabelError(f"XML label refused: category {tag!r} appears twice")
        categories[tag] = values
    created = None
    if parts["CreationDateTime"]:
        created = _instant(_text(parts["CreationDateTime"][0]))
    originator = _text(parts["OriginatorID"][0])
    return _Read(policy, level.id, originator, created, categories)


def _level(registry: Registry, policy: str, name: str) -> Level:
    scheme = registry.schemes.get(policy)
    if scheme is None:
        raise InvalidLabelError(f"XML label refused: unknown PolicyIdentifier {policy!r}")
    for level in scheme.levels:
        if name in (level.native, level.id):
            return level
    raise InvalidLabelError(f"XML label refused: unknown Classification {name!r} in {policy}")


def _category(element: ET.Element) -> tuple[str, frozenset[str]]:
    tag = element.get("TagName")
    kind = element.get("Type")
    if tag not in _TYPES:
        raise InvalidLabelError(f"XML label refused: unknown category TagName {tag!r}")
    if kind != _TYPES[tag]:
        raise InvalidLabelError(
            f"XML label refused: category {tag!r} must have Type {_TYPES[tag]}, not {kind!r}"
        )
    values = [_text(v) for v in _children(element, {"GenericValue": (1, 10_000)})["GenericValue"]]
    if len(set(values)) != len(values):
        raise InvalidLabelError(f"XML label refused: category {tag!r} lists a value twice")
    return tag, frozenset(values)


def _instant(text: str) -> datetime:
    try:
        instant = datetime.fromisoformat(text)
    except ValueError as e:
        raise InvalidLabelError(
            f"XML label refused: CreationDateTime {text!r} is not ISO 8601"
        ) from e
    if instant.tzinfo is None:
        raise InvalidLabelError(f"XML label refused: CreationDateTime {text!r} has no UTC offset")
    return instant


def _consent(read: _Read) -> bool:
    values = read.categories.get(CONSENT, frozenset({"true"}))
    if values == {"true"}:
        return True
    if values == {"false"}:
        return False
    raise InvalidLabelError(f"XML label refused: category {CONSENT!r} must be true or false")


def _to_label(read: _Read) -> SecurityLabel:
    return SecurityLabel(
        originator=read.originator,
        policy=read.policy,
        classification=read.classification,
        releasable_to=read.categories.get(RELEASABLE_TO, frozenset()),
        compartments=read.categories.get(COMPARTMENT, frozenset()),
        topics=read.categories.get(TOPIC, frozenset()),
        created=read.created,
        originator_consent_required=_consent(read),
    )


def _read_metadata(registry: Registry, root: ET.Element) -> SecurityLabel:
    labels = _children(root, {_ORIGINATOR: (1, 1), _ALTERNATIVE: (0, 1)})
    original = _read_label(registry, labels[_ORIGINATOR][0])
    label = _to_label(original)
    if not labels[_ALTERNATIVE]:
        return label
    alternative = _read_label(registry, labels[_ALTERNATIVE][0])
    shared = (original.originator, original.created, original.categories)
    if (alternative.originator, alternative.created, alternative.categories) != shared:
        raise InvalidLabelError(
            "XML label refused: the alternative label's originator, creation time or "
            "categories differ from the originator's"
        )
    return label.remarked(alternative.policy, alternative.classification)
