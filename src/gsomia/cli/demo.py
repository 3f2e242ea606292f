"""``gsomia demo``: the main job. Three national nodes play November 2019.

JPN, KOR and USA nodes start on 127.0.0.1 (three processes, SQLite under a directory the demo
names), pin each other's keys, and with fixed clocks:

1. 22 Nov 2019, 12:00 Seoul: a Japanese 極秘 report on DPRK missiles goes JPN→KOR directly under
   the GSOMIA and arrives as 군사II급비밀, marked as provided by Japan.
2. 24 Nov 2019, had Korea not suspended its notice (the GSOMIA lapsed at 00:00 on the 23rd): the
   same report goes JPN→USA→KOR under TISA, re-marked SECRET by the US hub, with Japan's consent.
3. The same day, a report on Chinese maritime activity is refused: TISA covers only DPRK nuclear
   and missile threats.
4. Korea reports the possible compromise of the report it received; the report reaches Japan.
5. On the real clock, since the 2023 trilateral mechanism: a simulated DPRK launch tracked by
   Korea streams KOR→USA→JPN through the US hub, launch to impact, to consoles at Japan and the
   US, with the latency of each hop.

It prints what went where, by which route and instrument, and how long each took; then leaves the
nodes running with their URLs and tokens printed (``--exit`` stops them; ``--stop`` stops nodes a
previous demo left running). ``--json`` prints one JSON object; the exit code is 0 only if every
step ended as the story says.
"""

from __future__ import annotations

import base64
import json as jsonlib
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gsomia.cli.common import console, err_console, print_json, settings
from gsomia.cli.link import latency_cells
from gsomia.link.simulator import DPRK_WEST_COAST, KOR_WARNING_LABEL, Launch, simulate
from gsomia.link.sse import SseParser
from gsomia.link.tracks import to_wire
from gsomia.node.cluster import Cluster

SUSPENSION = "kor-notice-suspension-2019"
BEFORE = "2019-11-22T12:00+09:00"
AFTER = "2019-11-24T12:00+09:00"


def demo(
    ctx: typer.Context,
    data: Path | None = typer.Option(
        None, "--data", metavar="DIR", help="Where the nodes live (default: a new temporary dir)."
    ),
    exit_: bool = typer.Option(False, "--exit", help="Stop the nodes when the story is told."),
    json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    stop: bool = typer.Option(False, "--stop", help="Stop the nodes a demo left in --data."),
) -> None:
    """Start JPN, KOR and USA nodes and play the November 2019 story between them."""
    registry = settings(ctx).registry
    if stop:
        if data is None:
            raise typer.BadParameter("--stop needs --data DIR")
        _stop_left_running(data)
        return
    root = data or Path(tempfile.mkdtemp(prefix="gsomia-demo-"))
    cluster = Cluster(root=root, registry=registry, registry_dirs=settings(ctx).registry_dirs)
    say = (lambda *_a, **_k: None) if json else console.print
    say(Panel(f"Three national nodes in {root}", title="gsomia demo: November 2019"))
    cluster.create(now=datetime.now(UTC))
    steps: list[dict[str, Any]] = []
    incidents: list[dict[str, Any]] = []
    try:
        say(f"22 Nov 2019, 12:00 Seoul: the GSOMIA is in force. Starting nodes at {BEFORE}...")
        cluster.start(clock=BEFORE)
        report = _create(cluster, "JPN", "DPRK ballistic missile launch report", "dprk-missile")
        steps.append(_share(cluster, "1. report, GSOMIA in force", report, "KOR", "delivered"))
        cluster.stop()

        say(f"24 Nov 2019, had Korea not suspended its notice: restarting nodes at {AFTER}...")
        cluster.start(clock=AFTER, without=[SUSPENSION])
        steps.append(_share(cluster, "2. same report, GSOMIA lapsed", report, "KOR", "delivered"))
        maritime = _create(cluster, "JPN", "PLA Navy activity near Tsushima", "prc-maritime")
        steps.append(_share(cluster, "3. PRC maritime report, lapsed", maritime, "KOR", "refused"))
        incidents.append(_incident(cluster, steps[1]))
        cluster.stop()

        say("Since 19 Dec 2023: the missile-warning link. Restarting nodes on the real clock...")
        cluster.start()
        link = _launch(cluster)
        ok = (
            all(s["as_told"] for s in steps)
            and all(i["as_told"] for i in incidents)
            and link["as_told"]
        )
    except BaseException:
        cluster.stop()
        raise
    result = {
        "ok": ok,
        "data_dir": str(root),
        "shares": steps,
        "incidents": incidents,
        "link": link,
        "nodes": {
            p: {"url": n.url, "token": n.token, "user": "officer", "pid": n.process.pid}
            for p, n in cluster.nodes.items()
            if n.process is not None
        },
    }
    (root / "demo.json").write_text(jsonlib.dumps(result, indent=2), encoding="utf-8")
    if exit_:
        cluster.stop()
        result["nodes"] = {}
    if json:
        print_json(result)
    else:
        _show(result, left_running=not exit_)
    raise typer.Exit(0 if ok else 1)


def _create(cluster: Cluster, party: str, title: str, topic: str) -> dict[str, Any]:
    with cluster.nodes[party].client() as client:
        response = client.post(
            "/api/v1/items",
            json={
                "title": title,
                "label": {"classification": "極秘", "topics": [topic], "rel_to": ["USA", "KOR"]},
                "payload": base64.b64encode(f"{title}: details follow.".encode()).decode(),
            },
        )
        response.raise_for_status()
        item: dict[str, Any] = response.json()
        return item


def _share(
    cluster: Cluster, step: str, item: dict[str, Any], to: str, expected: str
) -> dict[str, Any]:
    sender = item["label"]["originator"]
    with cluster.nodes[sender].client() as client:
        started = time.perf_counter()
        response = client.post(f"/api/v1/items/{item['id']}/shares", json={"recipient": to})
        response.raise_for_status()
        share: dict[str, Any] = response.json()
    if share["status"] in ("queued", "relayed"):
        share = cluster.wait_for_share(
            sender, share["id"], until=("delivered", "refused", "failed"), timeout=30
        )
    elapsed = (time.perf_counter() - started) * 1000
    arrived = None
    if share["status"] == "delivered":
        with cluster.nodes[to].client() as client:
            found = client.get("/api/v1/items", params={"topic": item["label"]["topics"][0]})
            rows = [r for r in found.json()["items"] if r["title"] == item["title"]]
            if rows:
                arrived = rows[-1]["level"]["native"]
    return {
        "step": step,
        "from": sender,
        "to": to,
        "route": share["route"],
        "instrument": share["instrument"],
        "instruments": share["instruments"],
        "status": share["status"],
        "latency_ms": share["latency_ms"] if share["latency_ms"] is not None else round(elapsed, 1),
        "arrived_as": arrived,
        "reasons": share["reasons"],
        "share_id": share["id"],
        "as_told": share["status"] == expected,
    }


def _incident(cluster: Cluster, delivered: dict[str, Any]) -> dict[str, Any]:
    """Korea reports the possible compromise of what it received; Japan must hear of it."""
    with cluster.nodes["KOR"].client() as client:
        items = client.get("/api/v1/items", params={"originator": "JPN"}).json()["items"]
        if not items:
            return {"as_told": False, "detail": "KOR holds no Japanese item"}
        response = client.post(
            f"/api/v1/items/{items[-1]['id']}/incidents",
            json={
                "kind": "possible-compromise",
                "description": "A courier's bag with a printed copy went missing for two hours.",
            },
        )
        response.raise_for_status()
        sent: dict[str, Any] = response.json()
    deadline = time.monotonic() + 30
    with cluster.nodes["JPN"].client() as client:
        while time.monotonic() < deadline:
            received = [
                i for i in client.get("/api/v1/incidents").json()["items"] if i["id"] == sent["id"]
            ]
            if received:
                return {
                    "id": sent["id"],
                    "from": "KOR",
                    "to": "JPN",
                    "kind": sent["kind"],
                    "received_at_originator": True,
                    "as_told": True,
                }
            time.sleep(0.02)
    return {"id": sent["id"], "from": "KOR", "to": "JPN", "as_told": False}


def _watch(cluster: Cluster, party: str, seen: list[dict[str, Any]], ready: Any) -> None:
    """A console at ``party``: the SSE stream of the link, into ``seen``."""
    node = cluster.nodes[party]
    headers = {"Authorization": f"Bearer {node.token}"}
    parser = SseParser()
    with httpx.stream(
        "GET", node.url + "/api/v1/link/stream", headers=headers, timeout=None
    ) as response:
        ready.set()
        for line in response.iter_lines():
            event = parser.feed(line)
            if event is not None and event.event == "update":
                seen.append(event.json())
                if seen[-1]["phase"] == "impact":
                    return


def _launch(cluster: Cluster) -> dict[str, Any]:
    """A simulated DPRK launch into the Sea of Japan, tracked by Korea, through the link."""
    import threading

    launch = Launch(DPRK_WEST_COAST, datetime.now(UTC), 95.0, 600.0, rate_hz=1.0)
    wires = [
        to_wire(u) for u in simulate(launch, f"KOR-{launch.time:%Y%m%d%H%M%S}", KOR_WARNING_LABEL)
    ]
    seen: dict[str, list[dict[str, Any]]] = {"JPN": [], "USA": []}
    watchers = []
    for party, events in seen.items():
        ready = threading.Event()
        t = threading.Thread(target=_watch, args=(cluster, party, events, ready), daemon=True)
        t.start()
        ready.wait(10)
        watchers.append(t)
    with cluster.nodes["KOR"].client(timeout=30) as client:
        for i in range(0, len(wires), 50):
            client.post("/api/v1/link/updates", json={"updates": wires[i : i + 50]})
    for t in watchers:
        t.join(30)
    with cluster.nodes["JPN"].client() as client:
        stats = client.get("/api/v1/link/stats").json()
    route = next((r for r in stats["routes"] if r["route"][0] == "KOR"), None)
    in_order = {p: [e["seq"] for e in ev] == list(range(len(wires))) for p, ev in seen.items()}
    return {
        "updates": len(wires),
        "route": route["route"] if route else [],
        "hops": route["hops"] if route else [],
        "end_to_end": route["end_to_end"] if route else None,
        "received": {p: len(ev) for p, ev in seen.items()},
        "marked_at_jpn": seen["JPN"][-1]["label"]["classification"] if seen["JPN"] else None,
        "as_told": all(in_order.values()) and route is not None and route["route"][1] == "USA",
    }


def _show(result: dict[str, Any], *, left_running: bool) -> None:
    table = Table(title="What went where")
    for col in ("step", "route", "instrument", "status", "arrives as", "ms"):
        table.add_column(col, overflow="fold")
    for s in result["shares"]:
        status = Text(s["status"], style="green" if s["status"] == "delivered" else "red")
        if not s["as_told"]:
            status.append(" (not as the story says)", style="bold red")
        table.add_row(
            s["step"],
            " → ".join(s["route"]),
            ", ".join(dict.fromkeys(s["instruments"])) or "—",
            status,
            s["arrived_as"] or "—",
            f"{s['latency_ms']:.0f}" if s["latency_ms"] is not None else "—",
        )
    console.print(table)
    for s in result["shares"]:
        if s["status"] == "refused":
            console.print(Text(f"{s['step']}: refused because {'; '.join(s['reasons'])}"))
    for i in result["incidents"]:
        heard = "reached" if i.get("received_at_originator") else "did NOT reach"
        console.print(
            Text(f"4. KOR's {i.get('kind', 'incident')} report {heard} JPN, the originator")
        )
    link = result.get("link")
    if link:
        grid = Table(title=f"5. Missile warning, launch to impact: {link['updates']} updates")
        for col in ("segment", "p50 ms", "p99 ms", "max ms"):
            grid.add_column(col, justify="left" if col == "segment" else "right")
        for h in link["hops"]:
            grid.add_row(f"{h['from']} → {h['to']}", *latency_cells(h))
        if link["end_to_end"]:
            grid.add_row("KOR intake → JPN console", *latency_cells(link["end_to_end"]))
        console.print(grid)
        received = ", ".join(f"{p} {n}" for p, n in link["received"].items())
        console.print(
            Text(
                f"5. route {' → '.join(link['route']) or '—'}; consoles received {received}"
                + ("" if link["as_told"] else " (not as the story says)"),
                style="" if link["as_told"] else "bold red",
            )
        )
    verdict = "every step ended as the story says" if result["ok"] else "a step went wrong"
    console.print(Text(verdict, style="bold green" if result["ok"] else "bold red"))
    if left_running and result["nodes"]:
        grid = Table(title="Nodes left running (user 'officer')")
        for col in ("party", "URL", "token"):
            grid.add_column(col)
        for party, n in result["nodes"].items():
            grid.add_row(party, n["url"], n["token"])
        console.print(grid)
        console.print(
            f"Try: curl -H 'Authorization: Bearer <token>' {result['nodes']['KOR']['url']}"
            "/api/v1/items\n"
            f"Stop them with: gsomia demo --stop --data {result['data_dir']}"
        )


def _stop_left_running(root: Path) -> None:
    import os
    import signal

    state = root / "demo.json"
    if not state.exists():
        err_console.print(f"no demo in {root}")
        raise typer.Exit(2)
    nodes = jsonlib.loads(state.read_text(encoding="utf-8")).get("nodes", {})
    for party, info in nodes.items():
        try:
            if httpx.get(info["url"] + "/health", timeout=1).json().get("party") != party:
                continue  # the port now belongs to something else: never signal a stranger
            os.kill(int(info["pid"]), signal.SIGTERM)
            console.print(f"stopped {party} ({info['url']})")
        except (OSError, httpx.HTTPError, ValueError):
            console.print(f"{party} was not running")
