"""Parties to instruments and their classification schemes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from gsomia.core.errors import UnknownLevelError
from gsomia.core.provenance import Provenance

__all__ = ["ClassificationScheme", "Level", "Party", "PartyKind"]


def _fold(name: str) -> str:
    """Fold a level name for lookup: case, spaces, hyphens and dots do not matter."""
    return "".join(ch for ch in name.casefold() if ch not in " -_.·")


@dataclass(frozen=True, slots=True)
class Level:
    """One classification level of a national (or organisational) scheme.

    ``rank`` orders the levels of one scheme (higher is more sensitive); levels of different
    schemes are never compared by rank, only through an instrument's equivalence table.
    """

    scheme: str
    id: str
    rank: int
    native: str
    romanized: str
    english: str  # the English-language equivalent (TOP SECRET, SECRET, CONFIDENTIAL, ...)
    abbreviation: str  # portion-marking abbreviation (TS, S, C, ...)
    aliases: tuple[str, ...] = ()
    provenance: Provenance = field(default_factory=lambda: Provenance(""), compare=False)

    @property
    def key(self) -> str:
        """Registry-wide key, ``SCHEME:id`` (for example ``JPN:gokuhi``)."""
        return f"{self.scheme}:{self.id}"

    def names(self) -> tuple[str, ...]:
        return (self.id, self.native, self.romanized, self.english, *self.aliases)

    def __str__(self) -> str:
        return f"{self.native} ({self.romanized})" if self.native != self.romanized else self.native


@dataclass(frozen=True, slots=True)
class ClassificationScheme:
    id: str
    name: str
    levels: tuple[Level, ...]  # ordered from least to most sensitive
    provenance: Provenance = field(default_factory=lambda: Provenance(""), compare=False)
    language: str = "en"  # the language (BCP 47) its holders write markings in
    _by_name: Mapping[str, Level] = field(
        init=False, repr=False, compare=False, default_factory=lambda: MappingProxyType({})
    )

    def __post_init__(self) -> None:
        ranks = [lv.rank for lv in self.levels]
        if ranks != sorted(ranks):
            raise ValueError(f"scheme {self.id}: levels must be listed from lowest to highest rank")
        index: dict[str, Level] = {}
        for level in self.levels:
            if level.scheme != self.id:
                raise ValueError(f"scheme {self.id}: level {level.id} belongs to {level.scheme}")
            for name in (level.id, level.native, level.romanized, *level.aliases):
                index.setdefault(_fold(name), level)
        # An English equivalent shared by two levels (極秘 and 特定秘密 are both SECRET) names
        # neither of them: only an unambiguous English name resolves.
        englishes = [lv.english for lv in self.levels]
        for level in self.levels:
            if englishes.count(level.english) == 1:
                index.setdefault(_fold(level.english), level)
        object.__setattr__(self, "_by_name", MappingProxyType(index))

    def level(self, name: str) -> Level:
        """The level called ``name``: its id, native name, romanization, alias or English name."""
        found = self._by_name.get(_fold(name))
        if found is None:
            raise UnknownLevelError(
                name, [lv.id for lv in self.levels], where=f"the {self.id} scheme"
            )
        return found

    def find(self, name: str) -> Level | None:
        return self._by_name.get(_fold(name))

    @property
    def top(self) -> Level:
        return self.levels[-1]


class PartyKind(StrEnum):
    STATE = "state"
    ORGANIZATION = "organization"


@dataclass(frozen=True, slots=True)
class Party:
    """A government or international organisation that can be party to an instrument.

    ``code`` is an ISO 3166 alpha-3 trigraph for a state, or a tetragraph such as ``NATO``.
    """

    code: str
    name: str
    government: str  # how a holder names the originator in a marking: "the Government of Japan"
    kind: PartyKind
    scheme: str | None  # the classification scheme this party marks with, if known
    native_name: str = ""
    timezone: str = "UTC"  # where an instant without an offset is read for this party
    # The government's name in other languages, for markings written in them ({"ja": "..."}).
    government_names: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    provenance: Provenance = field(default_factory=lambda: Provenance(""), compare=False)
