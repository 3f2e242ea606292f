"""``gsomia decide``: a release decision, explained rule by rule."""

from __future__ import annotations

from datetime import datetime

import typer
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gsomia.cli.common import console, now, print_json, settings
from gsomia.core.errors import InputError
from gsomia.core.labels import SecurityLabel
from gsomia.core.registry import Registry
from gsomia.core.release import Decision, Person, ReleaseRequest, decide
from gsomia.core.time import parse_instant, zone


def _parties(registry: Registry, text: str) -> frozenset[str]:
    codes = [c.strip().upper() for c in text.replace(" ", ",").split(",") if c.strip()]
    return frozenset(registry.party(c).code for c in codes)


def _level_id(registry: Registry, party: str, name: str) -> str:
    return registry.level(party, name).id


def build_request(
    registry: Registry,
    *,
    originator: str,
    classification: str,
    rel_to: str,
    topics: list[str],
    holder: str,
    recipient: str,
    received_under: str | None,
    consents: list[str],
    clearance: str | None,
    need_to_know: list[str],
    compartments: list[str],
    person_compartments: list[str],
) -> ReleaseRequest:
    """A request from command-line words; every name is checked against the registry."""
    origin = registry.party(originator)
    if origin.scheme is None:
        raise InputError(f"{origin.code} has no classification scheme in the registry")
    label = SecurityLabel(
        originator=origin.code,
        policy=origin.scheme,
        classification=_level_id(registry, origin.code, classification),
        releasable_to=_parties(registry, rel_to),
        compartments=frozenset(c.upper() for c in compartments),
        topics=frozenset(registry.topic(t).id for t in topics),
    )
    to = registry.party(recipient)
    person = None
    if clearance is not None or need_to_know or person_compartments:
        person = Person(
            clearance=_level_id(registry, to.code, clearance) if clearance else None,
            need_to_know=frozenset(registry.topic(t).id for t in need_to_know),
            compartments=frozenset(c.upper() for c in person_compartments),
        )
    return ReleaseRequest(
        label=label,
        holder=registry.party(holder).code,
        recipient=to.code,
        person=person,
        consents=frozenset(registry.party(c).code for c in consents),
        received_under=registry.instrument(received_under).id if received_under else None,
    )


def decide_command(
    ctx: typer.Context,
    originator: str = typer.Option(..., "--originator", metavar="PARTY", help="Originating party."),
    classification: str = typer.Option(
        ...,
        "--classification",
        metavar="LEVEL",
        help="The originator's level: native name (極秘), romanization (Gokuhi) or id.",
    ),
    rel_to: str = typer.Option(
        "", "--rel-to", metavar="P,P,...", help="Releasable-to parties (REL TO)."
    ),
    topic: list[str] = typer.Option([], "--topic", metavar="T", help="Topic (repeatable)."),
    compartment: list[str] = typer.Option(
        [], "--compartment", metavar="C", help="Compartment of the label (repeatable)."
    ),
    holder: str = typer.Option(..., "--from", metavar="HOLDER", help="Party holding the item."),
    recipient: str = typer.Option(..., "--to", metavar="RECIPIENT", help="Party to release to."),
    at: str | None = typer.Option(
        None,
        "--at",
        metavar="INSTANT",
        help="ISO 8601; without an offset, read in the holder's time zone. Default: now.",
    ),
    received_under: str | None = typer.Option(
        None, "--received-under", metavar="INSTRUMENT", help="How the holder received the item."
    ),
    consent: list[str] = typer.Option(
        [], "--consent", metavar="PARTY", help="A party whose consent is on record (repeatable)."
    ),
    recipient_clearance: str | None = typer.Option(
        None, "--recipient-clearance", metavar="LEVEL", help="Recipient person's clearance."
    ),
    need_to_know: list[str] = typer.Option(
        [], "--need-to-know", metavar="T", help="Recipient person's need-to-know topic."
    ),
    read_into: list[str] = typer.Option(
        [], "--read-into", metavar="C", help="A compartment the recipient person holds."
    ),
    without: list[str] = typer.Option(
        [], "--without", metavar="EVENT_ID", help="What-if: leave out this recorded event."
    ),
    json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """May this labelled item go from HOLDER to RECIPIENT at INSTANT? By which route, and why."""
    base = settings(ctx).registry
    registry = base.what_if(without=without) if without else base
    request = build_request(
        registry,
        originator=originator,
        classification=classification,
        rel_to=rel_to,
        topics=topic,
        holder=holder,
        recipient=recipient,
        received_under=received_under,
        consents=consent,
        clearance=recipient_clearance,
        need_to_know=need_to_know,
        compartments=compartment,
        person_compartments=read_into,
    )
    tz = zone(registry.party(request.holder).timezone)
    instant = parse_instant(at, tz) if at is not None else now()
    decision = decide(registry, request, instant)
    if json:
        print_json(decision.to_dict())
    else:
        render(registry, decision, instant)
    # 0: allowed; 3: refused (the code of ReleaseDeniedError); 2: bad input.
    raise typer.Exit(0 if decision.allowed else 3)


def render(registry: Registry, decision: Decision, at: datetime) -> None:
    verdict = (
        Text("ALLOWED", style="bold green")
        if decision.allowed
        else Text("REFUSED", style="bold red")
    )
    verdict.append(f"  {' → '.join(decision.route)}", style="bold")
    if decision.instruments:
        verdict.append(f"  under {', '.join(dict.fromkeys(decision.instruments))}")
    if decision.recipient_label:
        level = registry.level_by_key(decision.recipient_label.level_key)
        verdict.append(f"\narrives as {level.native} ({level.english})")
    verdict.append(f"\nat {at.isoformat()}; registry {decision.registry_hash[:12]}")
    if decision.hypothetical:
        verdict.append("  [what-if]", style="magenta")
    console.print(Panel(verdict, title="Release decision"))
    table = Table(title="Rules applied")
    for col in ("hop", "rule", "", "citation", "detail"):
        table.add_column(col, overflow="fold")
    for r in decision.reasons:
        mark = Text("✓", style="green") if r.passed else Text("✗", style="bold red")
        hop = "" if r.hop is None else str(r.hop + 1)
        table.add_row(hop, r.rule, mark, r.citation, r.detail)
    console.print(table)
    for title, lines, style in (
        ("Obligations", decision.obligations, ""),
        ("Caveats (facts not confirmed by a source)", decision.caveats, "yellow"),
        ("Routes considered", [o.summary() for o in decision.routes_considered], ""),
    ):
        if lines:
            console.print(Text(title, style="bold"))
            for line in lines:
                console.print(Text(f"  • {line}", style=style))
