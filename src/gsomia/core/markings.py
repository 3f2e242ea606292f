"""Markings: a security label written as text, and read back.

Every function takes the registry, which knows the parties and the schemes' levels; nothing here
keeps state. Three families of marking are written:

**US banner and portion** (CAPCO / DoDM 5200.01 Vol. 2), for a label under the ``USA`` policy.
Categories are separated by ``//`` in the order classification, compartments, FGI, REL TO::

    SECRET//REL TO USA, JPN, KOR                 banner, US information
    (S//REL TO USA, JPN, KOR)                    portion
    SECRET//ALPHA/BRAVO//REL TO USA, JPN         compartments: one category, '/' between them
    //JPN S//REL TO USA, JPN, KOR                banner of Japanese information the US holds
    (//JPN S//REL TO USA, JPN, KOR)              its portion
    SECRET//FGI JPN//REL TO USA, JPN, KOR        the "fgi-banner" form of the same label

A portion writes the level's abbreviation, a banner its full name (``//JPN SECRET`` is also read).
REL TO lists ``USA`` first, then the other trigraphs alphabetically, then tetragraphs such as
``NATO`` alphabetically, separated by a comma and a space. That ordering rule is **[unverified]**
(domain reference §6.3: only the published examples are sourced), so it is how markings are
written but not required of markings that are read. A US REL TO list must include ``USA``.
Compartments are upper-case names (letters, digits, hyphens); dissemination controls such as
``NOFORN`` are not compartments and are refused rather than misread as one.

**Native**, as a Japanese or Korean (or any other) holder marks under its own scheme, after the
JPN-KOR GSOMIA Art. 4(2): the holder's level name and, for another government's information, the
originating government's name. The same ``//`` categories follow::

    極秘//REL TO USA, JPN, KOR                                Japan's own information
    極秘（大韓民国政府提供）//REL TO USA, JPN, KOR               Japan holding Korean information
    군사II급비밀 (Provided by the Government of Japan)          Korea holding Japanese information

A holder whose scheme marks in Japanese (``language = "ja"`` in the registry) writes the Japanese
form ``（<name>提供）`` with the originator's ``government_names.ja`` from the registry; every other
holder, and a Japanese holder for an originator with no Japanese name, writes
``(Provided by <Party.government>)``. Both are read in
any holder's marking. The native marking of a label under the US policy is its banner.

**What a marking carries.** Originator, policy, classification, REL TO and compartments; see
:func:`marked_fields`. Topics, the creation time and the consent caveat are not in markings, and
neither is the originator's own level of an alternative label (``//JPN S`` says "SECRET", not
極秘 or 特定秘密), so a parsed label has ``original=None``, no topics, no ``created`` and the
default consent caveat. For every label :func:`render` accepts,
``marked_fields(parse(registry, render(registry, label, form))) == marked_fields(label)``.

Anything that does not parse raises :class:`InvalidMarkingError` with one line naming what is
wrong; a label that cannot be written raises :class:`InvalidLabelError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from gsomia.core.errors import InvalidLabelError, InvalidMarkingError
from gsomia.core.labels import SecurityLabel, validate_label
from gsomia.core.parties import ClassificationScheme, Level, _fold
from gsomia.core.registry import Registry

__all__ = [
    "MAX_MARKING_LENGTH",
    "MarkedFields",
    "MarkingForm",
    "ParsedMarking",
    "marked_fields",
    "parse",
    "parse_marking",
    "rel_to_order",
    "render",
]

US = "USA"  # the party, and the scheme, whose marking system (CAPCO) the banner forms follow
MAX_MARKING_LENGTH = 2000  # far above any real banner; bounds the work done on hostile input

_COMPARTMENT = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*")
_MAX_COMPARTMENT = 32
# Words that mean something else in a US marking: reading one as a compartment would turn a
# dissemination control into a mere need-to-hold, so they are refused.
_RESERVED = frozenset(
    {"FGI", "REL", "NOFORN", "NF", "ORCON", "OC", "PROPIN", "PR", "RELIDO", "IMCON", "FOUO"}
    | {"NOCONTRACT", "EYES", "DISPLAY", "LIMDIS", "EXDIS", "NODIS", "SBU", "LES", "UNCLASSIFIED"}
)
_REL_TO = "REL TO "
_FGI = "FGI"
_EN_NOTE = re.compile(r"(?P<level>[^()（）]+?) \(Provided by (?P<who>[^()（）]+)\)")
_JA_NOTE = re.compile(r"(?P<level>[^()（）]+?)[（(](?P<who>[^()（）]+)提供[）)]")


class MarkingForm(StrEnum):
    BANNER = "banner"  # SECRET//REL TO USA, JPN  or  //JPN S//REL TO USA, JPN
    PORTION = "portion"  # (S//REL TO USA, JPN)  or  (//JPN S//REL TO USA, JPN)
    FGI_BANNER = "fgi-banner"  # SECRET//FGI JPN//REL TO USA, JPN
    NATIVE = "native"  # 極秘（大韓民国政府提供）//REL TO USA, JPN


@dataclass(frozen=True, slots=True)
class MarkedFields:
    """The fields of a label that a marking carries, to compare a label with its marking."""

    originator: str
    policy: str
    classification: str
    releasable_to: frozenset[str]
    compartments: frozenset[str]


@dataclass(frozen=True, slots=True)
class ParsedMarking:
    label: SecurityLabel
    form: MarkingForm


def marked_fields(label: SecurityLabel) -> MarkedFields:
    return MarkedFields(
        label.originator,
        label.policy,
        label.classification,
        label.releasable_to,
        label.compartments,
    )


def rel_to_order(codes: Iterable[str]) -> list[str]:
    """``codes`` in REL TO order: USA, other trigraphs A-Z, then tetragraphs A-Z. [unverified]"""
    return sorted(set(codes), key=lambda c: (c != US, len(c) != 3, c))


# -- rendering --------------------------------------------------------------------------------


def render(registry: Registry, label: SecurityLabel, form: MarkingForm = MarkingForm.BANNER) -> str:
    """``label`` written as a marking of ``form``.

    Raises:
        InvalidLabelError: the label names something the registry does not know, a compartment
            cannot be written, a US form is asked of a label under another policy, a US REL TO
            list lacks USA, or the FGI banner is asked of US information.
    """
    validate_label(registry, label)
    level = _level_by_id(registry.schemes[label.policy], label.classification)
    categories = _categories(label)
    if form is MarkingForm.NATIVE and label.policy != US:
        return "//".join([_native_head(registry, label, level), *categories])
    if label.policy != US:
        raise InvalidLabelError(
            f"the {form.value} form is a US marking, but this label is under the "
            f"{label.policy} policy: use the native form or re-mark it under USA"
        )
    if label.releasable_to and US not in label.releasable_to:
        raise InvalidLabelError("a US REL TO marking must include USA")
    foreign = label.originator != US
    if form is MarkingForm.FGI_BANNER:
        if not foreign:
            raise InvalidLabelError("the FGI banner is for foreign information; this is US's own")
        fgi = f"{_FGI} {label.originator}"
        return "//".join(
            [level.native, *_compartment_category(label), fgi, *_rel_to_category(label)]
        )
    head = level.abbreviation if form is MarkingForm.PORTION else level.native
    if foreign:
        head = f"//{label.originator} {level.abbreviation}"
    text = "//".join([head, *categories])
    return f"({text})" if form is MarkingForm.PORTION else text


def _categories(label: SecurityLabel) -> list[str]:
    return [*_compartment_category(label), *_rel_to_category(label)]


def _compartment_category(label: SecurityLabel) -> list[str]:
    for name in label.compartments:
        if not _is_compartment(name):
            raise InvalidLabelError(
                f"compartment {name!r} cannot be marked: use upper-case letters, digits and "
                f"hyphens (at most {_MAX_COMPARTMENT}), and no control word such as NOFORN"
            )
    return ["/".join(sorted(label.compartments))] if label.compartments else []


def _rel_to_category(label: SecurityLabel) -> list[str]:
    if not label.releasable_to:
        return []
    return [_REL_TO + ", ".join(rel_to_order(label.releasable_to))]


def _is_compartment(name: str) -> bool:
    return (
        len(name) <= _MAX_COMPARTMENT
        and _COMPARTMENT.fullmatch(name) is not None
        and name not in _RESERVED
    )


def _native_head(registry: Registry, label: SecurityLabel, level: Level) -> str:
    if label.originator in _parties_marking_with(registry, label.policy):
        return level.native  # the holder's own information names no provider
    scheme = registry.schemes[label.policy]
    japanese = registry.parties[label.originator].government_names.get("ja")
    if scheme.language == "ja" and japanese:
        return f"{level.native}（{japanese}提供）"
    return f"{level.native} (Provided by {registry.parties[label.originator].government})"


def _parties_marking_with(registry: Registry, scheme_id: str) -> list[str]:
    return [p.code for p in registry.parties.values() if p.scheme == scheme_id]


def _level_by_id(scheme: ClassificationScheme, level_id: str) -> Level:
    return next(lv for lv in scheme.levels if lv.id == level_id)  # validate_label checked it


# -- parsing ----------------------------------------------------------------------------------


def parse(registry: Registry, text: str, *, holder: str | None = None) -> SecurityLabel:
    """The label a marking describes; see :func:`parse_marking`."""
    return parse_marking(registry, text, holder=holder).label


def parse_marking(registry: Registry, text: str, *, holder: str | None = None) -> ParsedMarking:
    """Read a banner, portion, FGI banner or native marking, and say which form it was.

    ``holder`` names the party whose scheme a native marking's level belongs to; without it the
    level name must belong to exactly one scheme. US markings name their policy themselves, so
    ``holder`` does not change how they are read. Surrounding whitespace is ignored.

    Raises:
        InvalidMarkingError: the marking is malformed, names an unknown level or party, lists a
            party twice, or breaks a US rule (REL TO without USA, categories out of order).
    """
    if not isinstance(text, str):
        raise InvalidMarkingError(f"a marking must be text, not {type(text).__name__}")
    text = text.strip()
    if not text:
        raise InvalidMarkingError("empty marking")
    if len(text) > MAX_MARKING_LENGTH:
        raise InvalidMarkingError(f"marking longer than {MAX_MARKING_LENGTH} characters")
    if any(not ch.isprintable() for ch in text):
        raise InvalidMarkingError(
            "marking contains a non-printable character (control, line break or unusual space)"
        )
    if US not in registry.schemes:
        raise InvalidMarkingError("the registry has no USA scheme to read US markings with")
    if text.startswith("("):
        if not text.endswith(")") or len(text) < 3:
            raise InvalidMarkingError("a portion marking must be enclosed in '(' and ')'")
        return ParsedMarking(_parse_us(registry, text[1:-1], portion=True), MarkingForm.PORTION)
    head = text.split("//", 1)[0]
    us_names = {lv.native for lv in registry.schemes[US].levels}
    if text.startswith("//") or head in us_names:
        label = _parse_us(registry, text, portion=False)
        fgi = "//" + _FGI + " " in text and not text.startswith("//")
        return ParsedMarking(label, MarkingForm.FGI_BANNER if fgi else MarkingForm.BANNER)
    return ParsedMarking(_parse_native(registry, text, holder), MarkingForm.NATIVE)


def _segments(text: str) -> list[str]:
    parts = text.split("//")
    for part in parts[1:]:
        if not part or part.startswith("/") or part.endswith("/"):
            raise InvalidMarkingError(
                f"bad separator in {text!r}: categories are separated by exactly '//'"
            )
        if part != part.strip() or "  " in part:
            raise InvalidMarkingError(f"stray space in category {part!r}")
    return parts


def _parse_us(registry: Registry, text: str, *, portion: bool) -> SecurityLabel:
    parts = _segments(text)
    us = registry.schemes[US]
    if parts[0] == "":  # //JPN S: information of a foreign government
        if len(parts) < 2:
            raise InvalidMarkingError("'//' must be followed by a country code and a level")
        originator, level = _foreign_head(registry, parts[1], us, portion=portion)
        rest = parts[2:]
    else:
        originator, level = US, _us_level(us, parts[0], portion=portion)
        rest = parts[1:]
    compartments, fgi, rel_to = _categories_of(registry, rest, allow_fgi=True)
    if fgi is not None:
        if originator != US:
            raise InvalidMarkingError("an FGI category cannot follow a '//JPN S' classification")
        originator = fgi
    if rel_to and US not in rel_to:
        raise InvalidMarkingError("REL TO in a US marking must include USA")
    return SecurityLabel(
        originator=originator,
        policy=US,
        classification=level.id,
        releasable_to=rel_to,
        compartments=compartments,
    )


def _us_level(us: ClassificationScheme, name: str, *, portion: bool) -> Level:
    for level in us.levels:
        if name == (level.abbreviation if portion else level.native):
            return level
    known = [lv.abbreviation if portion else lv.native for lv in us.levels]
    where = "portion" if portion else "banner"
    raise InvalidMarkingError(
        f"unknown US classification {name!r} in a {where} marking (expected {', '.join(known)})"
    )


def _foreign_head(
    registry: Registry, text: str, us: ClassificationScheme, *, portion: bool
) -> tuple[str, Level]:
    code, _, name = text.partition(" ")
    if not name:
        raise InvalidMarkingError(
            f"foreign classification {text!r} must be a country code, a space and a level "
            "(e.g. '//JPN S')"
        )
    if code == _FGI:
        raise InvalidMarkingError(
            "FGI without a country code conceals the originator; a label needs one"
        )
    originator = _party(registry, code, "in the foreign classification")
    if originator == US:
        raise InvalidMarkingError("US information is marked without '//USA'")
    for level in us.levels:
        if name == level.abbreviation or (not portion and name == level.native):
            return originator, level
    known = ", ".join(lv.abbreviation for lv in us.levels)
    raise InvalidMarkingError(
        f"unknown US classification {name!r} after '//{code}' (expected {known})"
    )


def _categories_of(
    registry: Registry, parts: list[str], *, allow_fgi: bool
) -> tuple[frozenset[str], str | None, frozenset[str]]:
    """Compartments, FGI originator and REL TO, which must come in that order, each once."""
    compartments: frozenset[str] = frozenset()
    fgi: str | None = None
    rel_to: frozenset[str] = frozenset()
    order = ("compartments", _FGI, "REL TO")
    seen: list[str] = []
    for part in parts:
        if part.startswith(_REL_TO) or part == "REL TO":
            kind = "REL TO"
        elif part == _FGI or part.startswith(_FGI + " "):
            if not allow_fgi:
                raise InvalidMarkingError("an FGI category belongs to US markings only")
            kind = _FGI
        else:
            kind = "compartments"
        if kind in seen:
            raise InvalidMarkingError(f"the {kind} category appears twice")
        if seen and order.index(kind) < order.index(seen[-1]):
            raise InvalidMarkingError(
                f"category {part!r} is out of order: compartments, then FGI, then REL TO"
            )
        seen.append(kind)
        if kind == "REL TO":
            rel_to = _rel_to(registry, part)
        elif kind == _FGI:
            fgi = _fgi(registry, part)
        else:
            compartments = _compartments(part)
    return compartments, fgi, rel_to


def _rel_to(registry: Registry, part: str) -> frozenset[str]:
    body = part[len(_REL_TO) :]
    if not body:
        raise InvalidMarkingError("REL TO lists no country")
    codes = body.split(", ")
    for code in codes:
        if not code or code != code.strip() or "," in code or " " in code:
            raise InvalidMarkingError(f"bad separator in {part!r}: countries are separated by ', '")
    duplicates = sorted({c for c in codes if codes.count(c) > 1})
    if duplicates:
        raise InvalidMarkingError(f"REL TO lists {duplicates[0]} twice")
    return frozenset(_party(registry, c, "in REL TO") for c in codes)


def _fgi(registry: Registry, part: str) -> str:
    codes = part[len(_FGI) + 1 :].split(" ") if part != _FGI else []
    if not codes or any(not c for c in codes):
        raise InvalidMarkingError(
            "FGI without a country code conceals the originator; a label needs one"
        )
    if len(codes) > 1:
        raise InvalidMarkingError(
            f"FGI names {len(codes)} countries; a label has exactly one originator"
        )
    code = _party(registry, codes[0], "after FGI")
    if code == US:
        raise InvalidMarkingError("FGI cannot name USA: US information is not foreign")
    return code


def _compartments(part: str) -> frozenset[str]:
    names = part.split("/")
    for name in names:
        if name in _RESERVED or name.startswith(("REL ", "FGI ")):
            raise InvalidMarkingError(f"unsupported control marking {name!r}")
        if not _is_compartment(name):
            raise InvalidMarkingError(
                f"malformed compartment {name!r}: upper-case letters, digits and hyphens"
            )
    if len(set(names)) != len(names):
        raise InvalidMarkingError(f"a compartment appears twice in {part!r}")
    return frozenset(names)


def _party(registry: Registry, code: str, where: str) -> str:
    if code not in registry.parties:
        raise InvalidMarkingError(f"unknown country code {code!r} {where}")
    return code


def _parse_native(registry: Registry, text: str, holder: str | None) -> SecurityLabel:
    parts = _segments(text)
    head = parts[0]
    if head != head.strip():
        raise InvalidMarkingError(f"stray space in {head!r}")
    level_name, provider = _split_provider(registry, head)
    level = _native_level(registry, level_name, holder)
    if provider is None:
        owners = _parties_marking_with(registry, level.scheme)
        if len(owners) != 1:
            raise InvalidMarkingError(
                f"{level_name!r} names no provider, and the {level.scheme} scheme is not one "
                "party's: add the originating government"
            )
        provider = owners[0]
    compartments, _, rel_to = _categories_of(registry, parts[1:], allow_fgi=False)
    if level.scheme == US and rel_to and US not in rel_to:
        raise InvalidMarkingError("REL TO in a US marking must include USA")
    return SecurityLabel(
        originator=provider,
        policy=level.scheme,
        classification=level.id,
        releasable_to=rel_to,
        compartments=compartments,
    )


def _split_provider(registry: Registry, head: str) -> tuple[str, str | None]:
    """The level name and the providing party of a native marking's first category."""
    match = _EN_NOTE.fullmatch(head)
    if match is not None:
        who = match["who"].casefold()
        for party in registry.parties.values():
            if party.government.casefold() == who:
                return match["level"], party.code
        raise InvalidMarkingError(f"unknown providing government {match['who']!r}")
    match = _JA_NOTE.fullmatch(head)
    if match is not None:
        for party in registry.parties.values():
            if party.government_names.get("ja") == match["who"]:
                return match["level"], party.code
        raise InvalidMarkingError(f"unknown providing government {match['who']!r}提供")
    if any(ch in head for ch in "()（）"):
        raise InvalidMarkingError(
            f"malformed provider note in {head!r}: expected '(Provided by <government>)' "
            "or '（<政府名>提供）'"
        )
    return head, None


def _native_level(registry: Registry, name: str, holder: str | None) -> Level:
    if holder is not None:
        if holder not in registry.parties:
            raise InvalidMarkingError(f"unknown holder {holder!r}")
        scheme_id = registry.parties[holder].scheme
        if scheme_id is None or scheme_id not in registry.schemes:
            raise InvalidMarkingError(f"holder {holder} has no classification scheme")
        schemes = [registry.schemes[scheme_id]]
    else:
        schemes = list(registry.schemes.values())
    found = [lv for s in schemes if (lv := _by_native_name(s, name)) is not None]
    if not found:
        where = f"the {schemes[0].id} scheme" if holder is not None else "any scheme"
        raise InvalidMarkingError(f"unknown classification {name!r} in {where}")
    if len(found) > 1:
        keys = ", ".join(lv.key for lv in found)
        raise InvalidMarkingError(f"classification {name!r} is ambiguous ({keys}): give the holder")
    return found[0]


def _by_native_name(scheme: ClassificationScheme, name: str) -> Level | None:
    """A level by its id, native name, romanization or alias, never by its English equivalent.

    The English name is the vocabulary of US and NATO markings; accepting it here would read
    "SECRET" as a Korean level.
    """
    wanted = _fold(name)
    for level in scheme.levels:
        if any(
            _fold(n) == wanted for n in (level.id, level.native, level.romanized, *level.aliases)
        ):
            return level
    return None
