"""Instruments (agreements, arrangements, links) as data: kinds of clauses, never a particular one.

An :class:`Instrument` is built from one registry file. Each clause carries the article it comes
from and its provenance, so every decision and every status can cite the law it applies. The
lifecycle engine that turns clauses and events into states is in :mod:`gsomia.core.lifecycle`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from types import MappingProxyType

from gsomia.core.provenance import Provenance
from gsomia.core.time import Period

__all__ = [
    "Clause",
    "EntryIntoForce",
    "Equivalence",
    "EquivalenceRow",
    "Event",
    "EventKind",
    "HubClause",
    "Instrument",
    "InstrumentKind",
    "Scope",
    "SurvivalClause",
    "TermClause",
    "TerminationClause",
    "TerminationMode",
    "ThirdPartyRule",
]


class InstrumentKind(StrEnum):
    AGREEMENT = "agreement"  # a legally binding treaty-level instrument (a GSOMIA)
    ARRANGEMENT = "arrangement"  # a non-binding ministry-level arrangement (TISA)
    LINK = "link"  # a data link such as the 2023 missile-warning mechanism


class TerminationMode(StrEnum):
    # A notice given a set period before the end of a term ends the instrument at that term's
    # end; a later notice ends it at the end of the next term (JPN-KOR GSOMIA Art. 21(3)).
    AT_TERM_END = "at-term-end"
    # The instrument ends a set period after a party's notice (zero: on the notice).
    AFTER_NOTICE = "after-notice"
    # The termination clause is not known: a notice's effect cannot be computed, and the
    # engine says so rather than guess.
    UNKNOWN = "unknown"


class EventKind(StrEnum):
    TERMINATION_NOTICE = "termination-notice"
    NOTICE_SUSPENSION = "notice-suspension"  # the notice's effect is suspended, not withdrawn
    NOTICE_RESUMPTION = "notice-resumption"  # a suspended notice takes effect again
    NOTICE_WITHDRAWAL = "notice-withdrawal"
    TERMINATION = "termination"  # ends the instrument at ``effective`` (mutual consent, ...)
    RECORD = "record"  # a dated fact with no legal effect (an announcement, a passed deadline)


@dataclass(frozen=True, slots=True)
class Clause:
    """What every clause has: the article it comes from and where that fact was found."""

    article: str
    provenance: Provenance


@dataclass(frozen=True, slots=True)
class EntryIntoForce:
    on: date | None  # None: not (or not known to be) in force
    clause: Clause
    precision: str = "day"  # "day", or "month" where only the month is published


@dataclass(frozen=True, slots=True)
class TermClause:
    initial: Period | None  # None: indefinite duration
    renewal: Period | None  # None: no automatic renewal; the instrument expires after a term
    clause: Clause


@dataclass(frozen=True, slots=True)
class TerminationClause:
    mode: TerminationMode
    notice: Period
    form: str  # "written notice through the diplomatic channel"
    clause: Clause


@dataclass(frozen=True, slots=True)
class EquivalenceRow:
    """One row of an equivalence table: the levels of each party that correspond."""

    levels: Mapping[str, tuple[str, ...]]  # party code -> level ids in that party's scheme
    english: str
    provenance: Provenance


@dataclass(frozen=True, slots=True)
class Equivalence:
    rows: tuple[EquivalenceRow, ...]
    excluded: tuple[str, ...]  # level keys ("JPN:kimitsu") outside the instrument altogether
    clause: Clause
    excluded_clause: Clause | None = None


@dataclass(frozen=True, slots=True)
class Scope:
    topics: tuple[str, ...] | None  # None: every topic of the registry vocabulary
    clause: Clause
    description: str = ""


@dataclass(frozen=True, slots=True)
class ThirdPartyRule:
    consent_required: bool
    form: str  # "prior written consent of the originating party"
    clause: Clause


@dataclass(frozen=True, slots=True)
class SurvivalClause:
    survives: bool  # protection of information already provided survives termination
    clause: Clause


@dataclass(frozen=True, slots=True)
class HubClause:
    """Information moves only through the hub party, which re-marks it and forwards it."""

    party: str
    remarks: bool  # the hub marks received information with its own equivalent level
    consent_to_forward: bool  # the hub forwards only with the originator's consent
    clause: Clause


@dataclass(frozen=True, slots=True)
class Event:
    """A dated act in an instrument's life: a notice, a suspension, a withdrawal, ..."""

    id: str
    kind: EventKind
    at: datetime  # timezone-aware; a date in a file means the first instant of that local day
    summary: str
    provenance: Provenance
    by: str | None = None  # the party that acted
    effective: datetime | None = None  # when a termination or resumption takes effect
    terminable_at_any_time: bool = False  # a suspension's condition: the party may end it any time
    disputed_by: tuple[str, ...] = ()  # parties that dispute the acting party's reading
    condition: str = ""
    hypothetical: bool = False  # added by a what-if, not part of the recorded history

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "at": self.at.isoformat(),
            "by": self.by,
            "summary": self.summary,
            "effective": self.effective.isoformat() if self.effective else None,
            "terminable_at_any_time": self.terminable_at_any_time,
            "disputed_by": list(self.disputed_by),
            "condition": self.condition,
            "hypothetical": self.hypothetical,
            "source": self.provenance.source,
            "evidence": self.provenance.evidence.value,
        }


@dataclass(frozen=True, slots=True)
class Instrument:
    id: str
    title: str
    kind: InstrumentKind
    binding: bool
    parties: tuple[str, ...]
    timezone: str
    entry_into_force: EntryIntoForce
    term: TermClause
    termination: TerminationClause
    provenance: Provenance
    titles: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    signed: date | None = None
    scope: Scope | None = None
    equivalence: Equivalence | None = None
    third_party: ThirdPartyRule | None = None
    survival: SurvivalClause | None = None
    hub: HubClause | None = None
    protected_under: tuple[str, ...] = ()  # instruments whose protection rules apply (TISA para 3)
    events: tuple[Event, ...] = ()
    summary: str = ""
    source_file: str = field(default="", compare=False)

    def event(self, event_id: str) -> Event | None:
        return next((e for e in self.events if e.id == event_id), None)

    def clauses(self) -> dict[str, Clause]:
        """Every clause by name, for citations and for listing unverified facts."""
        named: dict[str, Clause | None] = {
            "entry-into-force": self.entry_into_force.clause,
            "term": self.term.clause,
            "termination": self.termination.clause,
            "scope": self.scope.clause if self.scope else None,
            "equivalence": self.equivalence.clause if self.equivalence else None,
            "exclusions": self.equivalence.excluded_clause if self.equivalence else None,
            "third-party": self.third_party.clause if self.third_party else None,
            "survival": self.survival.clause if self.survival else None,
            "hub": self.hub.clause if self.hub else None,
        }
        return {name: clause for name, clause in named.items() if clause is not None}

    def to_dict(self) -> dict[str, object]:
        """The instrument as JSON-ready data, every clause with its article and source."""

        def clause(c: Clause | None, **fields: object) -> dict[str, object] | None:
            if c is None:
                return None
            prov = c.provenance
            return {
                **fields,
                "article": c.article,
                "source": prov.source,
                "evidence": prov.evidence.value,
                "note": prov.note,
            }

        eq = self.equivalence
        return {
            "id": self.id,
            "title": self.title,
            "titles": dict(self.titles),
            "kind": self.kind.value,
            "binding": self.binding,
            "parties": list(self.parties),
            "timezone": self.timezone,
            "signed": self.signed.isoformat() if self.signed else None,
            "summary": self.summary,
            "source": self.provenance.source,
            "entry_into_force": clause(
                self.entry_into_force.clause,
                on=self.entry_into_force.on.isoformat() if self.entry_into_force.on else None,
                precision=self.entry_into_force.precision,
            ),
            "term": clause(
                self.term.clause,
                initial=self.term.initial.iso() if self.term.initial else None,
                renewal=self.term.renewal.iso() if self.term.renewal else None,
            ),
            "termination": clause(
                self.termination.clause,
                mode=self.termination.mode.value,
                notice=self.termination.notice.iso(),
                form=self.termination.form,
            ),
            "scope": clause(
                self.scope.clause,
                topics=list(self.scope.topics) if self.scope.topics is not None else "all",
                description=self.scope.description,
            )
            if self.scope
            else None,
            "equivalence": clause(
                eq.clause,
                rows=[
                    {
                        "english": row.english,
                        "levels": {k: list(v) for k, v in row.levels.items()},
                        "source": row.provenance.source,
                        "evidence": row.provenance.evidence.value,
                    }
                    for row in eq.rows
                ],
                excluded=list(eq.excluded),
                excluded_citation=clause(eq.excluded_clause),
            )
            if eq
            else None,
            "third_party": clause(
                self.third_party.clause,
                consent_required=self.third_party.consent_required,
                form=self.third_party.form,
            )
            if self.third_party
            else None,
            "survival": clause(self.survival.clause, survives=self.survival.survives)
            if self.survival
            else None,
            "hub": clause(
                self.hub.clause,
                party=self.hub.party,
                remarks=self.hub.remarks,
                consent_to_forward=self.hub.consent_to_forward,
            )
            if self.hub
            else None,
            "protected_under": list(self.protected_under),
            "events": [e.to_dict() for e in self.events],
            "unverified": self.unverified(),
        }

    def unverified(self) -> list[str]:
        """Names of the clauses whose facts are not confirmed by a source."""
        return [name for name, c in self.clauses().items() if not c.provenance.verified]
