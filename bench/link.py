"""The missile-warning link: updates per second and ingest-to-subscriber latency, side by side,
for a direct JPN↔KOR link, the hub route, and the hub route with a consent round trip per update.

    .venv/bin/python bench/link.py            # full run (a few minutes)
    .venv/bin/python bench/link.py --quick    # under a minute on a quiet machine
    .venv/bin/python bench/link.py --json     # one JSON object on stdout, nothing else

Each route runs on its own cluster of real ``gsomia node serve`` processes on 127.0.0.1 (own
SQLite file each, own keys, each pinning the others'), with the real clock:

- ``direct``: KOR and JPN served under the what-if instrument of
  examples/what-if-direct-link (no hub): KOR → JPN, one recipient;
- ``hub``: KOR, USA and JPN under the 2023 trilateral mechanism: KOR → USA → JPN, and USA itself,
  two recipients;
- ``hub+consent``: the same three under TISA, whose hub forwards only with the originator's
  consent (para 4): USA asks KOR for each update before forwarding it to JPN.

A producer at KOR streams the updates of simulated flights (bench-generated with
gsomia.link.simulator, 600 km into the Sea of Japan) over ``WS /api/v1/link/ingest``; one console
per recipient node is subscribed over SSE (``GET /api/v1/link/stream``) as a cleared officer.

- Throughput: the producer sends as fast as KOR acknowledges (at most ``--window`` updates
  unacknowledged); updates/s = updates seen by every recipient's subscriber / (the last one seen −
  the first sent), wall clock.
- Latency at 200 updates/s (open loop: updates are due on a fixed schedule, a late send counts
  against the system): for every update at every recipient, the subscriber's receive time − the
  time KOR took it in (the ``in`` stamp of the first hop in the event, the same wall clock).
  p50, p99 and max per route; each node's own per-hop figures come from ``/api/v1/link/stats``.

Targets (issue 8): at least 2,000 updates/s through the hub to two recipients; p99 at most 20 ms
direct and at most 40 ms through the hub at 200 updates/s. The exit status is 1 when an update was
lost, duplicated or reordered at a subscriber; speed never fails the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import websockets
from rich.console import Console
from rich.table import Table

from gsomia import load_registry
from gsomia.link.simulator import DPRK_WEST_COAST, KOR_WARNING_LABEL, Launch, simulate
from gsomia.link.sse import SseParser
from gsomia.link.tracks import to_wire
from gsomia.node.cluster import Cluster
from gsomia.node.link import percentiles

ROOT = Path(__file__).resolve().parents[1]
WHATIF = str(ROOT / "examples" / "what-if-direct-link")
RATE = 200.0  # updates/s offered in the latency run (issue 8)


@dataclass(frozen=True)
class Route:
    name: str
    parties: tuple[str, ...]
    under: str
    recipients: tuple[str, ...]
    registry_dirs: tuple[str, ...] = ()


ROUTES = (
    Route("direct", ("KOR", "JPN"), "WHATIF-JPN-KOR-DIRECT-LINK", ("JPN",), (WHATIF,)),
    Route("hub", ("KOR", "USA", "JPN"), "TRILATERAL-MISSILE-WARNING-2023", ("USA", "JPN")),
    Route("hub+consent", ("KOR", "USA", "JPN"), "TISA", ("USA", "JPN")),
)


def flights(total: int, prefix: str) -> list[dict[str, Any]]:
    """``total`` wire updates: flights of 600 km sampled at 10 Hz (about 3,600 updates each)."""
    out: list[dict[str, Any]] = []
    n = 0
    while len(out) < total:
        launch = Launch(
            site=DPRK_WEST_COAST,
            time=datetime.now(UTC),
            azimuth_deg=95.0,
            range_km=600.0,
            rate_hz=10.0,
        )
        for update in simulate(launch, f"{prefix}-{n}", KOR_WARNING_LABEL):
            out.append(to_wire(update))
            if len(out) == total:
                break
        n += 1
    return out


@dataclass
class Watch:
    """One recipient's console: what it received, when."""

    party: str
    seen: dict[tuple[str, int], int] = field(default_factory=dict)  # key → receive ns
    latency_ms: list[float] = field(default_factory=list)
    disorder: int = 0
    duplicates: int = 0
    last_seq: dict[str, int] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    expect: int = 0
    prefix: str = ""


async def subscribe(url: str, token: str, watch: Watch) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(timeout=None) as client,
        client.stream("GET", url + "/api/v1/link/stream", headers=headers) as response,
    ):
        watch.ready.set()
        parser = SseParser()
        async for line in response.aiter_lines():
            event = parser.feed(line)
            if event is None or event.event != "update":
                continue
            now = time.time_ns()
            data = json.loads(event.data)
            track, seq = data["track_id"], data["seq"]
            if not track.startswith(watch.prefix):
                continue
            key = (track, seq)
            if key in watch.seen:
                watch.duplicates += 1
                continue
            if seq != watch.last_seq.get(track, -1) + 1:
                watch.disorder += 1
            watch.last_seq[track] = seq
            watch.seen[key] = now
            watch.latency_ms.append((now - data["hops"][0]["in"]) / 1e6)
            if len(watch.seen) >= watch.expect:
                watch.done.set()


async def produce(
    url: str, token: str, wires: list[dict[str, Any]], *, rate: float | None, window: int
) -> tuple[int, int]:
    """Send ``wires``; as fast as acknowledged (``rate`` None) or on a fixed schedule."""
    ws_url = "ws" + url[len("http") :] + "/api/v1/link/ingest"
    acked = 0
    refused = 0
    slots = asyncio.Semaphore(window)
    async with websockets.connect(
        ws_url,
        additional_headers={"Authorization": f"Bearer {token}"},
        max_size=None,
        compression=None,
    ) as ws:

        async def read() -> None:
            nonlocal acked, refused
            async for raw in ws:
                msg = json.loads(raw)
                n = len(msg.get("k", ())) if msg.get("t") == "a" else 1
                if msg.get("t") == "r":
                    refused += 1
                else:
                    acked += n
                for _ in range(n):
                    slots.release()
                if acked + refused >= len(wires):
                    return

        reader = asyncio.create_task(read())
        start = time.perf_counter()
        batch: list[dict[str, Any]] = []
        for i, wire in enumerate(wires):
            if rate is not None:
                due = start + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)  # the open-loop schedule
                await slots.acquire()
                await ws.send(json.dumps(wire))
                continue
            await slots.acquire()
            batch.append(wire)
            if len(batch) >= 64 or i == len(wires) - 1 or slots.locked():
                await ws.send(json.dumps(batch))
                batch = []
        await asyncio.wait_for(reader, timeout=300)
    return acked, refused


async def run_route(
    route: Route, cluster: Cluster, *, total: int, seconds: float, window: int, tag: str
) -> dict[str, Any]:
    kor = cluster.nodes["KOR"]
    results: dict[str, Any] = {"route": route.name, "recipients": list(route.recipients)}

    async def phase(wires: list[dict[str, Any]], rate: float | None, prefix: str) -> dict[str, Any]:
        watches = [Watch(p, expect=len(wires), prefix=prefix) for p in route.recipients]
        tasks = [
            asyncio.create_task(
                subscribe(cluster.nodes[w.party].url, cluster.nodes[w.party].token, w)
            )
            for w in watches
        ]
        for w in watches:
            await asyncio.wait_for(w.ready.wait(), 30)
        first = time.time_ns()
        acked, refused = await produce(kor.url, kor.token, wires, rate=rate, window=window)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(w.done.wait() for w in watches)), 120)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        last = max((max(w.seen.values()) for w in watches if w.seen), default=first)
        complete = all(len(w.seen) == len(wires) for w in watches)
        lat = [x for w in watches for x in w.latency_ms]
        return {
            "updates": len(wires),
            "acknowledged": acked,
            "refused": refused,
            "complete": complete,
            "disorder": sum(w.disorder for w in watches),
            "duplicates": sum(w.duplicates for w in watches),
            "missing": sum(len(wires) - len(w.seen) for w in watches),
            "received": {w.party: len(w.seen) for w in watches},
            "seconds": (last - first) / 1e9,
            "updates_per_s": len(wires) / ((last - first) / 1e9) if last > first else math.nan,
            **percentiles(lat),
        }

    results["throughput"] = await phase(flights(total, f"T{tag}"), None, f"T{tag}")
    results["at_200"] = await phase(flights(int(RATE * seconds), f"L{tag}"), RATE, f"L{tag}")
    async with httpx.AsyncClient(timeout=10) as client:
        hops = {}
        for p in route.recipients:
            node = cluster.nodes[p]
            r = await client.get(
                node.url + "/api/v1/link/stats", headers={"Authorization": f"Bearer {node.token}"}
            )
            hops[p] = r.json()
    results["node_stats"] = hops
    return results


def bench(
    *,
    quick: bool,
    window: int,
    reps: int,
    say: Any,
    total: int | None = None,
    seconds: float | None = None,
) -> dict[str, Any]:
    total = total or (3_000 if quick else 20_000)
    seconds = seconds or (5.0 if quick else 20.0)
    runs: dict[str, list[dict[str, Any]]] = {r.name: [] for r in ROUTES}
    with tempfile.TemporaryDirectory(prefix="gsomia-bench-link-") as tmp:
        for route in ROUTES:
            registry = load_registry(route.registry_dirs)
            cluster = Cluster(
                root=Path(tmp) / route.name.replace("+", "-"),
                registry=registry,
                parties=route.parties,
                registry_dirs=route.registry_dirs,
                link_under=(route.under,),
            )
            cluster.create(now=datetime.now(UTC))
            cluster.start()
            try:
                for rep in range(reps):
                    say(f"{route.name}: repetition {rep + 1} of {reps}")
                    runs[route.name].append(
                        asyncio.run(
                            run_route(
                                route,
                                cluster,
                                total=total,
                                seconds=seconds,
                                window=window,
                                tag=f"{route.name}-{rep}",
                            )
                        )
                    )
            finally:
                cluster.stop()
    summary: dict[str, Any] = {}
    for name, rs in runs.items():
        summary[name] = {
            "updates_per_s": statistics.median(r["throughput"]["updates_per_s"] for r in rs),
            "p50_ms": statistics.median(r["at_200"]["p50_ms"] for r in rs),
            "p99_ms": statistics.median(r["at_200"]["p99_ms"] for r in rs),
            "max_ms": statistics.median(r["at_200"]["max_ms"] for r in rs),
            "throughput_p99_ms": statistics.median(r["throughput"]["p99_ms"] for r in rs),
            "lossless": all(
                p["complete"] and not p["disorder"] and not p["duplicates"]
                for r in rs
                for p in (r["throughput"], r["at_200"])
            ),
        }
    hub, direct, consent = summary["hub"], summary["direct"], summary["hub+consent"]
    ratios = {
        "hub_vs_direct_rate": hub["updates_per_s"] / direct["updates_per_s"],
        "consent_vs_hub_rate": consent["updates_per_s"] / hub["updates_per_s"],
        "hub_vs_direct_p99": hub["p99_ms"] / direct["p99_ms"],
        "consent_vs_hub_p99": consent["p99_ms"] / hub["p99_ms"],
    }
    targets = {
        "hub_updates_per_s_at_least_2000": hub["updates_per_s"] >= 2000,
        "direct_p99_at_most_20_ms": direct["p99_ms"] <= 20,
        "hub_p99_at_most_40_ms": hub["p99_ms"] <= 40,
    }
    return {
        "benchmark": "link",
        "quick": quick,
        "updates_throughput": total,
        "seconds_at_200": seconds,
        "window": window,
        "repetitions": reps,
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "routes": summary,
        "ratios": ratios,
        "targets": targets,
        "runs": runs,
    }


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run, under a minute")
    parser.add_argument("--json", action="store_true", help="print one JSON object, nothing else")
    parser.add_argument("--window", type=int, default=512, help="unacknowledged updates at most")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per route")
    parser.add_argument("--updates", type=int, default=None, help="updates in the rate run")
    parser.add_argument("--seconds", type=float, default=None, help="seconds at 200 updates/s")
    args = parser.parse_args(argv)
    reps = args.reps or (1 if args.quick else 3)
    console = Console(stderr=True)

    def say(text: str) -> None:
        if not args.json:
            console.print(text)

    result = bench(
        quick=args.quick,
        window=args.window,
        reps=reps,
        say=say,
        total=args.updates,
        seconds=args.seconds,
    )
    if args.json:
        print(json.dumps(result))
    else:
        table = Table(title="Missile-warning link: KOR → recipients (medians)")
        for col in ("route", "recipients", "updates/s", "p50 ms @200/s", "p99 ms @200/s", "max ms"):
            table.add_column(col, justify="right" if "ms" in col or "/s" in col else "left")
        for route in ROUTES:
            s = result["routes"][route.name]
            table.add_row(
                route.name,
                ", ".join(route.recipients),
                f"{s['updates_per_s']:,.0f}",
                f"{s['p50_ms']:.1f}",
                f"{s['p99_ms']:.1f}",
                f"{s['max_ms']:.1f}",
            )
        Console().print(table)
        r = result["ratios"]
        Console().print(
            f"hub/direct rate {r['hub_vs_direct_rate']:.2f}, consent/hub rate "
            f"{r['consent_vs_hub_rate']:.2f}; hub/direct p99 {r['hub_vs_direct_p99']:.2f}, "
            f"consent/hub p99 {r['consent_vs_hub_p99']:.2f}"
        )
        for name, ok in result["targets"].items():
            Console().print(f"target {name}: {'met' if ok else 'NOT met'}")
    lossless = all(s["lossless"] for s in result["routes"].values())
    return 0 if lossless else 1


if __name__ == "__main__":
    sys.exit(main())
