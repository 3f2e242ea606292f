"""Items created and read per second through the node's HTTP API, against a bare ceiling app.

    .venv/bin/python bench/node.py            # full run (a few minutes)
    .venv/bin/python bench/node.py --quick    # under a minute
    .venv/bin/python bench/node.py --json     # one JSON object on stdout, nothing else

For each database engine (SQLite, and PostgreSQL when reachable) two servers run side by side in
their own processes on 127.0.0.1, each a single uvicorn worker:

- ``gsomia``: the node, set up and served by its own CLI (``gsomia node init``, ``gsomia users
  add``, ``gsomia node serve``): bearer-token authentication, label validation, clearance and
  need-to-know checks, the access register and the ledger written in the same transaction as the
  act, the item's JSON with its markings in the response. Creates and reads go through the node's
  group commit: the acts of concurrent requests share one transaction and one commit, and each
  request is answered only once that commit is durable (so every read is a durable write).
- ``ceiling``: bench/_ceiling_app.py, a bare FastAPI endpoint that stores the same request (title,
  label JSON, base64 payload) with one plain INSERT and returns the payload by id, with no checks.
  It uses ``gsomia.store.engine`` too, so the engine settings are the node's (SQLite: WAL,
  synchronous=FULL, BEGIN IMMEDIATE behind one writer lock; PostgreSQL: psycopg 3, same pool),
  and it writes to the same database (the node's SQLite file; the same PostgreSQL schema). It
  commits each request on its own, as a bare endpoint does; its reads write nothing. With
  concurrent clients the node's creates can therefore outrun it (one commit for several).

The load is the same for both: N client threads (default 4), each with its own keep-alive
``httpx.Client``, sending the same pre-encoded requests: creates of 1 KiB random payloads
(``POST``, expecting 201), then reads of the payloads just created (``GET .../payload``, expecting
200 and the exact bytes). Every response is checked after the clock stops. The two servers take
turns, the order alternating between repetitions; figures are medians over the repetitions (the
machine is shared). PostgreSQL runs in a freshly created schema (``GSOMIA_BENCH_DATABASE_URL``, else
``GSOMIA_TEST_DATABASE_URL``, else postgresql+psycopg://postgres@127.0.0.1:5432/test), dropped
afterwards; when the server is unreachable the engine is skipped with a note.

Target (issue 4): the node at least 50% of the ceiling's rate, for creates and for reads, on each
engine. The exit status is 1 when any request failed; speed never fails the run.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from _serve import Server, child_env, serve  # bench/_serve.py

BENCH_DIR = Path(__file__).resolve().parent
CEILING_SCRIPT = BENCH_DIR / "_ceiling_app.py"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

PARTY = "JPN"
CLASSIFICATION, TOPIC = "gokuhi", "dprk-missile"
LABEL = {"classification": CLASSIFICATION, "topics": [TOPIC], "rel_to": ["USA", "KOR"]}
PAYLOAD_BYTES = 1024
TARGET_RATIO = 0.5

# Requests per phase (creates, then reads of those items) per server and repetition.
FULL = {"requests": 1000, "warmup": 100, "reps": 5}
QUICK = {"requests": 200, "warmup": 30, "reps": 3}

APPS = ("gsomia", "ceiling")
OPS = ("create", "read")


# -- servers ----------------------------------------------------------------------------------


def gsomia_command() -> list[str]:
    script = Path(sys.executable).with_name("gsomia")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from gsomia.cli.main import run; run()"]


def run_cli(args: Sequence[str]) -> str:
    done = subprocess.run(
        [*gsomia_command(), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=child_env(),
    )
    if done.returncode != 0:
        raise RuntimeError(f"gsomia {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout


# -- databases --------------------------------------------------------------------------------


def postgresql_url() -> str:
    return (
        os.environ.get("GSOMIA_BENCH_DATABASE_URL")
        or os.environ.get("GSOMIA_TEST_DATABASE_URL")
        or DEFAULT_PG_URL
    )


def _psycopg(url: str) -> str:
    scheme, rest = url.split("://", 1)
    if scheme.startswith("postgresql") and "+psycopg" not in scheme:
        scheme = "postgresql+psycopg"
    return f"{scheme}://{rest}"


@contextlib.contextmanager
def postgresql_schema(url: str) -> Iterator[tuple[str, str]]:
    """A fresh schema on ``url``: (its URL with search_path set, the server's version)."""
    name = f"gsomia_bench_{uuid.uuid4().hex[:16]}"
    admin = create_engine(_psycopg(url), poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with admin.begin() as connection:
            server_version = str(connection.execute(text("SHOW server_version")).scalar_one())
            connection.execute(text(f'CREATE SCHEMA "{name}"'))
        scoped = make_url(_psycopg(url)).update_query_dict({"options": f"-csearch_path={name}"})
        try:
            yield scoped.render_as_string(hide_password=False), server_version
        finally:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    finally:
        admin.dispose()


def redact(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


# -- load -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    body: bytes | None = None


@dataclass
class Phase:
    """One timed batch of calls against one server: timings and the raw responses."""

    wall: float
    latencies: list[float]
    statuses: list[int]  # 0 for a transport error
    bodies: list[bytes]
    errors: list[str]
    server_cpu: float | None
    client_cpu: float


def run_calls(server: Server, calls: Sequence[Call], token: str | None, threads: int) -> Phase:
    """``calls`` split over ``threads`` keep-alive clients; the clock runs from a common start."""
    n = len(calls)
    latencies = [0.0] * n
    statuses = [0] * n
    bodies = [b""] * n
    errors: list[str] = []
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    ready = threading.Barrier(threads + 1)

    def work(offset: int) -> None:
        with httpx.Client(base_url=server.url, headers=headers, timeout=60.0) as client:
            client.get("/health")  # open the keep-alive connection before the clock starts
            ready.wait()
            for i in range(offset, n, threads):
                call = calls[i]
                start = time.perf_counter()
                try:
                    response = client.request(call.method, call.path, content=call.body)
                except httpx.HTTPError as e:
                    errors.append(f"{call.method} {call.path}: {e!r}")
                    latencies[i] = time.perf_counter() - start
                    continue
                latencies[i] = time.perf_counter() - start
                statuses[i] = response.status_code
                bodies[i] = response.content

    workers = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(threads)]
    for w in workers:
        w.start()
    ready.wait(timeout=60)
    cpu0, client0, t0 = server.cpu_seconds(), time.process_time(), time.perf_counter()
    for w in workers:
        w.join()
    wall = time.perf_counter() - t0
    client_cpu = time.process_time() - client0
    cpu1 = server.cpu_seconds()
    server_cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    return Phase(wall, latencies, statuses, bodies, errors, server_cpu, client_cpu)


@dataclass
class App:
    """One server under test, with what it needs to build and check its calls."""

    name: str
    server: Server
    token: str | None
    create_path: str
    read_path: Callable[[str], str]
    stored: dict[str, bytes] = field(default_factory=dict)  # id -> payload, as created


@dataclass
class Outcome:
    rate: float
    p50_ms: float
    p99_ms: float
    requests: int
    succeeded: int
    server_cpu_ms_per_request: float | None
    client_cpu_ms_per_request: float
    failures: list[str]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    index = max(0, min(len(sorted_values) - 1, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def summarise(phase: Phase, ok: list[bool], failures: list[str]) -> Outcome:
    n = len(phase.latencies)
    lat = sorted(phase.latencies)
    return Outcome(
        rate=n / phase.wall,
        p50_ms=percentile(lat, 0.50) * 1e3,
        p99_ms=percentile(lat, 0.99) * 1e3,
        requests=n,
        succeeded=sum(ok),
        server_cpu_ms_per_request=None if phase.server_cpu is None else phase.server_cpu / n * 1e3,
        client_cpu_ms_per_request=phase.client_cpu / n * 1e3,
        failures=(phase.errors + failures)[:5],
    )


def create_calls(app: App, payloads: Sequence[bytes], tag: str) -> list[Call]:
    calls = []
    for i, data in enumerate(payloads):
        body = {
            "title": f"bench {tag} {i}",
            "label": LABEL,
            "payload": base64.b64encode(data).decode("ascii"),
        }
        calls.append(Call("POST", app.create_path, json.dumps(body).encode()))
    return calls


def do_creates(
    app: App, payloads: Sequence[bytes], tag: str, threads: int
) -> tuple[Outcome, list[str]]:
    phase = run_calls(app.server, create_calls(app, payloads, tag), app.token, threads)
    ok: list[bool] = []
    failures: list[str] = []
    ids: list[str] = []
    for status, body, data in zip(phase.statuses, phase.bodies, payloads, strict=True):
        item_id = None
        if status == 201:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                item_id = str(json.loads(body)["id"])
        ok.append(item_id is not None)
        if item_id is None:
            if status:
                failures.append(f"create: HTTP {status}: {body[:200]!r}")
            continue
        app.stored[item_id] = data
        ids.append(item_id)
    return summarise(phase, ok, failures), ids


def do_reads(app: App, ids: Sequence[str], threads: int) -> Outcome:
    calls = [Call("GET", app.read_path(i)) for i in ids]
    phase = run_calls(app.server, calls, app.token, threads)
    ok: list[bool] = []
    failures: list[str] = []
    for item_id, status, body in zip(ids, phase.statuses, phase.bodies, strict=True):
        good = status == 200 and body == app.stored.get(item_id)
        ok.append(good)
        if not good and status:
            failures.append(f"read {item_id}: HTTP {status}, {len(body)} bytes")
    return summarise(phase, ok, failures)


# -- one engine -------------------------------------------------------------------------------


def setup_node(data: Path, database_url: str | None) -> str:
    """A JPN node in ``data`` and an officer cleared for the bench's label: their token."""
    init = ["node", "init", "--party", PARTY, "--data", str(data), "--json"]
    if database_url is not None:
        init += ["--database-url", database_url]
    run_cli(init)
    added = run_cli(
        [
            "users", "add", "bench-officer", "--data", str(data), "--role", "officer",
            "--clearance", CLASSIFICATION, "--need-to-know", TOPIC, "--json",
        ]
    )  # fmt: skip
    token: str = json.loads(added)["token"]
    return token


def bench_engine(
    engine: str,
    database_url: str | None,
    workdir: Path,
    sizes: dict[str, int],
    threads: int,
    seed: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    data = workdir / f"{engine}-node"
    token = setup_node(data, database_url)
    db_url = database_url or f"sqlite:///{(data / 'node.db').as_posix()}"
    rng = random.Random(f"{seed}-{engine}")
    n, warm, reps = sizes["requests"], sizes["warmup"], sizes["reps"]
    node_cmd = [*gsomia_command(), "node", "serve", "--data", str(data)]
    ceiling_cmd = [sys.executable, str(CEILING_SCRIPT), "--database", db_url]
    samples: dict[str, dict[str, list[Outcome]]] = {a: {op: [] for op in OPS} for a in APPS}
    with (
        serve(f"{engine}-gsomia", node_cmd, workdir) as node_server,
        serve(f"{engine}-ceiling", ceiling_cmd, workdir) as ceiling_server,
    ):
        apps = {
            "gsomia": App(
                "gsomia",
                node_server,
                token,
                "/api/v1/items",
                lambda i: f"/api/v1/items/{i}/payload",
            ),
            "ceiling": App(
                "ceiling", ceiling_server, None, "/items", lambda i: f"/items/{i}/payload"
            ),
        }
        # Warm-up, untimed: first-call costs, connection pools, the database's caches.
        for app in apps.values():
            payloads = [rng.randbytes(PAYLOAD_BYTES) for _ in range(warm)]
            _, ids = do_creates(app, payloads, "warm-up", threads)
            do_reads(app, ids, threads)
        for rep in range(reps):
            order = APPS if rep % 2 == 0 else APPS[::-1]
            # The same payloads, in the same order, for both servers.
            payloads = [rng.randbytes(PAYLOAD_BYTES) for _ in range(n)]
            created: dict[str, list[str]] = {}
            for name in order:
                outcome, created[name] = do_creates(apps[name], payloads, f"rep {rep}", threads)
                samples[name]["create"].append(outcome)
                progress(f"{engine} rep {rep + 1}/{reps}: {name} creates {outcome.rate:,.0f}/s")
            shuffle = list(range(n))
            rng.shuffle(shuffle)  # read in an order other than creation, the same for both
            for name in order:
                ids = created[name]
                outcome = do_reads(apps[name], [ids[i] for i in shuffle if i < len(ids)], threads)
                samples[name]["read"].append(outcome)
                progress(f"{engine} rep {rep + 1}/{reps}: {name} reads {outcome.rate:,.0f}/s")
    results = {a: {op: aggregate(samples[a][op]) for op in OPS} for a in APPS}
    ratios = {op: results["gsomia"][op]["rate"] / results["ceiling"][op]["rate"] for op in OPS}
    # Each repetition's gsomia rate over the ceiling's rate measured next to it: less sensitive
    # to slow drift in the machine's load than the ratio of the medians.
    paired = {
        op: [
            g.rate / c.rate
            for g, c in zip(samples["gsomia"][op], samples["ceiling"][op], strict=True)
        ]
        for op in OPS
    }
    return {
        "available": True,
        "database_url": redact(db_url) if database_url else "sqlite:///<tmp>/node.db",
        "results": results,
        "ratios": ratios,
        "paired_ratios": {
            op: {"median": statistics.median(v), "samples": v} for op, v in paired.items()
        },
    }


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def aggregate(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    failures = [f for o in outcomes for f in o.failures]
    return {
        "rate": statistics.median(o.rate for o in outcomes),
        "samples": [o.rate for o in outcomes],
        "p50_ms": statistics.median(o.p50_ms for o in outcomes),
        "p99_ms": statistics.median(o.p99_ms for o in outcomes),
        "server_cpu_ms_per_request": _median([o.server_cpu_ms_per_request for o in outcomes]),
        "client_cpu_ms_per_request": statistics.median(
            o.client_cpu_ms_per_request for o in outcomes
        ),
        "requests": sum(o.requests for o in outcomes),
        "succeeded": sum(o.succeeded for o in outcomes),
        "failures": failures[:10],
    }


# -- the run ----------------------------------------------------------------------------------


def run(
    quick: bool,
    threads: int,
    seed: int,
    progress: Callable[[str], None],
    overrides: dict[str, int] | None = None,
) -> dict[str, Any]:
    sizes = {**(QUICK if quick else FULL), **(overrides or {})}
    load_average = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    engines: dict[str, dict[str, Any]] = {}
    pg_version: str | None = None
    with tempfile.TemporaryDirectory(prefix="gsomia-bench-node-") as tmp:
        workdir = Path(tmp)
        progress("sqlite: starting")
        engines["sqlite"] = bench_engine("sqlite", None, workdir, sizes, threads, seed, progress)
        pg = postgresql_url()
        with contextlib.ExitStack() as stack:
            try:
                scoped, pg_version = stack.enter_context(postgresql_schema(pg))
            except Exception as e:  # unreachable server, refused login, no such database...
                engines["postgresql"] = {
                    "available": False,
                    "database_url": redact(_psycopg(pg)),
                    "note": f"PostgreSQL skipped: {type(e).__name__}: {str(e).splitlines()[0]}",
                }
            else:
                progress("postgresql: starting")
                engines["postgresql"] = bench_engine(
                    "postgresql", scoped, workdir, sizes, threads, seed, progress
                )
    ratios = {
        f"{engine}_{op}": result["ratios"][op]
        for engine, result in engines.items()
        if result["available"]
        for op in OPS
    }
    met = {key: value >= TARGET_RATIO for key, value in ratios.items()}
    sent = sum(
        r["results"][a][op]["requests"]
        for r in engines.values()
        if r["available"]
        for a in APPS
        for op in OPS
    )
    succeeded = sum(
        r["results"][a][op]["succeeded"]
        for r in engines.values()
        if r["available"]
        for a in APPS
        for op in OPS
    )
    return {
        "benchmark": "node",
        "quick": quick,
        "seed": seed,
        "environment": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "gsomia": version("gsomia"),
            "fastapi": version("fastapi"),
            "uvicorn": version("uvicorn"),
            "sqlalchemy": version("sqlalchemy"),
            "httpx": version("httpx"),
            "postgresql": pg_version,
            "load_average_at_start": load_average,
        },
        "config": {
            "payload_bytes": PAYLOAD_BYTES,
            "client_threads": threads,
            "requests_per_phase": sizes["requests"],
            "warmup_requests": sizes["warmup"],
            "repetitions": sizes["reps"],
            "label": LABEL,
        },
        "engines": engines,
        "ratios": ratios,
        "requests": {"sent": sent, "succeeded": succeeded, "failed": sent - succeeded},
        "targets": {
            "min_ratio": TARGET_RATIO,
            "met": met,
            "all_met": bool(met) and all(met.values()),
        },
    }


# -- output -----------------------------------------------------------------------------------


def report(result: dict[str, Any], console: Console) -> None:
    cfg = result["config"]
    target = result["targets"]["min_ratio"]
    rates = Table(
        title=f"Requests per second through HTTP: {cfg['payload_bytes']} B payloads, "
        f"{cfg['client_threads']} client threads, {cfg['requests_per_phase']:,} requests per "
        f"phase, median of {cfg['repetitions']}"
    )
    rates.add_column("engine")
    rates.add_column("op")
    rates.add_column("gsomia/s", justify="right")
    rates.add_column("ceiling/s", justify="right")
    rates.add_column("ratio", justify="right")
    rates.add_column("paired", justify="right")
    rates.add_column(f"≥ {target:.0%}", justify="center")
    detail = Table(title="Per request (medians of the repetitions' p50, p99 and CPU)")
    detail.add_column("engine")
    detail.add_column("op")
    detail.add_column("server")
    detail.add_column("p50 ms", justify="right")
    detail.add_column("p99 ms", justify="right")
    detail.add_column("server CPU ms", justify="right")
    detail.add_column("client CPU ms", justify="right")
    detail.add_column("ok", justify="right")
    notes = []
    for engine, r in result["engines"].items():
        if not r["available"]:
            rates.add_row(engine, "—", "skipped", "skipped", "—", "—", "—")
            notes.append(r["note"])
            continue
        for op in OPS:
            ratio = r["ratios"][op]
            g, c = r["results"]["gsomia"][op], r["results"]["ceiling"][op]
            rates.add_row(
                engine,
                op,
                f"{g['rate']:,.0f}",
                f"{c['rate']:,.0f}",
                f"{ratio:.0%}",
                f"{r['paired_ratios'][op]['median']:.0%}",
                "yes" if ratio >= target else "NO",
            )
            for app in APPS:
                x = r["results"][app][op]
                cpu = x["server_cpu_ms_per_request"]
                detail.add_row(
                    engine,
                    op,
                    app,
                    f"{x['p50_ms']:.1f}",
                    f"{x['p99_ms']:.1f}",
                    "—" if cpu is None else f"{cpu:.2f}",
                    f"{x['client_cpu_ms_per_request']:.2f}",
                    f"{x['succeeded']:,}/{x['requests']:,}",
                )
    console.print(rates)
    console.print(
        "ratio: gsomia's median rate over the ceiling's; paired: the median of each repetition's "
        "ratio (the two servers measured back to back)."
    )
    console.print(detail)
    for note in notes:
        console.print(note)
    req = result["requests"]
    console.print(
        f"Requests: {req['sent']:,} sent, {req['succeeded']:,} succeeded, {req['failed']:,} failed."
    )
    for engine, r in result["engines"].items():
        for app in APPS if r["available"] else ():
            for op in OPS:
                for failure in r["results"][app][op]["failures"][:3]:
                    console.print(f"  {engine} {app} {op}: {failure}")
    console.print(
        f"Target: gsomia ≥ {target:.0%} of the ceiling for creates and reads on every engine: "
        f"{'met' if result['targets']['all_met'] else 'NOT met'}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run, under a minute")
    parser.add_argument("--json", action="store_true", help="print one JSON object, nothing else")
    parser.add_argument("--threads", type=int, default=4, help="concurrent client threads")
    parser.add_argument("--seed", type=int, default=20191123)
    parser.add_argument("--requests", type=int, help="requests per phase (overrides the mode's)")
    parser.add_argument("--repetitions", type=int, help="repetitions (overrides the mode's)")
    args = parser.parse_args(argv)
    overrides = {}
    if args.requests is not None:
        overrides["requests"] = max(1, args.requests)
    if args.repetitions is not None:
        overrides["reps"] = max(1, args.repetitions)
    err = Console(stderr=True)

    def progress(message: str) -> None:
        if not args.json:
            err.print(f"[dim]{message}[/dim]")

    result = run(args.quick, args.threads, args.seed, progress, overrides)
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        report(result, Console())
    return 0 if result["requests"]["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
