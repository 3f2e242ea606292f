"""``gsomia label``: write a security label as a marking (or XML, or JSON), and read one back."""

from __future__ import annotations

from datetime import UTC
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from gsomia.cli.common import console, print_json, settings
from gsomia.core.errors import InvalidLabelError
from gsomia.core.labels import SecurityLabel
from gsomia.core.markings import MarkingForm, parse_marking, rel_to_order, render
from gsomia.core.registry import Registry
from gsomia.core.time import parse_instant
from gsomia.formats.stanag4774 import from_xml, to_xml

label_app = typer.Typer(
    help="Security labels: render them as banner, portion, native, XML or JSON; parse markings."
)


class OutputForm(StrEnum):
    BANNER = "banner"
    PORTION = "portion"
    FGI_BANNER = "fgi-banner"
    NATIVE = "native"
    XML = "xml"
    JSON = "json"


JSON = typer.Option(False, "--json", help="Print one JSON document.")


def _codes(values: list[str]) -> frozenset[str]:
    """Repeatable options that also take comma-separated lists: --rel-to USA,JPN --rel-to KOR."""
    return frozenset(c.strip() for v in values for c in v.split(",") if c.strip())


@label_app.command("render")
def render_cmd(
    ctx: typer.Context,
    originator: str = typer.Option(..., "--originator", help="Party code of the originator."),
    classification: str = typer.Option(
        ...,
        "--classification",
        metavar="LEVEL",
        help="The originator's level: its native name (極秘), romanization (Gokuhi) or alias.",
    ),
    rel_to: list[str] = typer.Option(
        [], "--rel-to", metavar="CODES", help="Releasable to: party codes, comma-separated."
    ),
    compartment: list[str] = typer.Option(
        [], "--compartment", metavar="NAMES", help="Compartments, comma-separated."
    ),
    topic: list[str] = typer.Option([], "--topic", help="Topic ids of the registry (repeatable)."),
    holder: str | None = typer.Option(
        None,
        "--holder",
        help="Mark as this party holds the item: under its own equivalent level, from the "
        "equivalence tables of the instruments between it and the originator.",
    ),
    holder_classification: str | None = typer.Option(
        None,
        "--holder-classification",
        metavar="LEVEL",
        help="The holder's level, instead of the first one the equivalence tables list "
        "(for example 特定秘密 rather than 極秘).",
    ),
    created: str | None = typer.Option(
        None, "--created", metavar="INSTANT", help="Creation time (ISO 8601, with offset)."
    ),
    consent: bool = typer.Option(
        True,
        "--consent-required/--no-consent-required",
        help="Third-party release needs the originator's consent.",
    ),
    form: OutputForm = typer.Option(OutputForm.BANNER, "--form", help="What to print."),
    json: bool = JSON,
) -> None:
    """Build a label and print it as a marking, 4774-style XML or JSON."""
    registry = settings(ctx).registry
    party = registry.party(originator)
    level = registry.level(party.code, classification)
    for topic_id in topic:
        registry.topic(topic_id)
    label = SecurityLabel(
        originator=party.code,
        policy=level.scheme,
        classification=level.id,
        releasable_to=frozenset(c.upper() for c in _codes(rel_to)),
        compartments=_codes(compartment),
        topics=frozenset(topic),
        created=parse_instant(created, UTC) if created is not None else None,
        originator_consent_required=consent,
    )
    if holder is not None:
        label = _as_held(registry, label, registry.party(holder).code, holder_classification)
    output = _output(registry, label, form)
    if json:
        print_json({"form": form.value, "output": output, "label": label.to_dict()})
    elif form is OutputForm.JSON:
        print_json(label.to_dict())
    else:
        # soft_wrap: a banner must never be broken across lines by the terminal width
        console.print(output.rstrip("\n"), markup=False, soft_wrap=True)


def _output(registry: Registry, label: SecurityLabel, form: OutputForm) -> Any:
    if form is OutputForm.XML:
        return to_xml(registry, label)
    if form is OutputForm.JSON:
        return label.to_dict()
    return render(registry, label, MarkingForm(form.value))


def _as_held(
    registry: Registry, label: SecurityLabel, holder: str, holder_level: str | None
) -> SecurityLabel:
    """``label`` re-marked under the holder's scheme (its 4774 alternative label)."""
    if holder == label.originator:
        return label
    if holder_level is not None:
        level = registry.level(holder, holder_level)
        return label.remarked(level.scheme, level.id)
    scheme = registry.scheme_of(holder)
    if scheme is None:
        raise InvalidLabelError(f"holder {holder} has no classification scheme in the registry")
    # As the release engine marks a recipient's label: the first level a table row lists for the
    # holder (極秘 before 特定秘密 in the JPN-KOR table); instruments that disagree fail closed.
    candidates: list[str] = []
    for inst in registry.instruments_between(label.originator, holder):
        for row in inst.equivalence.rows if inst.equivalence else ():
            held = row.levels.get(holder, ())
            if label.classification in row.levels.get(label.originator, ()) and held:
                candidates += [held[0]] if held[0] not in candidates else []
    if len(candidates) != 1:
        found = " or ".join(str(scheme.level(c)) for c in candidates) or "no level"
        raise InvalidLabelError(
            f"the equivalence tables between {label.originator} and {holder} give {found} "
            f"for {label.originator}:{label.classification}: pass --holder-classification"
        )
    return label.remarked(scheme.id, candidates[0])


@label_app.command("parse")
def parse_cmd(
    ctx: typer.Context,
    marking: str | None = typer.Argument(
        None, help="A banner, portion, FGI banner or native marking (quote it)."
    ),
    holder: str | None = typer.Option(
        None, "--holder", help="The party whose scheme a native marking's level belongs to."
    ),
    xml: Path | None = typer.Option(
        None,
        "--xml",
        metavar="FILE",
        exists=True,
        dir_okay=False,
        help="Read a 4774-style XML label from FILE instead of a marking.",
    ),
    json: bool = JSON,
) -> None:
    """Read a marking (or an XML label) and show the label it carries."""
    registry = settings(ctx).registry
    if (marking is None) == (xml is None):
        raise typer.BadParameter("give either a MARKING or --xml FILE")
    if xml is not None:
        label, form = from_xml(registry, xml.read_bytes()), "xml"
    else:
        assert marking is not None
        parsed = parse_marking(
            registry, marking, holder=registry.party(holder).code if holder else None
        )
        label, form = parsed.label, parsed.form.value
    if json:
        print_json({"form": form, "label": label.to_dict()})
        return
    _show(registry, label, form)


def _show(registry: Registry, label: SecurityLabel, form: str) -> None:
    level = next(
        lv for lv in registry.schemes[label.policy].levels if lv.id == label.classification
    )
    rows = [
        ("form", form),
        ("originator", f"{label.originator} ({registry.parties[label.originator].government})"),
        ("policy", label.policy),
        ("classification", f"{level} [{level.english}]"),
        ("releasable to", ", ".join(rel_to_order(label.releasable_to)) or "-"),
        ("compartments", ", ".join(sorted(label.compartments)) or "-"),
    ]
    if form == "xml":
        rows += [
            ("topics", ", ".join(sorted(label.topics)) or "-"),
            ("created", label.created.isoformat() if label.created else "-"),
            ("consent required", "yes" if label.originator_consent_required else "no"),
            ("original", ":".join(label.original) if label.original else "-"),
        ]
    for name, value in rows:
        console.print(f"{name:<17}{value}", markup=False, soft_wrap=True)
    if form != "xml":
        console.print(
            "(a marking carries no topics, creation time or consent caveat)",
            markup=False,
            style="dim",
        )
