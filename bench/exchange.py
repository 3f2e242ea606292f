"""Shares per second between two national nodes on loopback, latency at a fixed offered load,
and a bare HTTP POST between two servers as the ceiling, all in one run.

    .venv/bin/python bench/exchange.py            # full run (a few minutes)
    .venv/bin/python bench/exchange.py --quick    # under a minute on a quiet machine
    .venv/bin/python bench/exchange.py --json     # one JSON object on stdout, nothing else

Two nodes, JPN and KOR, run as real ``gsomia node serve`` processes on 127.0.0.1 (the cluster of
``gsomia demo``: own SQLite file each, own keys, each pinning the other's), with their clocks fixed
at 2019-11-22T12:00+09:00 so that JPN→KOR goes directly under the JPN-KOR-GSOMIA. Items of 1 KiB
random payloads (極秘, dprk-missile, REL TO USA, KOR) are created on JPN through its API before any
clock starts, a fresh item for every share.

What one share is: ``POST /api/v1/items/{id}/shares {"recipient": "KOR"}`` on JPN, which decides,
seals the envelope (AES-256-GCM, X25519+HKDF, Ed25519) and commits share, envelope and outbox entry
before answering 201 (concurrent requests group-committed); JPN's delivery worker signs a request
(RFC 9421) carrying what is due for KOR (a batch of envelopes: one signature and one nonce per
request) and POSTs it; KOR verifies the request and each envelope, records the nonce, decides
again, stores each item with its own marking and provenance, and answers a signed receipt per
envelope; JPN verifies each receipt and records the share as delivered (``delivered_real``, wall
clock).

- Throughput (closed loop), two ways of asking: ``--threads`` client threads (default 4), each
  with a keep-alive client, post share requests as fast as the share API answers them, either
  one item per request (``POST /api/v1/items/{id}/shares``, 201) or a set of ``--per-request``
  items per request (default 25: ``POST /api/v1/shares``, a share per item, as a release
  authority sends a day's reports). A share is the same whole path either way, each with its
  own decision, envelope, outbox entry, register act, verification and receipt; what a set
  saves is the client's request per item (its HTTP handling at JPN, its token look-up, and the
  client's own CPU on these same two cores). Shares/s = shares delivered / (the last
  ``delivered_real`` − the common start), both on this machine's wall clock. Completion is
  watched by reading JPN's SQLite file read-only (one indexed count every 10 ms, no load on the
  node's API); the outcome of every share is then read from the same rows the API serves.
- Ceiling: bench/_bare_post.py, two bare uvicorn servers A and B on the same host and loopback
  (the nodes expose no raw relay). The same client threads post to A's ``/relay``, which POSTs a
  body the size of a sealed share envelope (measured in this run from JPN's outbox) to B's
  ``/sink``, which answers with a body the size of a receipt. Bare posts/s = relays completed /
  wall time: one bare server-to-server POST each, with no crypto, database or checks.
- Latency at a fixed offered load (open loop): shares are due at 100/s on a fixed schedule,
  whatever the completions; a dispatcher hands each to one of 8 sender threads when it is due.
  ``node``: the share's ``latency_ms`` through ``GET /api/v1/shares/{id}``, as JPN records it
  (queued, inside the share transaction → receipt verified, wall clock). ``client``: the send's
  due time → ``delivered_real`` at JPN (same wall clock): a late send counts against the system
  (no coordinated omission) and no polling interval is added. ``share API``: due time → 201.
  Per repetition p50, p99 and max; the figures are medians over repetitions. When the nodes
  cannot keep up with 100/s, the backlog is drained (bounded wait) and the run takes longer.

The two ways of asking and the ceiling take turns, each first in turn between repetitions;
rates are medians over repetitions (the machine is shared). Server CPU is read from /proc for
each server process. Targets (issue 5): at least 500 shares/s end to end (judged on the better
of the two ways, both reported), at least 30% of the bare rate (one item per request: one share
per client request, like one bare post per client request), p99 (node) at most 50 ms at 100
shares/s (one item per request). The exit status is 1 when any share was not delivered or any
bare post failed; speed never fails the run.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import platform
import queue
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from _serve import START_DEADLINE, Server, cpu_seconds, serve  # bench/_serve.py
from gsomia.loader import load_registry
from gsomia.node.cluster import Cluster
from gsomia.node.config import load_config

BENCH_DIR = Path(__file__).resolve().parent
BARE_SCRIPT = BENCH_DIR / "_bare_post.py"

CLOCK = "2019-11-22T12:00+09:00"  # the GSOMIA in force: JPN→KOR directly
SENDER, RECIPIENT = "JPN", "KOR"
LABEL = {"classification": "gokuhi", "topics": ["dprk-missile"], "rel_to": ["USA", "KOR"]}
PAYLOAD_BYTES = 1024
SHARE_BODY = json.dumps({"recipient": RECIPIENT}).encode()

TARGET_SHARES_PER_S = 500.0
TARGET_RATIO = 0.30
TARGET_P99_MS = 50.0


@dataclass(frozen=True, slots=True)
class Sizes:
    shares: int  # per throughput repetition (and bare posts per repetition)
    reps: int
    warmup: int  # untimed shares and bare posts before the first repetition
    latency_s: float  # seconds of offered load per latency repetition
    latency_reps: int


FULL = Sizes(shares=1000, reps=5, warmup=100, latency_s=10.0, latency_reps=3)
QUICK = Sizes(shares=80, reps=3, warmup=20, latency_s=3.0, latency_reps=1)
ITEMS_PER_SET = 25  # items per share request in the set phase
OFFERED_RATE = 100.0  # shares/s in the latency phase
LATENCY_SENDERS = 8  # threads the open-loop dispatcher hands sends to

POLL = 0.01  # seconds between completion checks (bounded by a deadline)
OPEN = ("queued", "awaiting-consent")  # share states that are not an outcome yet


# -- helpers ----------------------------------------------------------------------------------


def cpu_of(pids: Sequence[int]) -> float | None:
    values = [cpu_seconds(p) for p in pids]
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def _per(before: float | None, after: float | None, n: int) -> float | None:
    """CPU milliseconds per operation between two readings, or None."""
    return None if before is None or after is None else (after - before) / n * 1e3


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    index = max(0, min(len(sorted_values) - 1, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def spread(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values)
    return {
        "p50_ms": percentile(ordered, 0.50),
        "p99_ms": percentile(ordered, 0.99),
        "max_ms": ordered[-1],
    }


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fsync_ms(directory: Path, rounds: int = 40) -> float:
    """Median time of a 4 KiB append plus fsync in ``directory``: what a durable commit waits on."""
    path = directory / "fsync-probe"
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
            times.append((time.perf_counter() - start) * 1e3)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times)


def parse_instant(text: str | None) -> datetime | None:
    """A datetime as SQLAlchemy stores it in SQLite (UTC, no offset) as an aware datetime."""
    if text is None:
        return None
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# -- the bare ceiling -------------------------------------------------------------------------


def bare_server(
    workdir: Path, name: str, args: Sequence[str]
) -> contextlib.AbstractContextManager[Server]:
    return serve(f"bare-{name}", [sys.executable, str(BARE_SCRIPT), *args], workdir)


# -- the two nodes ----------------------------------------------------------------------------


@dataclass
class Sent:
    """One share request as the client saw it."""

    index: int
    share_id: str | None = None
    status: int = 0  # HTTP status; 0 for a transport error
    share_status: str | None = None  # as the 201 answered
    scheduled: float = 0.0  # wall clock (time.time) the send was due
    sent: float = 0.0  # wall clock it went out
    answered: float = 0.0  # wall clock the answer came back
    error: str | None = None


@dataclass
class Exchange:
    """The running cluster of two nodes and the bench's view of it."""

    cluster: Cluster
    threads: int
    db_path: Path
    rng: random.Random
    _items: list[str] = field(default_factory=list)

    @property
    def sender(self) -> Any:
        return self.cluster.nodes[SENDER]

    @property
    def node_pids(self) -> dict[str, int]:
        return self.cluster.pids()

    def node_cpu(self) -> dict[str, float | None]:
        return {party: cpu_seconds(pid) for party, pid in self.node_pids.items()}

    def connect(self) -> sqlite3.Connection:
        """JPN's SQLite file, read-only (WAL: readers never block the node's writer)."""
        return sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)

    # -- items, created before any clock starts --

    def create_items(self, n: int) -> list[str]:
        bodies = [
            json.dumps(
                {
                    "title": f"bench exchange item {len(self._items) + i}",
                    "label": LABEL,
                    "payload": base64.b64encode(self.rng.randbytes(PAYLOAD_BYTES)).decode(),
                }
            ).encode()
            for i in range(n)
        ]
        ids: list[str | None] = [None] * n
        errors: list[str] = []

        def work(offset: int) -> None:
            with self.sender.client(timeout=60.0) as client:
                for i in range(offset, n, self.threads):
                    try:
                        r = client.post(
                            "/api/v1/items",
                            content=bodies[i],
                            headers={"content-type": "application/json"},
                        )
                    except httpx.HTTPError as e:
                        errors.append(repr(e))
                        continue
                    if r.status_code == 201:
                        ids[i] = str(r.json()["id"])
                    else:
                        errors.append(f"HTTP {r.status_code}: {r.text[:200]}")

        run_threads(work, self.threads)
        if errors or any(i is None for i in ids):
            raise RuntimeError(f"creating the bench's items failed: {errors[:3]}")
        made = [i for i in ids if i is not None]
        self._items.extend(made)
        return made

    # -- shares --

    def post_share(self, client: httpx.Client, item_id: str, record: Sent) -> None:
        record.sent = time.time()
        try:
            r = client.post(
                f"/api/v1/items/{item_id}/shares",
                content=SHARE_BODY,
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as e:
            record.answered = time.time()
            record.error = f"{type(e).__name__}: {e}"
            return
        record.answered = time.time()
        record.status = r.status_code
        if r.status_code == 201:
            body = r.json()
            record.share_id = str(body["id"])
            record.share_status = str(body["status"])
        else:
            record.error = f"HTTP {r.status_code}: {r.text[:200]}"

    def post_set(
        self, client: httpx.Client, item_ids: Sequence[str], records: Sequence[Sent]
    ) -> None:
        """One ``POST /api/v1/shares`` for several items: a result per item."""
        sent = time.time()
        for record in records:
            record.sent = sent
        body = json.dumps({"recipient": RECIPIENT, "items": list(item_ids)}).encode()
        error: str | None = None
        results: list[dict[str, Any]] = []
        try:
            r = client.post(
                "/api/v1/shares", content=body, headers={"content-type": "application/json"}
            )
            if r.status_code == 200:
                results = r.json()["results"]
            else:
                error = f"HTTP {r.status_code}: {r.text[:200]}"
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}"
        answered = time.time()
        for k, record in enumerate(records):
            record.answered = answered
            row = results[k] if k < len(results) else None
            if row is not None and "share" in row:
                record.status = 201  # as the one-item share API answers
                record.share_id = str(row["share"]["id"])
                record.share_status = str(row["share"]["status"])
            else:
                record.error = error or f"item {item_ids[k]}: {row}"

    def open_count(self, connection: sqlite3.Connection) -> int:
        marks = ",".join("?" * len(OPEN))
        row = connection.execute(
            f"SELECT count(*) FROM shares WHERE status IN ({marks})", OPEN
        ).fetchone()
        return int(row[0])

    def wait_settled(self, timeout: float) -> bool:
        """Until no share at JPN is still queued (delivered, refused or failed), or the deadline."""
        deadline = time.monotonic() + timeout
        with contextlib.closing(self.connect()) as connection:
            while True:
                if self.open_count(connection) == 0:
                    return True
                if time.monotonic() > deadline:
                    return False
                time.sleep(POLL)  # a poll interval under the deadline above

    def rows(self, share_ids: Sequence[str]) -> dict[str, tuple[str, datetime | None]]:
        """Status and ``delivered_real`` of shares, read from JPN's database."""
        found: dict[str, tuple[str, datetime | None]] = {}
        with contextlib.closing(self.connect()) as connection:
            for start in range(0, len(share_ids), 500):
                chunk = share_ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT id, status, delivered_real FROM shares WHERE id IN ({marks})"
                for share_id, status, delivered in connection.execute(query, chunk):
                    found[share_id] = (status, parse_instant(delivered))
        return found

    def api_shares(self, share_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Every share as the API reports it (untimed, after the clock stopped)."""
        found: dict[str, dict[str, Any]] = {}

        def work(offset: int) -> None:
            with self.sender.client(timeout=60.0) as client:
                for i in range(offset, len(share_ids), self.threads):
                    r = client.get(f"/api/v1/shares/{share_ids[i]}")
                    found[share_ids[i]] = (
                        r.json() if r.status_code == 200 else {"status": f"HTTP {r.status_code}"}
                    )

        run_threads(work, self.threads)
        return found

    def envelope_sizes(self) -> tuple[int, int]:
        """Bytes of the last sealed share envelope and of the receipt that came back."""
        with contextlib.closing(self.connect()) as connection:
            row = connection.execute(
                "SELECT length(body), length(CAST(response AS BLOB)) FROM outbox "
                "WHERE kind = 'share' AND response IS NOT NULL ORDER BY id DESC LIMIT 1"
            ).fetchone()
        if row is None:
            raise RuntimeError("no share was delivered in the warm-up")
        return int(row[0]), int(row[1])

    def received_at_recipient(self) -> int | None:
        """How many items KOR holds (all received from JPN in this run), through its API."""
        with self.cluster.nodes[RECIPIENT].client() as client:
            r = client.get("/api/v1/items", params={"limit": 1})
            if r.status_code != 200:
                return None
            total = r.json().get("total")
            return int(total) if total is not None else None


def run_threads(work: Callable[[int], None], threads: int) -> None:
    workers = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


# -- phases -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one phase did to its shares (or bare posts)."""

    posted: int = 0
    accepted: int = 0  # 201 from the share API
    delivered: int = 0
    refused: int = 0
    failed: int = 0
    other: int = 0  # still queued at the deadline, or anything unexpected
    errors: list[str] = field(default_factory=list)

    def add(self, other: Outcome) -> None:
        self.posted += other.posted
        self.accepted += other.accepted
        self.delivered += other.delivered
        self.refused += other.refused
        self.failed += other.failed
        self.other += other.other
        self.errors.extend(other.errors[: max(0, 10 - len(self.errors))])


def settle(
    ex: Exchange, records: Sequence[Sent], timeout: float, *, through_api: bool
) -> tuple[Outcome, dict[str, dict[str, Any]], dict[str, tuple[str, datetime | None]]]:
    """Wait for every accepted share's outcome and count the outcomes.

    The statuses are JPN's rows, read from its database; with ``through_api`` every share is also
    fetched through ``GET /api/v1/shares/{id}`` (its ``latency_ms`` is the node's latency figure),
    and the API's status is the one counted.
    """
    settled = ex.wait_settled(timeout)
    ids = [r.share_id for r in records if r.share_id is not None]
    rows = ex.rows(ids)
    api = ex.api_shares(ids) if through_api else {}
    outcome = Outcome(posted=len(records), accepted=len(ids))
    outcome.errors.extend(r.error for r in records if r.error)
    status = {
        i: str(api[i].get("status")) if through_api else rows.get(i, ("missing", None))[0]
        for i in ids
    }
    counts = Counter(status.values())
    outcome.delivered = counts.pop("delivered", 0)
    outcome.refused = counts.pop("refused", 0)
    outcome.failed = counts.pop("failed", 0)
    outcome.other = sum(counts.values())
    if not settled:
        outcome.errors.append(f"not settled within {timeout:.0f} s: {dict(counts)}")
    undelivered = [i for i in ids if status[i] != "delivered"]
    if undelivered:
        detail = ex.api_shares(undelivered[:5]) if not through_api else api
        for share_id in undelivered[:5]:
            share = detail.get(share_id, {})
            outcome.errors.append(
                f"share {share_id}: {share.get('status')} {share.get('reasons') or ''} "
                f"{share.get('last_error') or ''}".strip()
            )
    return outcome, api, rows


@dataclass
class Throughput:
    rate: float  # shares delivered per second, common start → last delivery recorded at JPN
    accept_rate: float  # shares accepted (201) per second by the share API
    server_cpu_ms: dict[str, float | None]  # per node, CPU per share, start → settled
    client_cpu_ms: float
    outcome: Outcome


def throughput_rep(ex: Exchange, item_ids: Sequence[str], per_request: int = 1) -> Throughput:
    """Closed loop: each client thread posts its next share request as soon as the last one
    was answered; ``per_request`` items per request (1: the one-item share API)."""
    n = len(item_ids)
    records = [Sent(i) for i in range(n)]
    ready = threading.Barrier(ex.threads + 1, timeout=60)
    starts = range(0, n, per_request)  # request k holds items starts[k] ..

    def work(offset: int) -> None:
        with ex.sender.client(timeout=60.0) as client:
            client.get("/health")  # the keep-alive connection, before the clock starts
            ready.wait()
            for k in range(offset, len(starts), ex.threads):
                i = starts[k]
                if per_request == 1:
                    ex.post_share(client, item_ids[i], records[i])
                else:
                    end = min(n, i + per_request)
                    ex.post_set(client, item_ids[i:end], records[i:end])

    workers = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(ex.threads)]
    for w in workers:
        w.start()
    ready.wait()
    cpu0, client0, wall0 = ex.node_cpu(), time.process_time(), time.time()
    for w in workers:
        w.join()
    ex.wait_settled(timeout=max(60.0, n / 10))
    cpu1, client1 = ex.node_cpu(), time.process_time()
    outcome, _, rows = settle(ex, records, timeout=0.0, through_api=False)
    delivered = [d for status, d in rows.values() if status == "delivered" and d is not None]
    end = max(d.timestamp() for d in delivered) if delivered else time.time()
    last_ack = max((r.answered for r in records), default=wall0)
    return Throughput(
        rate=len(delivered) / (end - wall0),
        accept_rate=outcome.accepted / max(1e-9, last_ack - wall0),
        server_cpu_ms={p: _per(cpu0[p], cpu1[p], n) for p in cpu0},
        client_cpu_ms=(client1 - client0) / n * 1e3,
        outcome=outcome,
    )


@dataclass
class Bare:
    rate: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms: float | None
    client_cpu_ms: float
    outcome: Outcome


def bare_rep(relay: Server, pids: Sequence[int], n: int, threads: int) -> Bare:
    latencies = [0.0] * n
    ok = [False] * n
    errors: list[str] = []
    ready = threading.Barrier(threads + 1, timeout=60)

    def work(offset: int) -> None:
        with httpx.Client(base_url=relay.url, timeout=60.0) as client:
            client.get("/health")
            ready.wait()
            for i in range(offset, n, threads):
                start = time.perf_counter()
                try:
                    r = client.post(
                        "/relay", content=SHARE_BODY, headers={"content-type": "application/json"}
                    )
                except httpx.HTTPError as e:
                    errors.append(f"{type(e).__name__}: {e}")
                    continue
                finally:
                    latencies[i] = (time.perf_counter() - start) * 1e3
                ok[i] = r.status_code == 200
                if not ok[i]:
                    errors.append(f"HTTP {r.status_code}")

    workers = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(threads)]
    for w in workers:
        w.start()
    ready.wait()
    cpu0, client0, t0 = cpu_of(pids), time.process_time(), time.perf_counter()
    for w in workers:
        w.join()
    wall = time.perf_counter() - t0
    cpu1, client1 = cpu_of(pids), time.process_time()
    lat = sorted(latencies)
    good = sum(ok)
    return Bare(
        rate=good / wall,
        p50_ms=percentile(lat, 0.50),
        p99_ms=percentile(lat, 0.99),
        server_cpu_ms=_per(cpu0, cpu1, n),
        client_cpu_ms=(client1 - client0) / n * 1e3,
        outcome=Outcome(posted=n, accepted=good, delivered=good, failed=n - good, errors=errors),
    )


@dataclass
class Latency:
    node_ms: list[float]  # latency_ms as JPN records it: queued → receipt verified
    client_ms: list[float]  # scheduled send → delivered_real at JPN
    api_ms: list[float]  # scheduled send → 201 from the share API
    send_lag_ms: list[float]  # how late sends went out against the schedule
    achieved_rate: float  # shares actually sent per second
    outcome: Outcome


def latency_rep(ex: Exchange, item_ids: Sequence[str], rate: float) -> Latency:
    """Open loop: share ``i`` is due at start + i/rate, sent then whatever is still in flight."""
    n = len(item_ids)
    records = [Sent(i) for i in range(n)]
    jobs: queue.Queue[int | None] = queue.Queue()
    ready = threading.Barrier(LATENCY_SENDERS + 1, timeout=60)

    def sender() -> None:
        with ex.sender.client(timeout=60.0) as client:
            client.get("/health")
            ready.wait()
            while (i := jobs.get()) is not None:
                ex.post_share(client, item_ids[i], records[i])

    workers = [threading.Thread(target=sender, daemon=True) for _ in range(LATENCY_SENDERS)]
    for w in workers:
        w.start()
    ready.wait()
    start_perf = time.perf_counter() + 0.02
    start_wall = time.time() + (start_perf - time.perf_counter())
    try:
        for i in range(n):
            due = start_perf + i / rate
            records[i].scheduled = start_wall + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)  # the open-loop schedule's pacing
            jobs.put(i)
    finally:
        for _ in workers:
            jobs.put(None)
        for w in workers:
            w.join()
    sent_span = max(r.sent for r in records) - min(r.sent for r in records)
    outcome, api, rows = settle(ex, records, timeout=max(60.0, n / 10), through_api=True)
    node_ms, client_ms = [], []
    for r in records:
        if r.share_id is None:
            continue
        share = api.get(r.share_id, {})
        if share.get("status") == "delivered" and share.get("latency_ms") is not None:
            node_ms.append(float(share["latency_ms"]))
        _, delivered = rows.get(r.share_id, ("", None))
        if delivered is not None:
            client_ms.append((delivered.timestamp() - r.scheduled) * 1e3)
    return Latency(
        node_ms=node_ms,
        client_ms=client_ms,
        api_ms=[(r.answered - r.scheduled) * 1e3 for r in records if r.status == 201],
        send_lag_ms=[(r.sent - r.scheduled) * 1e3 for r in records],
        achieved_rate=(n - 1) / sent_span if sent_span > 0 else OFFERED_RATE,
        outcome=outcome,
    )


# -- the run ----------------------------------------------------------------------------------


def run(
    quick: bool, threads: int, seed: int, per_request: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    n, reps, warm = sizes.shares, sizes.reps, sizes.warmup
    per_latency_rep = round(OFFERED_RATE * sizes.latency_s)
    rng = random.Random(seed)
    throughput: list[Throughput] = []
    sets: list[Throughput] = []
    bare: list[Bare] = []
    latency: list[Latency] = []
    warmup = Outcome()
    with tempfile.TemporaryDirectory(prefix="gsomia-bench-exchange-") as tmp:
        workdir = Path(tmp)
        fsync = fsync_ms(workdir)
        cluster = Cluster(
            root=workdir / "nodes", registry=load_registry(), parties=(SENDER, RECIPIENT)
        )
        progress("creating the JPN and KOR nodes")
        cluster.create(now=datetime.now(UTC))
        try:
            cluster.start(clock=CLOCK, wait=START_DEADLINE)
            url = load_config(cluster.nodes[SENDER].data_dir).database_url
            db_path = (
                Path(url.removeprefix("sqlite:///"))
                if url
                else cluster.nodes[SENDER].data_dir / "node.db"
            )
            ex = Exchange(cluster, threads, db_path, rng)
            progress(
                f"creating {warm + 2 * n * reps + per_latency_rep * sizes.latency_reps} items "
                "on JPN"
            )
            warm_items = ex.create_items(warm)
            rep_items = [ex.create_items(n) for _ in range(reps)]
            set_items = [ex.create_items(n) for _ in range(reps)]
            latency_items = [ex.create_items(per_latency_rep) for _ in range(sizes.latency_reps)]
            progress("warm-up")
            warm_result = throughput_rep(ex, warm_items)
            warmup = warm_result.outcome
            envelope_bytes, receipt_bytes = ex.envelope_sizes()
            with (
                bare_server(workdir, "sink", ["--reply-bytes", str(receipt_bytes)]) as sink,
                bare_server(
                    workdir,
                    "relay",
                    ["--forward", sink.url, "--bytes", str(envelope_bytes), "--reply-bytes", "0"],
                ) as relay,
            ):
                bare_pids = [relay.process.pid, sink.process.pid]
                bare_rep(relay, bare_pids, warm, threads)  # warm-up, untimed
                phases = ("node", "sets", "bare")
                for rep in range(reps):
                    order = phases[rep % 3 :] + phases[: rep % 3]  # each phase first in turn
                    for which in order:
                        if which == "node":
                            t = throughput_rep(ex, rep_items[rep])
                            throughput.append(t)
                            progress(f"rep {rep + 1}/{reps}: {t.rate:,.0f} shares/s")
                        elif which == "sets":
                            t = throughput_rep(ex, set_items[rep], per_request)
                            sets.append(t)
                            progress(
                                f"rep {rep + 1}/{reps}: {t.rate:,.0f} shares/s "
                                f"({per_request} items per request)"
                            )
                        else:
                            b = bare_rep(relay, bare_pids, n, threads)
                            bare.append(b)
                            progress(f"rep {rep + 1}/{reps}: bare {b.rate:,.0f} posts/s")
                for rep, items in enumerate(latency_items):
                    lat = latency_rep(ex, items, OFFERED_RATE)
                    latency.append(lat)
                    p99 = spread(lat.node_ms)["p99_ms"]
                    progress(
                        f"latency {rep + 1}/{len(latency_items)}: {OFFERED_RATE:.0f}/s offered, "
                        f"node p99 {p99 if p99 is not None else float('nan'):.1f} ms"
                    )
            received = ex.received_at_recipient()
        finally:
            cluster.stop()
    return assemble(
        quick, seed, threads, per_request, sizes, fsync, envelope_bytes, receipt_bytes,
        warmup, throughput, sets, bare, latency, received,
    )  # fmt: skip


def assemble(
    quick: bool,
    seed: int,
    threads: int,
    per_request: int,
    sizes: Sizes,
    fsync: float,
    envelope_bytes: int,
    receipt_bytes: int,
    warmup: Outcome,
    throughput: Sequence[Throughput],
    sets: Sequence[Throughput],
    bare: Sequence[Bare],
    latency: Sequence[Latency],
    received: int | None,
) -> dict[str, Any]:
    shares = Outcome()
    shares.add(warmup)
    for t in (*throughput, *sets):
        shares.add(t.outcome)
    for lat in latency:
        shares.add(lat.outcome)
    bare_outcome = Outcome()
    for b in bare:
        bare_outcome.add(b.outcome)
    rate = statistics.median(t.rate for t in throughput)
    set_rate = statistics.median(t.rate for t in sets)
    bare_rate = statistics.median(b.rate for b in bare)
    ratio = rate / bare_rate

    def per_rep(values: Callable[[Latency], list[float]]) -> dict[str, Any]:
        spreads = [spread(values(lat)) for lat in latency]
        pooled = spread([v for lat in latency for v in values(lat)])
        return {
            "p50_ms": median([s["p50_ms"] for s in spreads]),
            "p99_ms": median([s["p99_ms"] for s in spreads]),
            "max_ms": median([s["max_ms"] for s in spreads]),
            "samples": spreads,
            "pooled": pooled,
        }

    node_lat = per_rep(lambda lat: lat.node_ms)
    client_lat = per_rep(lambda lat: lat.client_ms)
    p99 = node_lat["p99_ms"]
    met = {
        # Shares/s end to end: the best way the share API offers; both ways are reported.
        "shares_per_s": max(rate, set_rate) >= TARGET_SHARES_PER_S,
        "ratio": ratio >= TARGET_RATIO,
        "p99": p99 is not None and p99 <= TARGET_P99_MS,
    }
    return {
        "benchmark": "exchange",
        "quick": quick,
        "seed": seed,
        "environment": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "gsomia": version("gsomia"),
            "fastapi": version("fastapi"),
            "uvicorn": version("uvicorn"),
            "httpx": version("httpx"),
            "sqlite": sqlite3.sqlite_version,
            "fsync_ms": fsync,
        },
        "config": {
            "sender": SENDER,
            "recipient": RECIPIENT,
            "clock": CLOCK,
            "label": LABEL,
            "payload_bytes": PAYLOAD_BYTES,
            "envelope_bytes": envelope_bytes,
            "receipt_bytes": receipt_bytes,
            "client_threads": threads,
            "items_per_set_request": per_request,
            "shares_per_rep": sizes.shares,
            "repetitions": sizes.reps,
            "warmup_shares": sizes.warmup,
            "offered_rate": OFFERED_RATE,
            "latency_seconds": sizes.latency_s,
            "latency_repetitions": sizes.latency_reps,
            "latency_senders": LATENCY_SENDERS,
        },
        "throughput": throughput_figures(throughput),
        "sets": {"items_per_request": per_request, **throughput_figures(sets)},
        "bare": {
            "posts_per_s": bare_rate,
            "samples": [b.rate for b in bare],
            "p50_ms": statistics.median(b.p50_ms for b in bare),
            "p99_ms": statistics.median(b.p99_ms for b in bare),
            "server_cpu_ms_per_post": median([b.server_cpu_ms for b in bare]),
            "client_cpu_ms_per_post": statistics.median(b.client_cpu_ms for b in bare),
            "posts": bare_outcome.posted,
            "failed": bare_outcome.failed,
            "errors": bare_outcome.errors,
        },
        "latency": {
            "offered_per_s": OFFERED_RATE,
            "achieved_per_s": statistics.median(lat.achieved_rate for lat in latency),
            "node": node_lat,
            "client": client_lat,
            "share_api": spread([v for lat in latency for v in lat.api_ms]),
            "send_lag": spread([v for lat in latency for v in lat.send_lag_ms]),
        },
        "ratios": {"shares_over_bare": ratio, "set_shares_over_bare": set_rate / bare_rate},
        "shares": {
            "posted": shares.posted,
            "accepted": shares.accepted,
            "delivered": shares.delivered,
            "refused": shares.refused,
            "failed": shares.failed,
            "other": shares.other,
            "received_at_recipient": received,
            "errors": shares.errors,
        },
        "targets": {
            "min_shares_per_s": TARGET_SHARES_PER_S,
            "min_ratio": TARGET_RATIO,
            "max_p99_ms": TARGET_P99_MS,
            "met": met,
            "all_met": all(met.values()),
        },
    }


def throughput_figures(reps: Sequence[Throughput]) -> dict[str, Any]:
    return {
        "shares_per_s": statistics.median(t.rate for t in reps),
        "samples": [t.rate for t in reps],
        "accepted_per_s": statistics.median(t.accept_rate for t in reps),
        "server_cpu_ms_per_share": _sum_or_none(
            [median([t.server_cpu_ms[p] for t in reps]) for p in (SENDER, RECIPIENT)]
        ),
        "server_cpu_ms_per_share_by_node": {
            p: median([t.server_cpu_ms[p] for t in reps]) for p in (SENDER, RECIPIENT)
        },
        "client_cpu_ms_per_share": statistics.median(t.client_cpu_ms for t in reps),
    }


def _sum_or_none(values: Sequence[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


# -- output -----------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def report(result: dict[str, Any], console: Console) -> None:
    cfg, tp, bare, lat = result["config"], result["throughput"], result["bare"], result["latency"]
    t, met = result["targets"], result["targets"]["met"]
    by = tp["server_cpu_ms_per_share_by_node"]
    table = Table(
        title=f"Shares JPN→KOR on loopback: {cfg['payload_bytes']} B payloads "
        f"({cfg['envelope_bytes']:,} B envelopes), {cfg['client_threads']} client threads, "
        f"{cfg['shares_per_rep']:,} per repetition, median of {cfg['repetitions']}"
    )
    for col, justify in (
        ("figure", "left"),
        ("value", "right"),
        ("target", "right"),
        ("met", "center"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    yes = {True: "yes", False: "NO"}
    sets = result["sets"]
    per = sets["items_per_request"]
    table.add_row(
        f"shares/s end to end, {per} items per share request", f"{sets['shares_per_s']:,.0f}",
        f"≥ {t['min_shares_per_s']:.0f}", yes[met["shares_per_s"]],
    )  # fmt: skip
    table.add_row("shares/s end to end, one item per request", f"{tp['shares_per_s']:,.0f}", "", "")
    table.add_row(
        "shares accepted/s by the share API (sets / one item)",
        f"{sets['accepted_per_s']:,.0f} / {tp['accepted_per_s']:,.0f}", "", "",
    )  # fmt: skip
    table.add_row("bare server-to-server posts/s (ceiling)", f"{bare['posts_per_s']:,.0f}", "", "")
    table.add_row(
        "shares / bare, one item per request", f"{result['ratios']['shares_over_bare']:.1%}",
        f"≥ {t['min_ratio']:.0%}", yes[met["ratio"]],
    )  # fmt: skip
    table.add_row(
        f"shares / bare, {per} items per request",
        f"{result['ratios']['set_shares_over_bare']:.1%}", "", "",
    )  # fmt: skip
    table.add_row(
        "server CPU ms per share (JPN + KOR) / per bare post (A+B)",
        f"{_ms(by[SENDER])} + {_ms(by[RECIPIENT])} / {_ms(bare['server_cpu_ms_per_post'])}",
        "", "",
    )  # fmt: skip
    set_by = sets["server_cpu_ms_per_share_by_node"]
    table.add_row(
        f"server CPU ms per share (JPN + KOR), {per} items per request",
        f"{_ms(set_by[SENDER])} + {_ms(set_by[RECIPIENT])}", "", "",
    )  # fmt: skip
    node, client = lat["node"], lat["client"]
    offered = f"at {lat['offered_per_s']:.0f}/s"
    table.add_row(
        f"node latency p50 / p99 / max {offered} (queued → receipt)",
        f"{_ms(node['p50_ms'])} / {_ms(node['p99_ms'])} / {_ms(node['max_ms'])} ms",
        f"p99 ≤ {t['max_p99_ms']:.0f} ms", yes[met["p99"]],
    )  # fmt: skip
    table.add_row(
        f"client latency p50 / p99 / max {offered} (send due → delivered)",
        f"{_ms(client['p50_ms'])} / {_ms(client['p99_ms'])} / {_ms(client['max_ms'])} ms",
        "", "",
    )  # fmt: skip
    api = lat["share_api"]
    table.add_row(
        f"share API p50 / p99 {offered} (send due → 201)",
        f"{_ms(api['p50_ms'])} / {_ms(api['p99_ms'])} ms", "", "",
    )  # fmt: skip
    table.add_row(
        "bare post p50 / p99 (closed loop)",
        f"{bare['p50_ms']:.1f} / {bare['p99_ms']:.1f} ms",
        "",
        "",
    )
    console.print(table)
    env = result["environment"]
    console.print(
        f"Samples: shares/s {', '.join(f'{v:,.0f}' for v in sets['samples'])} (sets), "
        f"{', '.join(f'{v:,.0f}' for v in tp['samples'])} (one item); "
        f"bare/s {', '.join(f'{v:,.0f}' for v in bare['samples'])}; "
        f"fsync of this disk {env['fsync_ms']:.1f} ms (median)."
    )
    s = result["shares"]
    console.print(
        f"Shares: {s['posted']:,} posted, {s['accepted']:,} accepted, {s['delivered']:,} "
        f"delivered, {s['refused']} refused, {s['failed']} failed, {s['other']} other; "
        f"KOR holds {s['received_at_recipient']} items. Bare posts failed: {bare['failed']}."
    )
    for error in s["errors"][:5] + bare["errors"][:3]:
        console.print(f"  {error}")
    console.print(f"Targets (issue 5): {'all met' if t['all_met'] else 'NOT all met'}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run, under a minute")
    parser.add_argument("--json", action="store_true", help="print one JSON object, nothing else")
    parser.add_argument("--threads", type=int, default=4, help="concurrent client threads")
    parser.add_argument(
        "--per-request",
        type=int,
        default=ITEMS_PER_SET,
        help="items per share request in the set phase (POST /api/v1/shares)",
    )
    parser.add_argument("--seed", type=int, default=20191122)
    args = parser.parse_args(argv)
    err = Console(stderr=True)
    started = time.monotonic()

    def progress(message: str) -> None:
        if not args.json:
            err.print(f"[dim]{time.monotonic() - started:5.1f} s  {message}[/dim]")

    if not 2 <= args.per_request <= 1000:
        parser.error("--per-request must be between 2 and 1000")
    result = run(args.quick, args.threads, args.seed, args.per_request, progress)
    result["elapsed_s"] = time.monotonic() - started
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        report(result, Console())
    s = result["shares"]
    ok = s["delivered"] == s["posted"] and result["bare"]["failed"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
