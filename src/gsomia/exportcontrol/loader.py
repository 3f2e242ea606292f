"""Reading the export-control data files (TOML, CSV) into immutable values.

This is the file boundary: pydantic validates each TOML file and every error names the file and
the field (:class:`~gsomia.core.errors.RegistryError`, as for the agreements registry); cross-file
references (an item's row, a measure's licences, a group's lists, every country code) are checked
here too, so the pure modules can trust what they are given. The shipped files are in
``gsomia/exportcontrol/data``:

- ``appended-table-1.toml``: ``[table]``, ``[defaults.bulk]``, ``[[rows]]``
- ``items.toml``: ``[[items]]``
- ``countries.toml``: ``[coverage]``, ``[naming]``, ``[[lists]]``, ``[[groups]]``,
  ``[[destinations]]``, ``[[aliases]]``, ``[[ambiguous]]``
- ``licences.toml``: ``[[licences]]``, ``[[chart]]``, ``[catch_all]``
- ``measures.toml``: ``[[measures]]``
- ``catch-all.toml``: ``[[rules]]``
- ``names.toml``: word tables for screening
- ``lists.toml`` and the CSV files it names: the shipped (sample) screening lists
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gsomia.core.errors import RegistryError
from gsomia.core.provenance import Evidence, Provenance
from gsomia.core.registry import canonical_hash
from gsomia.exportcontrol.countries import Countries, is_alpha3
from gsomia.exportcontrol.errors import MalformedScreeningFileError
from gsomia.exportcontrol.names import WordTables
from gsomia.exportcontrol.screening import ScreeningList, parse_list
from gsomia.exportcontrol.tables import (
    CatchAllRule,
    ChartRow,
    Concern,
    Control,
    CountryList,
    Destination,
    Group,
    Interval,
    Item,
    Licence,
    Measure,
    MeasureKind,
    Membership,
    Requirement,
    Row,
    Tables,
    item_index,
)

__all__ = [
    "DATA_DIR",
    "load_countries",
    "load_list",
    "load_sample_lists",
    "load_tables",
    "load_words",
]

DATA_DIR = Path(__file__).parent / "data"
_M = TypeVar("_M", bound=BaseModel)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Sourced(_Model):
    source: str = Field(min_length=1)
    evidence: Evidence = Evidence.SOURCE
    note: str = ""

    def provenance(self) -> Provenance:
        return Provenance(self.source, self.evidence, self.note)


class _Dated(_Sourced):
    from_: date | None = Field(None, alias="from")
    to: date | None = None

    def interval(self) -> Interval:
        return Interval(self.from_, self.to)


class _TableHead(_Sourced):
    id: str
    title: str
    citation: str


class _Bulk(_Sourced):
    licences: list[str]


class _Defaults(_Model):
    bulk: _Bulk


class _RowModel(_Sourced):
    id: str
    japanese: str
    english: str
    regime: str
    control: Control
    bulk: _Bulk | None = None


class _Table1File(_Model):
    table: _TableHead
    defaults: _Defaults
    rows: list[_RowModel] = Field(min_length=1)


class _ItemModel(_Sourced):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    japanese: str
    aliases: list[str] = []
    row: str
    entry: str
    description: str
    bulk: _Bulk | None = None


class _ItemsFile(_Model):
    items: list[_ItemModel] = Field(min_length=1)


class _Coverage(_Sourced):
    from_: date = Field(alias="from")


class _MembersModel(_Dated):
    countries: list[str] = Field(min_length=1)


class _ListModel(_Model):
    id: str
    name: str
    japanese: str
    citation: str
    members: list[_MembersModel] = []


class _GroupModel(_Sourced):
    id: str
    name: str
    japanese: str
    lists: list[str]
    default: bool = False


class _DestinationModel(_Sourced):
    id: str
    name: str
    lists: list[str]
    default: bool = False


class _AliasModel(_Model):
    country: str
    names: list[str] = Field(min_length=1)


class _AmbiguousModel(_Model):
    name: str
    countries: list[str] = Field(min_length=2)


class _CountriesFile(_Model):
    coverage: _Coverage
    naming: _Coverage
    lists: list[_ListModel] = Field(min_length=1)
    groups: list[_GroupModel] = Field(min_length=1)
    destinations: list[_DestinationModel] = Field(min_length=1)
    aliases: list[_AliasModel] = []
    ambiguous: list[_AmbiguousModel] = []


class _LicenceModel(_Sourced):
    id: str
    japanese: str
    english: str
    rank: int = Field(ge=1)
    conditions: list[str] = []


class _ChartModel(_Sourced):
    group: str
    licences: list[str]


class _LicencesFile(_Model):
    licences: list[_LicenceModel] = Field(min_length=1)
    chart: list[_ChartModel]
    catch_all: _Bulk


class _MeasureModel(_Dated):
    id: str
    kind: MeasureKind
    title: str
    countries: list[str] = Field(min_length=1)
    items: list[str] = []
    all_items: bool = False
    licences: list[str]
    conditions: list[str] = []
    citation: str


class _MeasuresFile(_Model):
    measures: list[_MeasureModel] = []


class _RuleModel(_Dated):
    id: str
    concern: Concern
    destinations: list[str] = Field(min_length=1)
    rows: list[str] = Field(min_length=1)
    requirements: list[Requirement] = Field(min_length=1)
    citation: str


class _RulesFile(_Model):
    rules: list[_RuleModel] = Field(min_length=1)


class _NamesFile(_Sourced):
    legal_forms: list[str]
    native_legal_forms: list[str]
    generic_words: list[str]
    place_words: list[str] = []
    stop_words: list[str]
    native_words: dict[str, str]
    abbreviations: dict[str, str] = {}


class _ListRef(_Sourced):
    id: str
    file: str
    format: str
    title: str
    sample: bool = False
    revision: str = ""


class _ListsFile(_Model):
    lists: list[_ListRef] = []


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise RegistryError(f"{path}: cannot read: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise RegistryError(f"{path}: not valid TOML: {e}") from e


def _validate(model: type[_M], path: Path) -> tuple[_M, dict[str, Any]]:
    data = _read(path)
    try:
        return model.model_validate(data), data
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(file)"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise RegistryError(f"{path}: {where}: {first['msg']}{more}") from e


def _interval(m: _Dated, path: Path, where: str) -> Interval:
    try:
        return m.interval()
    except ValueError as e:
        raise RegistryError(f"{path}: {where}: {e}") from e


def _check(ok: bool, path: Path, where: str, message: str) -> None:
    if not ok:
        raise RegistryError(f"{path}: {where}: {message}")


def load_tables(data_dir: Path = DATA_DIR) -> Tables:
    """Every table, validated and cross-checked, with the content hash of the files."""
    records: list[dict[str, Any]] = []

    def read(model: type[_M], name: str) -> tuple[_M, Path]:
        path = data_dir / name
        parsed, raw = _validate(model, path)
        records.append({"file": name, "content": raw})
        return parsed, path

    t1, t1_path = read(_Table1File, "appended-table-1.toml")
    items_file, items_path = read(_ItemsFile, "items.toml")
    cf, c_path = read(_CountriesFile, "countries.toml")
    lf, l_path = read(_LicencesFile, "licences.toml")
    mf, m_path = read(_MeasuresFile, "measures.toml")
    rf, r_path = read(_RulesFile, "catch-all.toml")

    licences = {
        m.id: Licence(m.id, m.japanese, m.english, m.rank, tuple(m.conditions), m.provenance())
        for m in lf.licences
    }
    _check("individual" in licences, l_path, "licences", "the individual licence is required")

    def known_licences(ids: Sequence[str], path: Path, where: str) -> frozenset[str]:
        for lic in ids:
            _check(lic in licences, path, where, f"unknown licence {lic!r}")
        return frozenset(ids)

    default_bulk = known_licences(t1.defaults.bulk.licences, t1_path, "defaults.bulk")
    rows: dict[str, Row] = {}
    for rm in t1.rows:
        _check(rm.id not in rows, t1_path, f"rows.{rm.id}", "duplicate row")
        bulk = rm.bulk or t1.defaults.bulk
        rows[rm.id] = Row(
            id=rm.id,
            japanese=rm.japanese,
            english=rm.english,
            regime=rm.regime,
            control=rm.control,
            bulk=known_licences(bulk.licences, t1_path, f"rows.{rm.id}.bulk")
            if rm.bulk
            else (default_bulk if rm.control is Control.LIST else frozenset()),
            bulk_provenance=bulk.provenance(),
            provenance=rm.provenance(),
        )

    items: dict[str, Item] = {}
    for im in items_file.items:
        where = f"items.{im.id}"
        _check(im.id not in items, items_path, where, "duplicate item")
        _check(im.row in rows, items_path, f"{where}.row", f"unknown row {im.row!r}")
        items[im.id] = Item(
            id=im.id,
            name=im.name,
            japanese=im.japanese,
            aliases=tuple(im.aliases),
            row=im.row,
            entry=im.entry,
            description=im.description,
            provenance=im.provenance(),
            bulk=known_licences(im.bulk.licences, items_path, f"{where}.bulk") if im.bulk else None,
            bulk_provenance=im.bulk.provenance() if im.bulk else None,
        )

    def country(code: str, path: Path, where: str) -> str:
        _check(is_alpha3(code), path, where, f"{code!r} is not an ISO 3166 alpha-3 code")
        return code

    lists: dict[str, CountryList] = {}
    for lm in cf.lists:
        members = []
        for n, mm in enumerate(lm.members):
            where = f"lists.{lm.id}.members[{n}]"
            members.append(
                Membership(
                    frozenset(country(c, c_path, where) for c in mm.countries),
                    _interval(mm, c_path, where),
                    mm.provenance(),
                )
            )
        lists[lm.id] = CountryList(lm.id, lm.name, lm.japanese, lm.citation, tuple(members))
    for owner, list_ids in [(g.id, g.lists) for g in cf.groups] + [
        (d.id, d.lists) for d in cf.destinations
    ]:
        for list_id in list_ids:
            _check(list_id in lists, c_path, owner, f"unknown list {list_id!r}")
    _check(sum(g.default for g in cf.groups) == 1, c_path, "groups", "need exactly one default")
    _check(sum(d.default for d in cf.destinations) == 1, c_path, "destinations", "need one default")
    groups = tuple(
        Group(g.id, g.name, g.japanese, tuple(g.lists), g.default, g.provenance())
        for g in cf.groups
    )
    destinations = tuple(
        Destination(d.id, d.name, tuple(d.lists), d.default, d.provenance())
        for d in cf.destinations
    )
    chart: dict[str, ChartRow] = {}
    for cm in lf.chart:
        chart[cm.group] = ChartRow(
            cm.group, known_licences(cm.licences, l_path, f"chart.{cm.group}"), cm.provenance()
        )
    for g in groups:
        _check(g.id in chart, l_path, "chart", f"no row for group {g.id}")

    measures = []
    for mm2 in mf.measures:
        where = f"measures.{mm2.id}"
        _check(mm2.all_items != bool(mm2.items), m_path, where, "give items or all_items = true")
        for item_id in mm2.items:
            _check(item_id in items, m_path, f"{where}.items", f"unknown item {item_id!r}")
        measures.append(
            Measure(
                id=mm2.id,
                kind=mm2.kind,
                title=mm2.title,
                countries=frozenset(country(c, m_path, where) for c in mm2.countries),
                items=None if mm2.all_items else frozenset(mm2.items),
                licences=known_licences(mm2.licences, m_path, f"{where}.licences"),
                interval=_interval(mm2, m_path, where),
                citation=mm2.citation,
                conditions=tuple(mm2.conditions),
                provenance=mm2.provenance(),
            )
        )

    dest_ids = {d.id for d in destinations}
    rules = []
    for rm2 in rf.rules:
        where = f"rules.{rm2.id}"
        for d in rm2.destinations:
            _check(d in dest_ids, r_path, where, f"unknown destination {d!r}")
        for row_id in rm2.rows:
            _check(
                row_id in rows and rows[row_id].control is Control.CATCH_ALL,
                r_path,
                where,
                f"{row_id!r} is not a catch-all row",
            )
        rules.append(
            CatchAllRule(
                id=rm2.id,
                concern=rm2.concern,
                destinations=frozenset(rm2.destinations),
                rows=frozenset(rm2.rows),
                requirements=frozenset(rm2.requirements),
                interval=_interval(rm2, r_path, where),
                citation=rm2.citation,
                provenance=rm2.provenance(),
            )
        )

    return Tables(
        title=t1.table.title,
        citation=t1.table.citation,
        provenance=t1.table.provenance(),
        rows=MappingProxyType(rows),
        items=MappingProxyType(items),
        licences=MappingProxyType(licences),
        lists=MappingProxyType(lists),
        groups=groups,
        destinations=destinations,
        chart=MappingProxyType(chart),
        catch_all_licences=known_licences(lf.catch_all.licences, l_path, "catch_all"),
        catch_all_provenance=lf.catch_all.provenance(),
        measures=tuple(measures),
        rules=tuple(rules),
        coverage_start=cf.coverage.from_,
        coverage_provenance=cf.coverage.provenance(),
        naming_from=cf.naming.from_,
        content_hash=canonical_hash(records),
        _item_index=MappingProxyType(item_index(items)),
    )


def load_countries(data_dir: Path = DATA_DIR) -> Countries:
    path = data_dir / "countries.toml"
    cf, _ = _validate(_CountriesFile, path)
    aliases: dict[str, list[str]] = {}
    for n, a in enumerate(cf.aliases):
        _check(is_alpha3(a.country), path, f"aliases[{n}]", f"unknown code {a.country!r}")
        aliases.setdefault(a.country, []).extend(a.names)
    ambiguous = {a.name: a.countries for a in cf.ambiguous}
    return Countries(aliases, ambiguous)


def load_words(data_dir: Path = DATA_DIR) -> WordTables:
    nf, _ = _validate(_NamesFile, data_dir / "names.toml")
    return WordTables(
        legal_forms=frozenset(w.casefold() for w in nf.legal_forms),
        native_legal_forms=tuple(nf.native_legal_forms),
        generic_words=frozenset(w.casefold() for w in nf.generic_words),
        place_words=frozenset(w.casefold() for w in nf.place_words),
        stop_words=frozenset(w.casefold() for w in nf.stop_words),
        native_words=MappingProxyType(dict(nf.native_words)),
        abbreviations=MappingProxyType({k.casefold(): v for k, v in nf.abbreviations.items()}),
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as e:
        raise MalformedScreeningFileError(f"{path}: no such file") from e
    except UnicodeDecodeError as e:
        raise MalformedScreeningFileError(f"{path}: not UTF-8 text ({e.reason})") from e
    except OSError as e:
        raise MalformedScreeningFileError(f"{path}: cannot read: {e.strerror or e}") from e


def load_list(path: str | Path, list_id: str | None = None) -> ScreeningList:
    """A screening list a user gives (``--list FILE``): METI's columns or the US CSL's."""
    file = Path(path)
    return parse_list(
        _read_text(file),
        list_id or file.stem,
        str(file),
        Provenance(f"user-supplied list {file.name}"),
        title=f"{file.name}",
    )


def load_sample_lists(data_dir: Path = DATA_DIR) -> tuple[ScreeningList, ...]:
    """The lists shipped with gsomia (a sample End User List), as ``lists.toml`` names them."""
    path = data_dir / "lists.toml"
    lf, _ = _validate(_ListsFile, path)
    out = []
    for ref in lf.lists:
        lst = parse_list(
            _read_text(data_dir / ref.file),
            ref.id,
            ref.file,
            ref.provenance(),
            title=ref.title,
            sample=ref.sample,
            revision=ref.revision,
        )
        _check(lst.format.value == ref.format, path, f"lists.{ref.id}", "format does not match")
        out.append(lst)
    return tuple(out)
