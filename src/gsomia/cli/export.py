"""``gsomia export``: Japan's licence determination and end-user screening, effective-dated.

    gsomia export check --item resist --to KOR --on 2019-07-04
    gsomia export group "South Korea" --on 2019-08-28
    gsomia export items
    gsomia export screen "Shahid Hemat Industrial Group Co., Ltd."
    gsomia export screen --csv customers.csv --out screened.csv

Every command takes ``--json``. Every date is a day in Japan, given explicitly: the answer is for
that day's tables, whatever today is.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from gsomia.cli.common import console, err_console, print_json
from gsomia.core.errors import GsomiaError
from gsomia.exportcontrol.service import ExportControl


class _ErrorsAsOneLine(TyperGroup):
    """As the root command does: a GsomiaError is one line on stderr and its exit code.

    The sub-app has its own so that it behaves the same when run on its own (tests, embedding).
    """

    def invoke(self, ctx: Any) -> Any:  # Typer vendors its own click Context
        try:
            return super().invoke(ctx)
        except GsomiaError as e:
            sys.stderr.write(f"gsomia: error: {e.message} [{e.code}]\n")
            raise typer.Exit(e.exit_code) from None


export_app = typer.Typer(
    cls=_ErrorsAsOneLine,
    help="Export control (Japan): licence determination and End User List screening.",
    no_args_is_help=True,
    add_completion=False,
)


class EndUseChoice(StrEnum):
    civil = "civil"
    wmd = "wmd"
    conventional = "conventional"


JSON = typer.Option(False, "--json", help="Print one JSON document instead of tables.")
ON = typer.Option(..., "--on", metavar="DATE", help="The day in Japan, YYYY-MM-DD.")
LISTS = typer.Option(
    [],
    "--list",
    metavar="FILE",
    help="A screening list CSV in METI's End User List columns or the US CSL's (repeatable). "
    "Without it, the shipped SAMPLE list is used.",
)

OUTCOME_STYLE = {
    "licence-required": "bold red",
    "prohibited": "bold red",
    "met": "yellow",
    "no-licence-required": "green",
    "not-met": "dim",
    "not-applicable": "dim",
    "applies": "",
}


def _tag(data: dict[str, Any]) -> Text:
    evidence = data.get("evidence", "source")
    return Text("" if evidence == "source" else f" [{evidence}]", style="yellow")


@export_app.command("check")
def check(
    item: str = typer.Option(..., "--item", help="Item id, name or alias (see `export items`)."),
    to: str = typer.Option(..., "--to", metavar="COUNTRY", help="ISO 3166 alpha-3 code or name."),
    on: str = ON,
    end_user: str | None = typer.Option(
        None, "--end-user", metavar="NAME", help="Screen this end user against the lists."
    ),
    end_use: EndUseChoice | None = typer.Option(
        None, "--end-use", help="The declared end use (default: none declared)."
    ),
    informed: bool = typer.Option(
        False, "--informed", help="METI has informed the exporter that a licence is required."
    ),
    lists: list[Path] = LISTS,
    json: bool = JSON,
) -> None:
    """Does this export need a licence on that day, which one, and why."""
    service = ExportControl.load(lists)
    result = service.check(item, to, on, end_user, end_use.value if end_use else None, informed)
    if json:
        print_json(result)
        return
    console.print(_check_panel(result))
    console.print(_reasons_table(result))
    if result["screening"] is not None:
        console.print(_hits_table(result["screening"]))


def _check_panel(r: dict[str, Any]) -> Panel:
    if r["prohibited"]:
        verdict = Text("PROHIBITED: no licence is open", style="bold red")
    elif r["license_required"]:
        lic = r["eligible_licenses"][0]
        verdict = Text("LICENCE REQUIRED", style="bold red")
        verdict.append(f"\nleast burdensome: {lic['english']} ({lic['japanese']})", style="bold")
        verdict.append_text(_tag(lic))
        others = [e["english"] for e in r["eligible_licenses"][1:]]
        if others:
            verdict.append(f"\nalso open: {', '.join(others)}")
    else:
        verdict = Text("no licence required", style="bold green")
    if r["needs_review"]:
        verdict.append("\npossible End User List match: a person must review it", style="yellow")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    item = r["item"]
    grid.add_row(
        "item", f"{item['name']} ({item['japanese']}): row {item['row']}, {item['control']}"
    )
    dest = r["destination"]
    group = Text(f"{dest['name']} ({dest['code']}), Group {r['group']}")
    group.append_text(_tag(r["group_detail"]))
    grid.add_row("destination", group)
    grid.add_row("end use", r["end_use"] or "not declared")
    grid.add_row("METI inform", "yes" if r["informed"] else "no")
    grid.add_row("verdict", verdict)
    if r["unverified"]:
        grid.add_row("rests on", Text("; ".join(r["unverified"]), style="yellow"))
    return Panel(grid, title=f"export check on {r['on']}")


def _reasons_table(r: dict[str, Any]) -> Table:
    table = Table(title="Reasons", show_lines=False)
    for col in ("step", "rule", "outcome", "detail", "citation"):
        table.add_column(col, overflow="fold")
    for reason in r["reasons"]:
        detail = Text(reason["detail"])
        if reason["effective"]:
            detail.append(f" [{reason['effective']}]", style="dim")
        detail.append_text(_tag(reason))
        table.add_row(
            reason["step"],
            reason["rule"],
            Text(reason["outcome"], style=OUTCOME_STYLE.get(reason["outcome"], "")),
            detail,
            reason["citation"],
        )
    return table


@export_app.command("group")
def group(
    country: str = typer.Argument(..., help="ISO 3166 alpha-3 code or name."),
    on: str = ON,
    json: bool = JSON,
) -> None:
    """A country's group (A-D) on a day, and the list that puts it there."""
    result = ExportControl.load().group(country, on)
    if json:
        print_json(result)
        return
    text = Text(result["detail"])
    text.append_text(_tag(result))
    text.append(f"\nsource: {result['source']}", style="dim")
    if result["note"]:
        text.append(f"\nnote: {result['note']}", style="dim")
    c = result["country"]
    console.print(Panel(text, title=f"{c['name']} ({c['code']}): Group {result['group']}"))


@export_app.command("items")
def items(json: bool = JSON) -> None:
    """The item catalogue, with each item's row of Appended Table 1."""
    rows = ExportControl.load().items()
    if json:
        print_json(rows)
        return
    table = Table(title="Item catalogue (Appended Table 1 rows)")
    for col in ("id", "name", "row", "control", "entry"):
        table.add_column(col, overflow="fold")
    for it in rows:
        entry = Text(it["entry"])
        entry.append_text(_tag(it))
        table.add_row(it["id"], f"{it['name']}\n{it['japanese']}", it["row"], it["control"], entry)
    console.print(table)


@export_app.command("screen")
def screen(
    name: str | None = typer.Argument(None, help="The end-user name to screen."),
    lists: list[Path] = LISTS,
    csv_in: Path | None = typer.Option(
        None, "--csv", metavar="IN", help="Screen the 'name' column of this CSV file."
    ),
    out: Path | None = typer.Option(None, "--out", metavar="OUT", help="Where --csv writes."),
    json: bool = JSON,
) -> None:
    """Screen a name, or a CSV of names (--csv IN --out OUT), against the lists."""
    if (name is None) == (csv_in is None):
        raise typer.BadParameter("give a NAME or --csv IN --out OUT")
    service = ExportControl.load(lists)
    if csv_in is not None:
        if out is None:
            raise typer.BadParameter("--csv needs --out")
        _screen_batch(service, csv_in, out, json)
        return
    assert name is not None
    result = service.screen(name)
    if json:
        print_json(result)
        return
    console.print(_hits_table(result))


def _hits_table(result: dict[str, Any]) -> Table | Text:
    sample = " (against a SAMPLE list, not METI's)" if result["sample_list"] else ""
    if not result["hits"]:
        return Text(
            f"Screening {result['query']!r}: CLEAR{sample}: no name on the lists scores "
            f"{result['review_from']:.0f} or more (read as: {' | '.join(result['readings'])})",
            style="green",
        )
    return _hits(result, sample)


def _hits(result: dict[str, Any], sample: str) -> Table:
    title = f"Screening {result['query']!r}: {result['status'].upper()}{sample}"
    table = Table(
        title=title,
        caption=f"match at {result['threshold']:.0f}, review from {result['review_from']:.0f}; "
        f"read as: {' | '.join(result['readings'])}",
    )
    for col in ("score", "status", "list / No.", "entry", "types", "how"):
        table.add_column(col, overflow="fold")
    for h in result["hits"]:
        style = "bold red" if h["status"] == "match" else "yellow"
        table.add_row(
            f"{h['score']:.1f}",
            Text(h["status"], style=style),
            f"{h['list']} {h['no']}",
            f"{h['name']}" + (f"\n{h['japanese']}" if h["japanese"] else ""),
            ", ".join(h["types"]),
            h["explanation"],
        )
    return table


def _screen_batch(service: ExportControl, source: Path, target: Path, json: bool) -> None:
    with Progress(
        TextColumn("screening"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=json,
    ) as bar:
        task = bar.add_task("screen", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = service.screen_csv(source, target, progress)
    for line, error in report.errors:
        sys.stderr.write(f"gsomia: {source}: line {line}: skipped: {error}\n")
    if json:
        print_json({"out": str(target), **report.to_dict()})
        return
    console.print(
        f"{report.screened} names screened into {target}: {report.matches} matches, "
        f"{report.reviews} to review, {report.screened - report.matches - report.reviews} "
        f"clear; {len(report.errors)} bad rows"
    )
