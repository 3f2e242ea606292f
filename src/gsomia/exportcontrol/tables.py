"""Japan's export-control tables as values: rows, items, country lists and groups, licences,
measures and catch-all rules, each fact with its provenance and every membership effective-dated.

Pure: no I/O, no clock. :mod:`gsomia.exportcontrol.loader` builds :class:`Tables` from the TOML
files in ``gsomia/exportcontrol/data``; :mod:`gsomia.exportcontrol.determination` reads them.

Intervals are half-open ``[start, end)`` over Japanese calendar days: ``start`` is the first day a
fact holds, ``end`` the first day it no longer does; ``None`` leaves a side open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum

from gsomia.core.provenance import Evidence, Provenance
from gsomia.exportcontrol.errors import ExportDateOutOfRangeError, UnknownExportItemError

__all__ = [
    "CatchAllRule",
    "ChartRow",
    "Concern",
    "Control",
    "CountryList",
    "Destination",
    "Group",
    "GroupAssignment",
    "Interval",
    "Item",
    "Licence",
    "Measure",
    "MeasureKind",
    "Membership",
    "Requirement",
    "Row",
    "Tables",
    "weakest",
]


class Control(StrEnum):
    LIST = "list"  # rows 1-15: a licence for every destination
    CATCH_ALL = "catch-all"  # row 16: a licence when a catch-all requirement is met
    NONE = "none"  # outside Appended Table 1


class Concern(StrEnum):
    WMD = "wmd"
    CONVENTIONAL = "conventional"
    ANY = "any"  # a rule that holds whatever the concern (Group A's inform rule from 2025)


class Requirement(StrEnum):
    END_USE = "end-use"
    END_USER = "end-user"
    INFORM = "inform"


class MeasureKind(StrEnum):
    RESTRICT = "restrict"  # only the measure's licences stay open
    RELAX = "relax"  # the measure's licences are opened again within a restriction
    EMBARGO = "embargo"  # no licence is open


_EVIDENCE_ORDER = (Evidence.SOURCE, Evidence.SUMMARY, Evidence.DESIGN_NOTE, Evidence.UNVERIFIED)


def weakest(*provenances: Provenance) -> Evidence:
    """The weakest evidence grade among facts that a conclusion rests on."""
    grades = [p.evidence for p in provenances] or [Evidence.SOURCE]
    return max(grades, key=_EVIDENCE_ORDER.index)


@dataclass(frozen=True, slots=True)
class Interval:
    start: date | None = None
    end: date | None = None  # exclusive

    def __post_init__(self) -> None:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"interval ends ({self.end}) on or before it starts ({self.start})")

    def contains(self, day: date) -> bool:
        return (self.start is None or self.start <= day) and (self.end is None or day < self.end)

    def describe(self) -> str:
        """Human form with the last day included: "2019-07-04 to 2023-03-22"."""
        if self.end is None:
            return f"from {self.start.isoformat()}" if self.start else "no recorded start or end"
        last = (self.end - timedelta(days=1)).isoformat()
        return f"{self.start.isoformat()} to {last}" if self.start else f"until {last}"

    def to_dict(self) -> dict[str, str | None]:
        return {
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
        }


@dataclass(frozen=True, slots=True)
class Row:
    """A row of Appended Table 1."""

    id: str
    japanese: str
    english: str
    regime: str
    control: Control
    bulk: frozenset[str]  # bulk licences an item of this row may use, before group and measures
    bulk_provenance: Provenance
    provenance: Provenance

    def label(self) -> str:
        return f"row {self.id} ({self.english}, {self.japanese})"


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    name: str
    japanese: str
    aliases: tuple[str, ...]
    row: str
    entry: str
    description: str
    provenance: Provenance
    bulk: frozenset[str] | None = None  # overrides the row's bulk scope when given
    bulk_provenance: Provenance | None = None

    def names(self) -> tuple[str, ...]:
        return (self.id, self.name, self.japanese, *self.aliases)


@dataclass(frozen=True, slots=True)
class Licence:
    id: str
    japanese: str
    english: str
    rank: int  # 1 is the least burdensome
    conditions: tuple[str, ...]
    provenance: Provenance


@dataclass(frozen=True, slots=True)
class Membership:
    countries: frozenset[str]
    interval: Interval
    provenance: Provenance


@dataclass(frozen=True, slots=True)
class CountryList:
    id: str
    name: str
    japanese: str
    citation: str
    members: tuple[Membership, ...]

    def membership(self, country: str, day: date) -> Membership | None:
        for m in self.members:
            if country in m.countries and m.interval.contains(day):
                return m
        return None

    def countries_on(self, day: date) -> frozenset[str]:
        return frozenset(c for m in self.members if m.interval.contains(day) for c in m.countries)


@dataclass(frozen=True, slots=True)
class Group:
    """A METI country group: the first group (in file order) whose lists hold the country."""

    id: str
    name: str
    japanese: str
    lists: tuple[str, ...]
    default: bool
    provenance: Provenance


@dataclass(frozen=True, slots=True)
class Destination:
    """A destination category as the catch-all rules see it (Group A, UN arms-embargoed, other)."""

    id: str
    name: str
    lists: tuple[str, ...]
    default: bool
    provenance: Provenance


@dataclass(frozen=True, slots=True)
class ChartRow:
    """The bulk licences open to list-controlled goods going to a group's countries."""

    group: str
    licences: frozenset[str]
    provenance: Provenance


@dataclass(frozen=True, slots=True)
class Measure:
    id: str
    kind: MeasureKind
    title: str
    countries: frozenset[str]
    items: frozenset[str] | None  # None: every item
    licences: frozenset[str]
    interval: Interval
    citation: str
    conditions: tuple[str, ...]
    provenance: Provenance

    def applies(self, item: str, country: str, day: date) -> bool:
        return (
            country in self.countries
            and (self.items is None or item in self.items)
            and self.interval.contains(day)
        )


@dataclass(frozen=True, slots=True)
class CatchAllRule:
    id: str
    concern: Concern
    destinations: frozenset[str]
    rows: frozenset[str]
    requirements: frozenset[Requirement]
    interval: Interval
    citation: str
    provenance: Provenance

    def applies(self, row: str, destination: str, day: date) -> bool:
        return row in self.rows and destination in self.destinations and self.interval.contains(day)


@dataclass(frozen=True, slots=True)
class GroupAssignment:
    """A country's group on a day, and the list membership that put it there."""

    country: str
    day: date
    group: Group
    list: CountryList | None
    membership: Membership | None
    named: bool  # False before METI named groups B-D (2 Aug 2019)

    @property
    def provenance(self) -> Provenance:
        return self.membership.provenance if self.membership else self.group.provenance

    def detail(self) -> str:
        if self.list is not None and self.membership is not None:
            why = f"in {self.list.name} ({self.membership.interval.describe()})"
        else:
            why = "in none of the lists of groups A, B and D"
        text = f"{self.country} is in Group {self.group.id} on {self.day.isoformat()}: {why}"
        if not self.named:
            text += (
                "; METI named groups A-D on 2 Aug 2019, so before that the group is that "
                "of 2 Aug 2019 (Group A = 'white countries', Appended Table 3)"
            )
        return text

    def to_dict(self) -> dict[str, object]:
        prov = self.provenance
        return {
            "id": self.group.id,
            "name": self.group.name,
            "japanese": self.group.japanese,
            "country": self.country,
            "on": self.day.isoformat(),
            "list": self.list.id if self.list else None,
            "interval": self.membership.interval.to_dict() if self.membership else None,
            "named": self.named,
            "detail": self.detail(),
            "source": prov.source,
            "evidence": prov.evidence.value,
            "note": prov.note,
            "unverified": not prov.verified,
        }


@dataclass(frozen=True, slots=True)
class Tables:
    """Every export-control table, immutable, with the content hash of the files it came from."""

    title: str
    citation: str
    provenance: Provenance
    rows: Mapping[str, Row]
    items: Mapping[str, Item]
    licences: Mapping[str, Licence]
    lists: Mapping[str, CountryList]
    groups: tuple[Group, ...]
    destinations: tuple[Destination, ...]
    chart: Mapping[str, ChartRow]
    catch_all_licences: frozenset[str]
    catch_all_provenance: Provenance
    measures: tuple[Measure, ...]
    rules: tuple[CatchAllRule, ...]
    coverage_start: date
    coverage_provenance: Provenance
    naming_from: date
    content_hash: str
    _item_index: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def check_day(self, day: date) -> None:
        if day < self.coverage_start:
            raise ExportDateOutOfRangeError(
                f"{day.isoformat()} is before the export tables' coverage, which starts "
                f"{self.coverage_start.isoformat()}"
            )

    def item(self, key: str) -> Item:
        """An item by id, name, Japanese name or alias (case and spacing ignored)."""
        item_id = self._item_index.get(_fold(key))
        if item_id is None:
            raise UnknownExportItemError(key, self.items.keys(), "the item catalogue")
        return self.items[item_id]

    def group_on(self, country: str, day: date) -> GroupAssignment:
        default: Group | None = None
        for group in self.groups:
            if group.default:
                default = group
                continue
            for list_id in group.lists:
                lst = self.lists[list_id]
                m = lst.membership(country, day)
                if m is not None:
                    return GroupAssignment(country, day, group, lst, m, day >= self.naming_from)
        if default is None:  # the loader insists on a default group; keep mypy and readers sure
            raise ValueError("no default group")
        return GroupAssignment(country, day, default, None, None, day >= self.naming_from)

    def destination_on(self, country: str, day: date) -> tuple[Destination, Membership | None]:
        default: Destination | None = None
        for dest in self.destinations:
            if dest.default:
                default = dest
                continue
            for list_id in dest.lists:
                m = self.lists[list_id].membership(country, day)
                if m is not None:
                    return dest, m
        if default is None:
            raise ValueError("no default destination")
        return default, None

    def licences_by_rank(self, ids: frozenset[str]) -> tuple[Licence, ...]:
        return tuple(sorted((self.licences[i] for i in ids), key=lambda lic: lic.rank))


def _fold(text: str) -> str:
    return " ".join(text.casefold().replace("-", " ").replace("_", " ").split())


def item_index(items: Mapping[str, Item]) -> dict[str, str]:
    """Every name of every item, folded, to the item's id; ids win over names on a clash."""
    index: dict[str, str] = {}
    for item in items.values():
        for name in item.names()[1:]:
            index.setdefault(_fold(name), item.id)
    for item in items.values():
        index[_fold(item.id)] = item.id
    return index
