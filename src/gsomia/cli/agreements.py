"""``gsomia agreements``: list, show, status and timeline of the registry's instruments."""

from __future__ import annotations

from datetime import datetime

import typer
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gsomia.cli.common import console, iso, now, print_json, settings
from gsomia.core.agreements import Clause, Instrument, TerminationMode
from gsomia.core.lifecycle import History, State, Status
from gsomia.core.provenance import Provenance
from gsomia.core.registry import Registry
from gsomia.core.time import parse_instant, zone
from gsomia.loader import whatif_from

agreements_app = typer.Typer(help="Instruments: what they say and what state they are in.")

JSON = typer.Option(False, "--json", help="Print one JSON document instead of a table.")
AT = typer.Option(
    None,
    "--at",
    metavar="INSTANT",
    help="ISO 8601 instant or date; without an offset it is read in the instrument's time zone. "
    "Default: now.",
)
WITHOUT = typer.Option(
    [], "--without", metavar="EVENT_ID", help="What-if: leave out this recorded event."
)
WITH = typer.Option(
    [], "--with", metavar="EVENT_FILE", help="What-if: add the events of this TOML file."
)

STATE_STYLE = {
    State.IN_FORCE: "bold green",
    State.NOT_YET_IN_FORCE: "dim",
    State.TERMINATED: "bold red",
}


def _instant(text: str | None, instrument: Instrument) -> datetime:
    if text is None:
        return now().astimezone(zone(instrument.timezone))
    return parse_instant(text, zone(instrument.timezone))


def _tag(prov: Provenance) -> Text:
    tag = prov.tag()
    return Text(f" {tag}", style="yellow") if tag else Text("")


def _local(at: datetime | None, inst: Instrument) -> str:
    if at is None:
        return "—"
    return at.astimezone(zone(inst.timezone)).strftime("%Y-%m-%d %H:%M %Z")


def _state_text(status: Status) -> Text:
    text = Text(status.state.value, style=STATE_STYLE[status.state])
    if status.state is State.IN_FORCE and status.notice.value != "none":
        text.append(f" (notice {status.notice.value})", style="yellow")
    return text


@agreements_app.command("list")
def list_(ctx: typer.Context, at: str | None = AT, json: bool = JSON) -> None:
    """Every instrument in the registry, with its state now (or --at)."""
    registry = settings(ctx).registry
    rows = []
    for inst in registry.instruments.values():
        status = registry.history(inst.id).status(_instant(at, inst))
        rows.append((inst, status))
    if json:
        print_json(
            [
                {
                    "id": inst.id,
                    "title": inst.title,
                    "kind": inst.kind.value,
                    "binding": inst.binding,
                    "parties": list(inst.parties),
                    "entry_into_force": iso(inst.entry_into_force.on),
                    "state": status.state.value,
                    "notice": status.notice.value,
                    "unverified": inst.unverified(),
                }
                for inst, status in rows
            ]
        )
        return
    table = Table(title=f"Instruments in the registry ({registry.content_hash[:12]})")
    for col in ("id", "kind", "parties", "in force since", "state", "unverified clauses"):
        table.add_column(col)
    for inst, status in rows:
        eif = inst.entry_into_force
        since = eif.on.isoformat() if eif.on else "not confirmed"
        if eif.on and eif.precision == "month":
            since = eif.on.strftime("%Y-%m (month)")
        table.add_row(
            inst.id,
            inst.kind.value,
            ", ".join(inst.parties),
            since,
            _state_text(status),
            Text(", ".join(inst.unverified()) or "—", style="yellow" if inst.unverified() else ""),
        )
    console.print(table)


@agreements_app.command("show")
def show(
    ctx: typer.Context, instrument_id: str = typer.Argument(..., metavar="ID"), json: bool = JSON
) -> None:
    """What an instrument says, clause by clause, with articles and sources."""
    registry = settings(ctx).registry
    inst = registry.instrument(instrument_id)
    if json:
        print_json(inst.to_dict())
        return
    header = Text(inst.title, style="bold")
    for lang, title in inst.titles.items():
        header.append(f"\n{lang}: {title}")
    header.append(f"\n\n{inst.summary}" if inst.summary else "")
    console.print(Panel(header, title=inst.id, subtitle=inst.provenance.source[:90]))
    clauses = Table(show_header=True, title="Clauses")
    for col in ("clause", "says", "article", "source"):
        clauses.add_column(col, overflow="fold")
    for name, says, clause in _clause_rows(registry, inst):
        source = Text(clause.provenance.source)
        source.append_text(_tag(clause.provenance))
        clauses.add_row(name, says, clause.article, source)
    console.print(clauses)
    if inst.equivalence and inst.equivalence.rows:
        console.print(_equivalence_table(registry, inst))
    if inst.events:
        events = Table(title="Recorded events")
        for col in ("date", "event", "kind", "by", "summary"):
            events.add_column(col, overflow="fold")
        for e in inst.events:
            events.add_row(_local(e.at, inst), e.id, e.kind.value, e.by or "", e.summary)
        console.print(events)


def _clause_rows(registry: Registry, inst: Instrument) -> list[tuple[str, str, Clause]]:
    rows: list[tuple[str, str, Clause]] = []
    eif = inst.entry_into_force
    rows.append(("entry into force", iso(eif.on) or "not confirmed", eif.clause))
    term = inst.term
    says = "indefinite" if term.initial is None else f"{term.initial}"
    if term.initial is not None:
        says += f", renewed automatically for {term.renewal}" if term.renewal else ", no renewal"
    rows.append(("term", says, term.clause))
    t = inst.termination
    mode = {
        TerminationMode.AT_TERM_END: f"{t.form}; ends at the end of a term",
        TerminationMode.AFTER_NOTICE: f"{t.form}; ends {t.notice} after notice",
        TerminationMode.UNKNOWN: "not known",
    }[t.mode]
    rows.append(("termination", mode, t.clause))
    if inst.scope:
        topics = "all topics" if inst.scope.topics is None else ", ".join(inst.scope.topics)
        rows.append(("scope", f"{topics}. {inst.scope.description}", inst.scope.clause))
    if inst.equivalence and inst.equivalence.excluded_clause:
        excluded = ", ".join(str(registry.level_by_key(k)) for k in inst.equivalence.excluded)
        rows.append(("excluded levels", excluded, inst.equivalence.excluded_clause))
    if inst.third_party:
        needs = inst.third_party.form if inst.third_party.consent_required else "no consent"
        rows.append(("third-party release", needs, inst.third_party.clause))
    if inst.survival:
        says = "protection survives termination" if inst.survival.survives else "does not survive"
        rows.append(("survival", says, inst.survival.clause))
    if inst.hub:
        says = f"through {inst.hub.party}"
        says += ", re-marked with its equivalent level" if inst.hub.remarks else ""
        says += (
            ", forwarded only with the originator's consent" if inst.hub.consent_to_forward else ""
        )
        rows.append(("hub", says, inst.hub.clause))
    if inst.protected_under:
        rows.append(
            (
                "protected under",
                ", ".join(inst.protected_under),
                inst.equivalence.clause if inst.equivalence else inst.term.clause,
            )
        )
    return rows


def _equivalence_table(registry: Registry, inst: Instrument) -> Table:
    assert inst.equivalence is not None
    table = Table(title=f"Equivalence ({inst.equivalence.clause.article})")
    parties = [p for p in inst.parties if any(p in row.levels for row in inst.equivalence.rows)]
    for p in parties:
        table.add_column(p)
    table.add_column("English equivalent")
    for row in inst.equivalence.rows:
        cells = [
            " / ".join(str(registry.level(p, lv)) for lv in row.levels.get(p, ())) or "—"
            for p in parties
        ]
        english = Text(row.english)
        english.append_text(_tag(row.provenance))
        table.add_row(*cells, english)
    return table


@agreements_app.command("status")
def status(
    ctx: typer.Context,
    instrument_id: str = typer.Argument(..., metavar="ID"),
    at: str | None = AT,
    without: list[str] = WITHOUT,
    with_: list[str] = WITH,
    json: bool = JSON,
) -> None:
    """The state of an instrument at an instant, under the recorded or a what-if history."""
    registry = settings(ctx).registry
    inst = registry.instrument(instrument_id)
    history = registry.history(inst.id, whatif_from(registry, inst.id, without, with_))
    result = history.status(_instant(at, inst))
    if json:
        print_json(result.to_dict())
        return
    console.print(_status_panel(result))


def _status_panel(s: Status) -> Panel:
    inst = s.instrument
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("state", _state_text(s))
    if s.term:
        grid.add_row(
            "term", f"#{s.term.number}: {_local(s.term.start, inst)} → {_local(s.term.end, inst)}"
        )
    if s.terminates_at:
        grid.add_row("terminates at", Text(_local(s.terminates_at, inst), style="red"))
    if s.terminated_at:
        grid.add_row("terminated at", f"{_local(s.terminated_at, inst)} ({s.cause})")
    if s.notice_deadline:
        grid.add_row("last day for notice", s.notice_deadline.isoformat())
    if s.terminable_at_any_time:
        claim = s.terminable_claim
        why = (
            f"claimed by {claim.by}, disputed by {', '.join(claim.disputed_by) or 'nobody'}"
            if claim
            else "by its termination clause"
        )
        grid.add_row("terminable at any time", Text(f"yes ({why})", style="yellow"))
    grid.add_row("events applied", ", ".join(e.id for e in s.events_applied) or "—")
    for e, why in s.events_ignored:
        grid.add_row("event ignored", f"{e.id}: {why}")
    if s.instrument.unverified():
        grid.add_row("unverified", Text(", ".join(inst.unverified()), style="yellow"))
    title = f"{inst.id} at {_local(s.at, inst)}" + (" [what-if]" if s.hypothetical else "")
    return Panel(grid, title=title)


@agreements_app.command("timeline")
def timeline(
    ctx: typer.Context,
    instrument_id: str = typer.Argument(..., metavar="ID"),
    until: str | None = typer.Option(
        None, "--until", metavar="INSTANT", help="Show terms up to this instant (default: now)."
    ),
    without: list[str] = WITHOUT,
    with_: list[str] = WITH,
    json: bool = JSON,
) -> None:
    """The dated history of an instrument: terms, notice deadlines and events."""
    registry = settings(ctx).registry
    inst = registry.instrument(instrument_id)
    history = registry.history(inst.id, whatif_from(registry, inst.id, without, with_))
    end = _instant(until, inst)
    if json:
        print_json(timeline_dict(history, end))
        return
    console.print(timeline_table(history, end))


def timeline_dict(history: History, until: datetime) -> dict[str, object]:
    inst = history.instrument
    terms = list(history.terms(until))
    ignored = {e.id: why for e, why in history.ignored}
    return {
        "agreement": inst.id,
        "hypothetical": not history.whatif.is_empty,
        "entered_into_force": iso(history.entered_into_force),
        "terminated_at": iso(history.terminated_at),
        "terms": [
            {
                "number": t.number,
                "start": iso(t.start),
                "end": iso(t.end),
                "notice_deadline": iso(t.notice_deadline)
                if inst.termination.mode is TerminationMode.AT_TERM_END
                else None,
                "outcome": _outcome(history, t.end),
            }
            for t in terms
        ],
        "events": [
            {**e.to_dict(), "applied": e.id not in ignored, "ignored_because": ignored.get(e.id)}
            for e in sorted(
                (*history.applied, *(e for e, _ in history.ignored)), key=lambda e: e.at
            )
        ],
    }


def _outcome(history: History, end: datetime | None) -> str:
    if end is None:
        return "indefinite"
    terminated = history.terminated_at
    if terminated is not None and terminated <= end:
        return f"terminated {terminated.isoformat()}"
    if history.instrument.term.renewal is None:
        return "expires"
    return "renewed"


def timeline_table(history: History, until: datetime) -> Table:
    inst = history.instrument
    data = timeline_dict(history, until)
    table = Table(title=f"{inst.id}: timeline" + (" [what-if]" if data["hypothetical"] else ""))
    for col in ("date", "what", "detail"):
        table.add_column(col, overflow="fold")
    rows: list[tuple[datetime, int, str, Text]] = []
    tz = zone(inst.timezone)
    for t in history.terms(until):
        detail = Text(f"until {_local(t.end, inst)}" if t.end else "indefinite")
        if t.notice_deadline and inst.termination.mode is TerminationMode.AT_TERM_END:
            detail.append(f"; last day for notice {t.notice_deadline.isoformat()}")
        outcome = _outcome(history, t.end)
        detail.append(f"; {outcome}", style="red" if outcome.startswith("terminated") else "green")
        rows.append((t.start, 0, f"term {t.number} begins", detail))
    ignored = {e.id: why for e, why in history.ignored}
    for e in (*history.applied, *(e for e, _ in history.ignored)):
        detail = Text(e.summary)
        if e.hypothetical:
            detail.append(" [hypothetical]", style="magenta")
        if e.id in ignored:
            detail.append(f" (no effect: {ignored[e.id]})", style="dim")
        rows.append((e.at, 1, f"{e.kind.value}: {e.id}", detail))
    if history.terminated_at:
        rows.append(
            (
                history.terminated_at,
                2,
                "terminated",
                Text(history.segments[-1].cause, style="bold red"),
            )
        )
    for at, _, what, detail in sorted(rows, key=lambda r: (r[0], r[1])):
        table.add_row(at.astimezone(tz).strftime("%Y-%m-%d %H:%M"), what, detail)
    return table
