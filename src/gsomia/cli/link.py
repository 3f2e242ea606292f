"""``gsomia link``: the missile-warning link: ``simulate`` a launch, ``stats`` of a running node."""

from __future__ import annotations

import json
import sys
from datetime import UTC

import typer
from rich.table import Table

from gsomia.cli.client import JSON, NODE, TOKEN, _call
from gsomia.cli.common import console, now, print_json, settings
from gsomia.core.errors import InputError
from gsomia.core.labels import SecurityLabel
from gsomia.core.time import parse_instant
from gsomia.link.simulator import Launch, simulate
from gsomia.link.tracks import GeoPoint, TrackUpdate, to_wire

link_app = typer.Typer(help="The real-time missile-warning link (the 2023 trilateral mechanism).")


@link_app.callback()
def _group() -> None:
    """The real-time missile-warning link (the 2023 trilateral mechanism)."""


def _site(text: str) -> GeoPoint:
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        lat, lon = (float(p) for p in parts)
    except ValueError:
        raise InputError(f"--from must be LAT,LON in degrees, not {text!r}") from None
    return GeoPoint(lat, lon)


def _row(u: TrackUpdate) -> list[str]:
    s = u.latest
    assert s is not None  # the simulator puts one sample in every update
    impact = (
        f"{u.impact_point.lat:.3f}, {u.impact_point.lon:.3f}" if u.impact_point is not None else "—"
    )
    return [
        str(u.seq),
        f"{(s.time - u.launch_time).total_seconds():.1f}",
        u.phase.value,
        f"{s.lat:.3f}",
        f"{s.lon:.3f}",
        f"{s.alt_m / 1000:.1f}",
        f"{s.velocity_mps:.0f}",
        impact,
    ]


@link_app.command("simulate")
def simulate_command(
    ctx: typer.Context,
    site: str = typer.Option(
        "39.0,125.7", "--from", metavar="LAT,LON", help="Launch site in degrees."
    ),
    azimuth: float = typer.Option(90.0, "--azimuth", help="Degrees clockwise from true north."),
    range_km: float = typer.Option(1000.0, "--range-km", help="Ground range in kilometres."),
    rate: float = typer.Option(1.0, "--rate", help="Updates per second."),
    at: str | None = typer.Option(
        None,
        "--at",
        metavar="INSTANT",
        help="Launch time (ISO 8601; UTC without offset). Default: now.",
    ),
    originator: str = typer.Option("KOR", "--originator", help="Party whose sensors track it."),
    level: str | None = typer.Option(
        None, "--level", help="Classification in the originator's scheme (default: its lowest)."
    ),
    track_id: str = typer.Option("sim-1", "--track-id", help="Track id of the simulated flight."),
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON lines (the wire form of each update)."
    ),
) -> None:
    """Simulate a ballistic launch and print its track updates, from launch to impact."""
    registry = settings(ctx).registry
    party = registry.party(originator)
    scheme = registry.scheme_of(party.code)
    if scheme is None:
        raise InputError(f"party {party.code} has no classification scheme in the registry")
    classification = registry.level(party.code, level).id if level else scheme.levels[0].id
    launch_time = parse_instant(at, UTC) if at is not None else now()
    label = SecurityLabel(
        originator=party.code,
        policy=scheme.id,
        classification=classification,
        releasable_to=frozenset({"JPN", "KOR", "USA"}),
        topics=frozenset({"dprk-missile"}),
        created=launch_time,
    )
    launch = Launch(_site(site), launch_time, azimuth, range_km, rate)
    updates = simulate(launch, track_id, label)
    if as_json:
        for u in updates:
            sys.stdout.write(json.dumps(to_wire(u), ensure_ascii=False) + "\n")
        return
    table = Table(title=f"Track {track_id}: {range_km:g} km at {azimuth:g}° from {site}")
    for name in ("seq", "t (s)", "phase", "lat", "lon", "alt km", "speed m/s", "est. impact"):
        table.add_column(name, justify="left" if name in ("phase", "est. impact") else "right")
    for u in updates:
        table.add_row(*_row(u))
    console.print(table)


def latency_cells(p: dict[str, float]) -> list[str]:
    """p50, p99 and max of a latency summary, in milliseconds, as table cells."""
    return [f"{p[k]:.1f}" for k in ("p50_ms", "p99_ms", "max_ms")]


@link_app.command("stats")
def stats_command(
    node: str | None = NODE,
    token: str | None = TOKEN,
    as_json: bool = JSON,
) -> None:
    """Latency of the updates a running node published: per hop and end to end (p50/p99/max).

    A hop runs from one node's intake to the next one's (processing, signing, the network);
    "publish" from this node's intake to its subscribers (journal commit included); "end to
    end" from the originator's intake to publication here. Wall clock, the recent window.
    """
    result = _call("GET", "/api/v1/link/stats", node, token)
    if as_json:
        print_json(result)
        return
    table = Table(title=f"Link latency at {result['party']} (ms, last {result['window']:,})")
    for name in ("route", "updates", "segment", "p50", "p99", "max"):
        table.add_column(name, justify="left" if name in ("route", "segment") else "right")
    for r in result["routes"]:
        route = " → ".join(r["route"])
        rows = [(f"{h['from']} → {h['to']}", h) for h in r["hops"]]
        rows += [("publish", r["publish"]), ("end to end", r["end_to_end"])]
        for i, (segment, p) in enumerate(rows):
            table.add_row(
                route if i == 0 else "",
                f"{r['count']:,}" if i == 0 else "",
                segment,
                *latency_cells(p),
            )
    console.print(table)
    consents = result.get("consents") or {}
    if consents.get("asked"):
        console.print(
            f"consent round trips: {consents['asked']} asked, {consents['granted']} granted"
        )
