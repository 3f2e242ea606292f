"""Reading registry files (TOML) into an immutable :class:`~gsomia.core.registry.Registry`.

This is the file boundary: pydantic validates each file, and every error names the file and the
field. The shipped files are in ``gsomia/data``; each directory given with ``--registry`` adds to
them or overrides them by id, in order:

- ``parties.toml``: ``[[schemes]]`` (with ``[[schemes.levels]]``) and ``[[parties]]``
- ``topics.toml``: ``[[topics]]``
- ``instruments/*.toml`` or ``*.toml`` beside them: one instrument per file
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from datetime import date, datetime, tzinfo
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from gsomia.core import agreements as ag
from gsomia.core.errors import RegistryError
from gsomia.core.lifecycle import WhatIf
from gsomia.core.parties import ClassificationScheme, Level, Party, PartyKind
from gsomia.core.provenance import Evidence, Provenance
from gsomia.core.registry import Registry, Topic, canonical_hash
from gsomia.core.time import Period, fixed, parse_period, start_of_day, zone

__all__ = ["DATA_DIR", "load_events", "load_registry", "whatif_from"]

DATA_DIR = Path(__file__).parent / "data"
_M = TypeVar("_M", bound=BaseModel)


def _period(value: object) -> object:
    if isinstance(value, str):
        try:
            return parse_period(value)
        except ValueError as e:
            raise ValueError(str(e)) from e
    return value


PeriodField = Annotated[Period, BeforeValidator(_period)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class _Sourced(_Model):
    source: str = Field(min_length=1)
    evidence: Evidence = Evidence.SOURCE
    note: str = ""

    def provenance(self) -> Provenance:
        return Provenance(self.source, self.evidence, self.note)


class _ClauseModel(_Sourced):
    article: str = Field(min_length=1)

    def clause(self) -> ag.Clause:
        return ag.Clause(self.article, self.provenance())


class _LevelModel(_Sourced):
    id: str
    rank: int
    native: str
    romanized: str
    english: str
    abbreviation: str
    aliases: list[str] = []


class _SchemeModel(_Sourced):
    id: str
    name: str
    language: str = "en"
    levels: list[_LevelModel] = Field(min_length=1)


class _PartyModel(_Sourced):
    code: str = Field(pattern=r"^[A-Z]{3,4}$")
    name: str
    native_name: str = ""
    government: str
    kind: PartyKind
    scheme: str | None = None
    timezone: str = "UTC"
    government_names: dict[str, str] = {}


class _TopicModel(_Sourced):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str


class _PartiesFile(_Model):
    schemes: list[_SchemeModel] = []
    parties: list[_PartyModel] = []


class _TopicsFile(_Model):
    topics: list[_TopicModel] = []


class _EntryIntoForceModel(_ClauseModel):
    on: date | None = None
    precision: Literal["day", "month"] = "day"


class _TermModel(_ClauseModel):
    initial: PeriodField | None = None
    renewal: PeriodField | None = None


class _TerminationModel(_ClauseModel):
    mode: ag.TerminationMode
    notice: PeriodField
    form: str


class _ScopeModel(_ClauseModel):
    topics: list[str] | None = None
    all_topics: bool = False
    description: str = ""


class _RowModel(_Sourced):
    english: str
    levels: dict[str, list[str]] = Field(min_length=1)


class _EquivalenceModel(_ClauseModel):
    rows: list[_RowModel] = []
    excluded: list[str] = []
    excluded_article: str = ""
    excluded_source: str = ""


class _ThirdPartyModel(_ClauseModel):
    consent_required: bool
    form: str


class _SurvivalModel(_ClauseModel):
    survives: bool


class _HubModel(_ClauseModel):
    party: str
    remarks: bool = True
    consent_to_forward: bool = True


class _EventModel(_Sourced):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    kind: ag.EventKind
    at: datetime | date
    summary: str
    by: str | None = None
    effective: datetime | date | None = None
    terminable_at_any_time: bool = False
    disputed_by: list[str] = []
    condition: str = ""


class _InstrumentFile(_Sourced):
    id: str = Field(pattern=r"^[A-Z0-9][A-Z0-9-]*$")
    title: str
    titles: dict[str, str] = {}
    kind: ag.InstrumentKind
    binding: bool
    parties: list[str] = Field(min_length=2)
    timezone: str
    signed: date | None = None
    summary: str = ""
    protected_under: list[str] = []
    entry_into_force: _EntryIntoForceModel
    term: _TermModel
    termination: _TerminationModel
    scope: _ScopeModel | None = None
    equivalence: _EquivalenceModel | None = None
    third_party: _ThirdPartyModel | None = None
    survival: _SurvivalModel | None = None
    hub: _HubModel | None = None
    events: list[_EventModel] = []


class _EventsFile(_Model):
    events: list[_EventModel] = Field(min_length=1)


# -- reading ----------------------------------------------------------------------------------


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise RegistryError(f"{path}: cannot read: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise RegistryError(f"{path}: not valid TOML: {e}") from e


def _validate(model: type[_M], data: dict[str, Any], path: Path) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(file)"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise RegistryError(f"{path}: {where}: {first['msg']}{more}") from e


def _instant(value: datetime | date, tz: tzinfo) -> datetime:
    if isinstance(value, datetime):
        return fixed(value if value.tzinfo is not None else value.replace(tzinfo=tz))
    return start_of_day(value, tz)


def _event(model: _EventModel, tz: tzinfo, hypothetical: bool = False) -> ag.Event:
    return ag.Event(
        id=model.id,
        kind=model.kind,
        at=_instant(model.at, tz),
        summary=model.summary,
        provenance=model.provenance(),
        by=model.by,
        effective=_instant(model.effective, tz) if model.effective is not None else None,
        terminable_at_any_time=model.terminable_at_any_time,
        disputed_by=tuple(model.disputed_by),
        condition=model.condition,
        hypothetical=hypothetical,
    )


def _instrument(m: _InstrumentFile, path: Path) -> ag.Instrument:
    try:
        tz = zone(m.timezone)
    except RegistryError as e:
        raise RegistryError(f"{path}: timezone: {e}") from e
    if m.termination.mode is ag.TerminationMode.AT_TERM_END and m.term.initial is None:
        raise RegistryError(f"{path}: termination.mode: at-term-end needs term.initial")
    scope = None
    if m.scope is not None:
        if m.scope.all_topics == (m.scope.topics is not None):
            raise RegistryError(f"{path}: scope: give either topics or all_topics = true")
        scope = ag.Scope(
            topics=tuple(m.scope.topics) if m.scope.topics is not None else None,
            clause=m.scope.clause(),
            description=m.scope.description,
        )
    equivalence = None
    if m.equivalence is not None:
        eq = m.equivalence
        excluded_clause = None
        if eq.excluded:
            if not eq.excluded_article or not eq.excluded_source:
                raise RegistryError(
                    f"{path}: equivalence: excluded levels need excluded_article and "
                    "excluded_source"
                )
            excluded_clause = ag.Clause(eq.excluded_article, Provenance(eq.excluded_source))
        equivalence = ag.Equivalence(
            rows=tuple(
                ag.EquivalenceRow(
                    levels=MappingProxyType({k: tuple(v) for k, v in row.levels.items()}),
                    english=row.english,
                    provenance=row.provenance(),
                )
                for row in eq.rows
            ),
            excluded=tuple(eq.excluded),
            clause=eq.clause(),
            excluded_clause=excluded_clause,
        )
    return ag.Instrument(
        id=m.id,
        title=m.title,
        kind=m.kind,
        binding=m.binding,
        parties=tuple(m.parties),
        timezone=m.timezone,
        entry_into_force=ag.EntryIntoForce(
            m.entry_into_force.on, m.entry_into_force.clause(), m.entry_into_force.precision
        ),
        term=ag.TermClause(m.term.initial, m.term.renewal, m.term.clause()),
        termination=ag.TerminationClause(
            m.termination.mode, m.termination.notice, m.termination.form, m.termination.clause()
        ),
        provenance=m.provenance(),
        titles=MappingProxyType(dict(m.titles)),
        signed=m.signed,
        scope=scope,
        equivalence=equivalence,
        third_party=(
            ag.ThirdPartyRule(
                m.third_party.consent_required, m.third_party.form, m.third_party.clause()
            )
            if m.third_party
            else None
        ),
        survival=ag.SurvivalClause(m.survival.survives, m.survival.clause())
        if m.survival
        else None,
        hub=ag.HubClause(m.hub.party, m.hub.remarks, m.hub.consent_to_forward, m.hub.clause())
        if m.hub
        else None,
        protected_under=tuple(m.protected_under),
        events=tuple(_event(e, tz) for e in m.events),
        summary=m.summary,
        source_file=str(path),
    )


def _scheme(m: _SchemeModel, path: Path) -> ClassificationScheme:
    levels = tuple(
        Level(
            scheme=m.id,
            id=lv.id,
            rank=lv.rank,
            native=lv.native,
            romanized=lv.romanized,
            english=lv.english,
            abbreviation=lv.abbreviation,
            aliases=tuple(lv.aliases),
            provenance=lv.provenance(),
        )
        for lv in m.levels
    )
    try:
        return ClassificationScheme(m.id, m.name, levels, m.provenance(), m.language)
    except ValueError as e:
        raise RegistryError(f"{path}: schemes.{m.id}: {e}") from e


def _instrument_files(directory: Path) -> list[Path]:
    files = sorted(directory.glob("instruments/*.toml"))
    files += sorted(
        p for p in directory.glob("*.toml") if p.name not in ("parties.toml", "topics.toml")
    )
    return files


def load_registry(extra_dirs: Sequence[str | Path] = ()) -> Registry:
    """The shipped registry, with each of ``extra_dirs`` adding or overriding files by id."""
    schemes: dict[str, ClassificationScheme] = {}
    parties: dict[str, Party] = {}
    topics: dict[str, Topic] = {}
    instruments: dict[str, ag.Instrument] = {}
    records: dict[tuple[str, str], dict[str, Any]] = {}
    party_files: dict[str, Path] = {}
    for directory in (DATA_DIR, *(Path(d) for d in extra_dirs)):
        if not directory.is_dir():
            raise RegistryError(f"{directory}: registry directory not found")
        parties_path = directory / "parties.toml"
        if parties_path.exists():
            raw = _read_toml(parties_path)
            pf = _validate(_PartiesFile, raw, parties_path)
            for sm in pf.schemes:
                schemes[sm.id] = _scheme(sm, parties_path)
                records[("scheme", sm.id)] = sm.model_dump(mode="json")
            for pm in pf.parties:
                try:
                    zone(pm.timezone)
                except RegistryError as e:
                    raise RegistryError(f"{parties_path}: parties.{pm.code}.timezone: {e}") from e
                parties[pm.code] = Party(
                    code=pm.code,
                    name=pm.name,
                    government=pm.government,
                    kind=pm.kind,
                    scheme=pm.scheme,
                    native_name=pm.native_name,
                    timezone=pm.timezone,
                    government_names=MappingProxyType(dict(pm.government_names)),
                    provenance=pm.provenance(),
                )
                records[("party", pm.code)] = pm.model_dump(mode="json")
                party_files[pm.code] = parties_path
        topics_path = directory / "topics.toml"
        if topics_path.exists():
            tf = _validate(_TopicsFile, _read_toml(topics_path), topics_path)
            for tm in tf.topics:
                topics[tm.id] = Topic(tm.id, tm.name, tm.provenance())
                records[("topic", tm.id)] = tm.model_dump(mode="json")
        for path in _instrument_files(directory):
            im = _validate(_InstrumentFile, _read_toml(path), path)
            instruments[im.id] = _instrument(im, path)
            records[("instrument", im.id)] = im.model_dump(mode="json")
    for code, party in parties.items():
        if party.scheme is not None and party.scheme not in schemes:
            raise RegistryError(
                f"{party_files[code]}: parties.{code}.scheme: unknown scheme {party.scheme!r}"
            )
    content_hash = canonical_hash(
        {"kind": kind, "id": key, "record": record} for (kind, key), record in records.items()
    )
    return Registry.build(
        parties=parties.values(),
        schemes=schemes.values(),
        topics=topics.values(),
        instruments=instruments.values(),
        content_hash=content_hash,
    )


def load_events(path: str | Path, timezone: str) -> tuple[ag.Event, ...]:
    """Hypothetical events from an events file (``[[events]]`` tables) for a what-if."""
    file = Path(path)
    if not file.is_file():
        raise RegistryError(f"{file}: event file not found")
    ef = _validate(_EventsFile, _read_toml(file), file)
    tz = zone(timezone)
    return tuple(_event(e, tz, hypothetical=True) for e in ef.events)


def whatif_from(
    registry: Registry, instrument_id: str, without: Iterable[str], with_files: Iterable[str]
) -> WhatIf | None:
    """The what-if given on a command line, or None for the recorded history."""
    instrument = registry.instrument(instrument_id)
    added: list[ag.Event] = []
    for f in with_files:
        events = load_events(f, instrument.timezone)
        for i, event in enumerate(events):
            for field, code in [("by", event.by), *(("disputed_by", c) for c in event.disputed_by)]:
                if code is not None and code not in instrument.parties:
                    raise RegistryError(
                        f"{f}: events[{i}].{field}: {code!r} is not a party to {instrument.id}"
                    )
        added.extend(events)
    whatif = WhatIf(without=frozenset(without), added=tuple(added))
    return None if whatif.is_empty else whatif
