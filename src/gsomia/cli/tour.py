"""``gsomia tour``: a guided tour of the registry, with no node running.

The instruments, the Japan–Korea GSOMIA's timeline, November 2019 with and without Korea's
suspension of its termination notice, and the release decisions of that month.
"""

from __future__ import annotations

import typer
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from gsomia.cli.agreements import STATE_STYLE, list_, timeline_table
from gsomia.cli.common import console, now, settings
from gsomia.core.labels import SecurityLabel
from gsomia.core.lifecycle import WhatIf
from gsomia.core.registry import Registry
from gsomia.core.release import ReleaseRequest, decide
from gsomia.core.time import parse_instant, zone

GSOMIA = "JPN-KOR-GSOMIA"
SUSPENSION = "kor-notice-suspension-2019"
MOMENTS = (
    ("2019-08-22T12:00", "ROK NSC announces it will terminate"),
    ("2019-08-23T12:00", "the written notice is handed over"),
    ("2019-11-22T12:00", "the day before the lapse"),
    ("2019-11-22T23:59", "one minute before midnight in Seoul"),
    ("2019-11-23T00:00", "midnight in Seoul: the term ends"),
    ("2020-08-25T00:00", "the next notice deadline has passed"),
    ("2023-03-21T12:00", "Korea withdraws both 2019 notes"),
)


def tour(ctx: typer.Context) -> None:
    """Tour the registry: the instruments, the Japan–Korea timeline, November 2019 what-ifs."""
    registry = settings(ctx).registry
    console.print(
        Panel(
            Text.assemble(
                ("gsomia", "bold"),
                " decides, explains and proves exchanges of classified military information "
                "between allied governments.\n",
                f"Registry {registry.content_hash[:16]}: {len(registry.instruments)} instruments, "
                f"{len(registry.parties)} parties, {len(registry.topics)} topics. "
                "Facts marked [unverified] have no confirmed source.",
            ),
            title="gsomia tour",
        )
    )
    list_(ctx, at=None, json=False)

    console.print(Rule("The Japan–Korea GSOMIA, as recorded"))
    inst = registry.instrument(GSOMIA)
    tz = zone(inst.timezone)
    console.print(timeline_table(registry.history(GSOMIA), now()))

    console.print(Rule("November 2019: what if Korea had not suspended its notice?"))
    recorded = registry.history(GSOMIA)
    whatif = registry.history(GSOMIA, WhatIf(without=frozenset({SUSPENSION})))
    table = Table(title=f"{GSOMIA} at key instants (Seoul time)")
    for col in ("instant", "moment", "recorded history", f"without {SUSPENSION}"):
        table.add_column(col)
    for text, moment in MOMENTS:
        at = parse_instant(text, tz)
        cells = []
        for history in (recorded, whatif):
            s = history.status(at)
            cell = Text(s.state.value, style=STATE_STYLE[s.state])
            if s.notice.value != "none":
                cell.append(f", notice {s.notice.value}", style="yellow")
            if s.terminable_at_any_time:
                cell.append(" (KOR: terminable at any time; JPN disputes)", style="yellow")
            cells.append(cell)
        table.add_row(text, moment, *cells)
    console.print(table)

    tisa = registry.history("TISA").status(parse_instant("2019-11-24", tz))
    scope = tisa.instrument.scope
    topics = ", ".join(scope.topics) if scope and scope.topics else "all"
    hub = tisa.instrument.hub.party if tisa.instrument.hub else "none"
    console.print(
        Panel(
            f"TISA on 2019-11-24: {tisa.state.value}; scope: {topics}; hub: {hub}. "
            "Had the GSOMIA lapsed, information between Tokyo and Seoul would have gone through "
            "Washington, limited to these topics and only with the originator's consent.",
            title="The fallback",
        )
    )
    _decisions(registry)
    console.print(
        "Try: gsomia agreements status JPN-KOR-GSOMIA --at 2019-11-23 "
        f"--without {SUSPENSION} --json\n"
        "     gsomia decide --originator JPN --classification 極秘 --rel-to USA,JPN,KOR "
        "--topic dprk-missile --from JPN --to KOR --at 2019-11-24 "
        f"--without {SUSPENSION} --consent JPN"
    )


def _decisions(registry: Registry) -> None:
    """The release decisions of November 2019, recorded and what-if, side by side."""
    console.print(Rule("Release decisions: a Japanese 極秘 report, November 2019"))
    lapsed = registry.what_if(without=[SUSPENSION])
    seoul = zone("Asia/Seoul")
    cases = (
        ("DPRK missile report, JPN → KOR", "dprk-missile", "2019-11-22T12:00", registry),
        ("same, had the GSOMIA lapsed", "dprk-missile", "2019-11-24T12:00", lapsed),
        ("PRC maritime report, had it lapsed", "prc-maritime", "2019-11-24T12:00", lapsed),
        ("PRC maritime report, as it was", "prc-maritime", "2019-11-24T12:00", registry),
    )
    table = Table(title="decide(registry, request, at), with Japan's consent on record")
    for col in ("case", "at (Seoul)", "verdict", "route", "arrives as", "why"):
        table.add_column(col, overflow="fold")
    for title, topic, when, reg in cases:
        label = SecurityLabel(
            originator="JPN",
            policy="JPN",
            classification="gokuhi",
            releasable_to=frozenset({"USA", "JPN", "KOR"}),
            topics=frozenset({topic}),
        )
        request = ReleaseRequest(label, "JPN", "KOR", consents=frozenset({"JPN"}))
        d = decide(reg, request, parse_instant(when, seoul))
        verdict = Text("allowed", style="green") if d.allowed else Text("refused", style="red")
        arrives = ""
        if d.recipient_label is not None:
            arrives = registry.level_by_key(d.recipient_label.level_key).native
        if d.allowed:
            why = f"{d.instruments[-1]}: " + "; ".join(
                o for o in d.obligations if "marks it" in o or "forwards" in o
            )
        else:
            why = "; ".join(o.summary() for o in d.routes_considered)
        table.add_row(title, when, verdict, " → ".join(d.route), arrives, why)
    console.print(table)
