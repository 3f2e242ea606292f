"""Licence determination for an export from Japan: pure, table-driven, explained.

``determine(tables, request)`` depends on nothing but its arguments. It follows the shape of the
US EAR's determination (15 CFR 738.4), with Japan's tables in place of the EAR's:

==============  =================================================================================
step            what it reads and decides
==============  =================================================================================
classification  the item's row of Appended Table 1: list control (1-15), catch-all (16), none
country-group   the destination's group on the day (A-D), from the effective-dated lists
embargo         a measure that closes every licence (North Korea) ends the determination
end-user        what screening found: a listed end user, a possible match (treated as listed,
                failing closed, until a person clears it), or none
list-control    rows 1-15: a licence for every destination, Group A included; then the chart
                (bulk licences open to the group), the item's bulk scope, item measures
                (restrict, then relax) and the catch-all conditions that rule out bulk licences
catch-all       row 16: each rule in force for the row and destination category; a licence when
                any requirement of any rule is met (end use, End User List, METI inform)
licence         the eligible licence types, least burdensome first
==============  =================================================================================

Every step adds a :class:`Reason` with its outcome, citation and provenance; a conclusion that rests
on an unverified fact says so in its reason and in :attr:`Determination.unverified`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from gsomia.core.provenance import Evidence, Provenance
from gsomia.exportcontrol.tables import (
    CatchAllRule,
    Concern,
    Control,
    Destination,
    GroupAssignment,
    Item,
    Licence,
    MeasureKind,
    Requirement,
    Row,
    Tables,
    weakest,
)

__all__ = [
    "Determination",
    "EligibleLicence",
    "EndUse",
    "EndUserFinding",
    "ExportRequest",
    "Outcome",
    "Reason",
    "determine",
]

INDIVIDUAL = "individual"
SCREENING = Provenance("screening of the end-user name")


class EndUse(StrEnum):
    CIVIL = "civil"
    WMD = "wmd"
    CONVENTIONAL = "conventional"


class Outcome(StrEnum):
    APPLIES = "applies"
    NOT_APPLICABLE = "not-applicable"
    MET = "met"
    NOT_MET = "not-met"
    LICENCE_REQUIRED = "licence-required"
    NO_LICENCE_REQUIRED = "no-licence-required"
    PROHIBITED = "prohibited"


@dataclass(frozen=True, slots=True)
class EndUserFinding:
    """What screening found about the end user, as much as determination needs."""

    name: str
    listed: bool  # a match, or a possible match awaiting review (fail closed)
    review: bool  # a possible match only
    concerns: frozenset[Concern]  # wmd and/or conventional, from the entry's type of concern
    entry: str = ""  # "SAMPLE End User List No. 14: Shahid Hemmat Industrial Group (score 96.2)"
    provenance: Provenance = SCREENING
    red_flags: tuple[str, ...] = ()  # hits on other lists (US CSL): not the End User List


@dataclass(frozen=True, slots=True)
class ExportRequest:
    item: str  # an item id, name or alias of the catalogue
    destination: str  # ISO 3166 alpha-3
    on: date  # a day in Japan
    end_use: EndUse | None = None  # None: not declared
    informed: bool = False  # METI has informed the exporter that a licence is required
    end_user: EndUserFinding | None = None


@dataclass(frozen=True, slots=True)
class Reason:
    step: str
    rule: str
    outcome: Outcome
    detail: str
    citation: str
    provenance: Provenance
    effective: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "rule": self.rule,
            "outcome": self.outcome.value,
            "detail": self.detail,
            "citation": self.citation,
            "effective": self.effective or None,
            "source": self.provenance.source,
            "evidence": self.provenance.evidence.value,
            "note": self.provenance.note,
            "unverified": not self.provenance.verified,
        }


@dataclass(frozen=True, slots=True)
class EligibleLicence:
    licence: Licence
    conditions: tuple[str, ...]
    basis: tuple[Provenance, ...]  # every fact that opens this licence

    @property
    def evidence(self) -> Evidence:
        return weakest(*self.basis)

    def to_dict(self) -> dict[str, Any]:
        evidence = self.evidence
        return {
            "type": self.licence.id,
            "english": self.licence.english,
            "japanese": self.licence.japanese,
            "rank": self.licence.rank,
            "conditions": list(self.conditions),
            "evidence": evidence.value,
            "unverified": evidence not in (Evidence.SOURCE, Evidence.SUMMARY),
            "sources": sorted({p.source for p in self.basis}),
        }


@dataclass(frozen=True, slots=True)
class Determination:
    request: ExportRequest
    item: Item
    row: Row
    group: GroupAssignment
    destination: Destination
    license_required: bool
    prohibited: bool
    eligible: tuple[EligibleLicence, ...]  # least burdensome first
    reasons: tuple[Reason, ...]
    needs_review: bool
    tables_hash: str

    @property
    def license(self) -> EligibleLicence | None:
        """The least burdensome licence that suffices, when one is needed and open."""
        return self.eligible[0] if self.license_required and self.eligible else None

    @property
    def unverified(self) -> tuple[str, ...]:
        """One line per reason that rests on a fact not confirmed by a source."""
        return tuple(
            f"{r.step}: {r.rule} [{r.provenance.evidence.value}]"
            for r in self.reasons
            if not r.provenance.verified
        )

    def to_dict(self) -> dict[str, Any]:
        lic = self.license
        return {
            "item": {
                "id": self.item.id,
                "name": self.item.name,
                "japanese": self.item.japanese,
                "row": self.row.id,
                "row_name": self.row.english,
                "control": self.row.control.value,
                "entry": self.item.entry,
            },
            "destination": self.request.destination,
            "on": self.request.on.isoformat(),
            "end_use": self.request.end_use.value if self.request.end_use else None,
            "informed": self.request.informed,
            "group": self.group.group.id,
            "group_detail": self.group.to_dict(),
            "catch_all_destination": self.destination.id,
            "license_required": self.license_required,
            "prohibited": self.prohibited,
            "license": lic.licence.id if lic else None,
            "eligible_licenses": [e.to_dict() for e in self.eligible],
            "needs_review": self.needs_review,
            "reasons": [r.to_dict() for r in self.reasons],
            "unverified": list(self.unverified),
            "tables_hash": self.tables_hash,
        }


def determine(tables: Tables, request: ExportRequest) -> Determination:
    """Whether the export needs a licence, which licences are open, and why, step by step."""
    day = request.on
    tables.check_day(day)
    item = tables.item(request.item)
    row = tables.rows[item.row]
    reasons: list[Reason] = [_classification(tables, item, row)]
    group = tables.group_on(request.destination, day)
    reasons.append(
        Reason(
            "country-group",
            f"group-{group.group.id}",
            Outcome.APPLIES,
            group.detail(),
            group.list.citation if group.list else "METI country groups (circulars)",
            group.provenance,
        )
    )
    destination, _ = tables.destination_on(request.destination, day)

    def done(
        required: bool, prohibited: bool, eligible: tuple[EligibleLicence, ...]
    ) -> Determination:
        reasons.append(_summary(required, prohibited, eligible))
        return Determination(
            request=request,
            item=item,
            row=row,
            group=group,
            destination=destination,
            license_required=required,
            prohibited=prohibited,
            eligible=eligible if required else (),
            reasons=tuple(reasons),
            needs_review=request.end_user is not None and request.end_user.review,
            tables_hash=tables.content_hash,
        )

    for m in tables.measures:
        if m.kind is MeasureKind.EMBARGO and m.applies(item.id, request.destination, day):
            reasons.append(
                Reason(
                    "embargo",
                    m.id,
                    Outcome.PROHIBITED,
                    f"{m.title}: no licence is open",
                    m.citation,
                    m.provenance,
                    m.interval.describe(),
                )
            )
            return done(True, True, ())

    if request.end_user is not None:
        reasons.append(_end_user_reason(request.end_user))

    if row.control is Control.LIST:
        return done(True, False, _list_control(tables, request, item, row, group, reasons))
    if row.control is Control.CATCH_ALL:
        if not _catch_all(tables, request, row, destination, reasons):
            return done(False, False, ())
        eligible = tuple(
            EligibleLicence(lic, lic.conditions, (lic.provenance, tables.catch_all_provenance))
            for lic in tables.licences_by_rank(tables.catch_all_licences)
        )
        return done(True, False, eligible)
    reasons.append(
        Reason(
            "classification",
            "outside-row-16",
            Outcome.NO_LICENCE_REQUIRED,
            f"{item.name} is outside Appended Table 1: no licence under FEFTA Art. 48(1)",
            tables.citation,
            row.provenance,
        )
    )
    return done(False, False, ())


def _classification(tables: Tables, item: Item, row: Row) -> Reason:
    kind = {
        Control.LIST: "list-controlled",
        Control.CATCH_ALL: "not listed; subject to the catch-all",
        Control.NONE: "outside Appended Table 1",
    }[row.control]
    return Reason(
        "classification",
        f"row-{row.id}",
        Outcome.APPLIES,
        f"{item.name}: Appended Table 1 {row.label()}, {kind}; entry {item.entry}",
        f"{tables.citation}, row {row.id}" if row.control is not Control.NONE else tables.citation,
        item.provenance,
    )


def _end_user_reason(finding: EndUserFinding) -> Reason:
    flags = ""
    if finding.red_flags:
        flags = (
            f"; also matches {'; '.join(finding.red_flags)}: not Japan's End User List, but a "
            "red flag for the exporter's own end-user check"
        )
    if not finding.listed:
        return Reason(
            "end-user",
            "end-user-list",
            Outcome.NOT_MET,
            f"{finding.name!r} matches no entry of the End User List screened{flags}",
            "METI End User List (外国ユーザーリスト)",
            finding.provenance,
        )
    concerns = ", ".join(sorted(c.value for c in finding.concerns)) or "unknown"
    detail = f"{finding.name!r} matches {finding.entry} (concern: {concerns}){flags}"
    if finding.review:
        detail += (
            "; a possible match only, treated as listed until a person clears it (fail closed)"
        )
    return Reason(
        "end-user",
        "end-user-list",
        Outcome.MET,
        detail,
        "METI End User List (外国ユーザーリスト)",
        finding.provenance,
    )


def _list_control(
    tables: Tables,
    request: ExportRequest,
    item: Item,
    row: Row,
    group: GroupAssignment,
    reasons: list[Reason],
) -> tuple[EligibleLicence, ...]:
    day, country = request.on, request.destination
    reasons.append(
        Reason(
            "list-control",
            f"row-{row.id}",
            Outcome.LICENCE_REQUIRED,
            "rows 1-15 need a METI licence for every destination, Group A included "
            f"({row.label()})",
            f"FEFTA Art. 48(1); ETCO Art. 1(1), Appended Table 1 row {row.id}",
            row.provenance,
        )
    )
    chart = tables.chart[group.group.id]
    bulk_scope = item.bulk if item.bulk is not None else row.bulk
    bulk_prov = item.bulk_provenance if item.bulk_provenance is not None else row.bulk_provenance
    basis: dict[str, list[Provenance]] = {}
    for lic_id in chart.licences & bulk_scope:
        basis[lic_id] = [chart.provenance, bulk_prov]
    reasons.append(
        Reason(
            "list-control",
            f"chart-group-{group.group.id}",
            Outcome.APPLIES,
            f"bulk licences open to Group {group.group.id}: {_names(tables, chart.licences)}; "
            f"the item's bulk scope: {_names(tables, bulk_scope)}",
            "包括許可取扱要領 (bulk-licence handling rules)",
            _combined(chart.provenance, bulk_prov),
        )
    )
    conditions: dict[str, list[str]] = {}
    for kind in (MeasureKind.RESTRICT, MeasureKind.RELAX):
        for m in tables.measures:
            if m.kind is not kind or not m.applies(item.id, country, day):
                continue
            if kind is MeasureKind.RESTRICT:
                basis = {k: v for k, v in basis.items() if k in m.licences}
                what = f"only {_names(tables, m.licences)} open"
            else:
                for lic_id in m.licences & chart.licences & bulk_scope:
                    basis[lic_id] = [chart.provenance, bulk_prov, m.provenance]
                    conditions[lic_id] = list(m.conditions)
                what = f"{_names(tables, m.licences)} open again"
                if m.conditions:
                    what += f" ({'; '.join(m.conditions)})"
            reasons.append(
                Reason(
                    "measure",
                    m.id,
                    Outcome.APPLIES,
                    f"{m.title}: {what}",
                    m.citation,
                    m.provenance,
                    m.interval.describe(),
                )
            )
    triggers = _catch_all_triggers(request)
    if triggers and basis:
        basis = {}
        reasons.append(
            Reason(
                "list-control",
                "catch-all-conditions",
                Outcome.APPLIES,
                f"{' and '.join(triggers)}: bulk licences are not used; individual licence only",
                "包括許可取扱要領 (bulk-licence handling rules)",
                tables.catch_all_provenance,
            )
        )
    basis[INDIVIDUAL] = [tables.licences[INDIVIDUAL].provenance]
    eligible = []
    for lic in tables.licences_by_rank(frozenset(basis)):
        eligible.append(
            EligibleLicence(
                lic,
                (*lic.conditions, *conditions.get(lic.id, ())),
                (lic.provenance, *basis[lic.id]),
            )
        )
    return tuple(eligible)


def _catch_all_triggers(request: ExportRequest) -> list[str]:
    triggers = []
    if request.end_use in (EndUse.WMD, EndUse.CONVENTIONAL):
        triggers.append(f"declared {request.end_use.value} end use")
    if request.end_user is not None and request.end_user.listed:
        triggers.append("end user on the End User List")
    if request.informed:
        triggers.append("METI has informed")
    return triggers


def _catch_all(
    tables: Tables,
    request: ExportRequest,
    row: Row,
    destination: Destination,
    reasons: list[Reason],
) -> bool:
    day = request.on
    rules = [r for r in tables.rules if r.applies(row.id, destination.id, day)]
    if not rules:
        reasons.append(
            Reason(
                "catch-all",
                "none-in-force",
                Outcome.NOT_APPLICABLE,
                f"no catch-all rule covers row {row.id} to a {destination.name} "
                f"on {day.isoformat()}",
                f"FEFTA Art. 48(1); ETCO Art. 1(1), Appended Table 1 row {row.id}",
                destination.provenance,
            )
        )
        return False
    triggered = False
    for rule in rules:
        met = _requirements_met(rule, request)
        triggered = triggered or bool(met)
        wanted = ", ".join(sorted(r.value for r in rule.requirements))
        if met:
            detail = (
                f"{rule.concern.value} catch-all to a {destination.name}: met by {'; '.join(met)}"
            )
            if Requirement.END_USER in rule.requirements and request.end_user is not None:
                detail += (
                    " (the end-user requirement does not apply where it is clear under METI's "
                    "'clearly' guideline (明らかガイドライン) that the item will not be so used)"
                )
        else:
            detail = (
                f"{rule.concern.value} catch-all to a {destination.name} ({wanted}): not met"
                + ("" if request.end_use is not None else "; no end use declared")
            )
        reasons.append(
            Reason(
                "catch-all",
                rule.id,
                Outcome.MET if met else Outcome.NOT_MET,
                detail,
                rule.citation,
                rule.provenance,
                rule.interval.describe(),
            )
        )
    return triggered


def _requirements_met(rule: CatchAllRule, request: ExportRequest) -> list[str]:
    concerns = (
        {Concern.WMD, Concern.CONVENTIONAL} if rule.concern is Concern.ANY else {rule.concern}
    )
    met = []
    use = request.end_use.value if request.end_use is not None else None
    if Requirement.END_USE in rule.requirements and use in {c.value for c in concerns}:
        met.append(f"end use ({use})")
    finding = request.end_user
    listed = finding is not None and finding.listed and bool(finding.concerns & concerns)
    if Requirement.END_USER in rule.requirements and listed:
        met.append("end user (End User List)")
    if Requirement.INFORM in rule.requirements and request.informed:
        met.append("METI inform")
    return met


def _summary(required: bool, prohibited: bool, eligible: tuple[EligibleLicence, ...]) -> Reason:
    if prohibited:
        return Reason(
            "licence",
            "none-open",
            Outcome.PROHIBITED,
            "the export is prohibited: no licence type is open",
            "",
            Provenance("the steps above", Evidence.DESIGN_NOTE),
        )
    if not required:
        return Reason(
            "licence",
            "none-needed",
            Outcome.NO_LICENCE_REQUIRED,
            "no licence is required",
            "",
            Provenance("the steps above", Evidence.DESIGN_NOTE),
        )
    best = eligible[0]
    others = ", ".join(e.licence.english for e in eligible[1:])
    detail = (
        f"least burdensome licence that suffices: {best.licence.english} ({best.licence.japanese})"
    )
    if others:
        detail += f"; also open: {others}"
    return Reason(
        "licence",
        best.licence.id,
        Outcome.LICENCE_REQUIRED,
        detail,
        "包括許可取扱要領 (bulk-licence handling rules)",
        _combined(*best.basis),
    )


def _names(tables: Tables, ids: frozenset[str]) -> str:
    return ", ".join(lic.english for lic in tables.licences_by_rank(ids)) or "none"


def _combined(*provenances: Provenance) -> Provenance:
    """One provenance for a conclusion drawn from several facts: every source, weakest grade."""
    sources = []
    notes = []
    for p in provenances:
        if p.source not in sources:
            sources.append(p.source)
        if p.note and p.note not in notes:
            notes.append(p.note)
    return Provenance(" | ".join(sources), weakest(*provenances), " ".join(notes))
