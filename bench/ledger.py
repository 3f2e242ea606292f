"""The ledger's append and proof rates against pymerkle's InmemoryTree and SqliteTree, same run.

    .venv/bin/python bench/ledger.py            # 10**6 entries (a few minutes)
    .venv/bin/python bench/ledger.py --quick    # 10**5 entries, under a minute
    .venv/bin/python bench/ledger.py --json     # one JSON object on stdout, nothing else

Every engine gets the same entries: small act records (a sequence number, an item id, an act and
a party), as the node will write them. gsomia canonicalises each record (RFC 8785), hashes it,
builds the leaf from kind, instant and digest, and stores the row with the subtree hashes the
leaf completes; pymerkle gets the same canonical bytes and stores its leaves.

Durability: gsomia writes to a node database as the node does (SQLite, WAL, synchronous=FULL:
each commit is on disk before it returns); pymerkle's SqliteTree uses SQLite's defaults (rollback
journal, synchronous=FULL), also durable; InmemoryTree keeps nothing.

Measures, each the median over repetitions (the machine is shared):

- batched appends: gsomia ``append_many`` in transactions of 10,000 entries on a fresh
  database; pymerkle ``append_entries`` of all entries (SqliteTree: one transaction).
- one commit per entry: gsomia ``append``; SqliteTree ``append_entry`` (one commit each);
  InmemoryTree ``append_entry`` (no commit at all, for reference).
- inclusion and consistency proofs at the full size, random indices and old sizes: gsomia opens
  a read transaction per proof and reads the O(log n) stored subtree hashes it needs;
  pymerkle's trees compute subtree roots from the leaves, with their subtree cache (SqliteTree
  is measured twice: opened fresh, as after a restart, and with the cache warmed by those
  proofs).
- gsomia ``verify``: every record, leaf and stored hash recomputed, entries per second.

Speed is never asserted by tests; ``tests/ledger/test_bench_ledger.py`` runs a tiny ``--size``
and checks the shape of ``--json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pymerkle import InmemoryTree, SqliteTree
from rich.console import Console
from rich.table import Table

from gsomia.core.jcs import canonical_json
from gsomia.ledger.log import Ledger, NewEntry
from gsomia.store import schema
from gsomia.store.engine import Store

T0 = datetime(2019, 11, 22, 18, 0, tzinfo=UTC)
BATCH = 10_000
TARGETS = {
    "batched_appends_per_s": 100_000,
    "single_commit_appends_per_s": 1_000,
    "inclusion_proof_ms": 0.5,
    "inclusion_over_pymerkle_sqlite": 100.0,
}


def sizes(quick: bool, size: int | None) -> dict[str, int]:
    n = size or (100_000 if quick else 1_000_000)
    small = size is not None and size < 10_000
    return {
        "entries": n,
        "repetitions": 1 if small else 3,
        "single_commits": 50 if small else (500 if quick else 2_000),
        "proofs": 50 if small else (1_000 if quick else 2_000),
        "pymerkle_sqlite_proofs": 5 if small else (10 if quick else 20),
    }


def records(n: int) -> list[NewEntry]:
    # One instant per second of acts; the item id varies as a real id would.
    return [
        NewEntry(
            "share.sent",
            {
                "seq": i,
                "item": f"{i * 2654435761 % 2**32:08x}-7b8e-4c1d-9a3e",
                "act": "share",
                "party": "JPN",
            },
            T0 + timedelta(seconds=i // 100),
        )
        for i in range(n)
    ]


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def timed(fn: Callable[[], object], cpu: list[float] | None = None) -> float:
    """Wall-clock seconds of ``fn()``; its CPU seconds (this process) go to ``cpu`` if given.

    The CPU figure is what the process itself spent: on a shared machine the wall clock also
    counts the time other work held the cores.
    """
    gc.collect()
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    if cpu is not None:
        cpu.append(time.process_time() - start_cpu)
    return time.perf_counter() - start


# -- gsomia -----------------------------------------------------------------------------------


def fresh_ledger(directory: Path) -> Ledger:
    store = Store.from_url(f"sqlite:///{directory / 'node.db'}")
    schema.upgrade(store.engine)
    return Ledger(store)


def gsomia_run(work: Path, entries: list[NewEntry], s: dict[str, int], seed: int) -> dict[str, Any]:
    n = len(entries)
    batched, ledger = [], None
    batched_cpu: list[float] = []
    inclusion_cpu: list[float] = []
    for rep in range(s["repetitions"]):
        if ledger is not None:
            ledger.store.dispose()
        directory = work / f"gsomia-{rep}"
        directory.mkdir()
        ledger = fresh_ledger(directory)
        target = ledger

        def build(target: Ledger = target) -> None:
            for start in range(0, n, BATCH):
                target.append_many(entries[start : start + BATCH])

        batched.append(rate(n, timed(build, batched_cpu)))
    assert ledger is not None
    assert ledger.size() == n

    rnd = random.Random(seed)
    single = []
    for rep in range(s["repetitions"]):
        extra = [NewEntry("decision", {"rep": rep, "i": i}, T0) for i in range(s["single_commits"])]

        def one_by_one(extra: list[NewEntry] = extra) -> None:
            for e in extra:
                ledger.append(e.kind, e.record, e.at)

        single.append(rate(len(extra), timed(one_by_one)))
    size = ledger.size()
    root = ledger.root()
    inclusion, consistency = [], []
    for _ in range(s["repetitions"]):
        indices = [rnd.randrange(size) for _ in range(s["proofs"])]
        olds = [rnd.randrange(1, size) for _ in range(s["proofs"])]
        inclusion.append(
            rate(
                len(indices),
                timed(
                    lambda ix=indices: [ledger.inclusion_proof(i, size) for i in ix], inclusion_cpu
                ),
            )
        )
        consistency.append(
            rate(len(olds), timed(lambda o=olds: [ledger.consistency_proof(x, size) for x in o]))
        )
    # every proof measured is a real one: check a sample against the root
    for i in indices[:50]:
        ledger.inclusion_proof(i, size).verify(root)
    started = time.perf_counter()
    report = ledger.verify()
    verify_seconds = time.perf_counter() - started
    assert report.ok, report.problems[:3]
    database = work / f"gsomia-{s['repetitions'] - 1}" / "node.db"
    ledger.store.dispose()
    return {
        "batched_appends_per_s": statistics.median(batched),
        "single_commit_appends_per_s": statistics.median(single),
        "inclusion_proofs_per_s": statistics.median(inclusion),
        "inclusion_proof_ms": 1000 / statistics.median(inclusion),
        "consistency_proofs_per_s": statistics.median(consistency),
        "consistency_proof_ms": 1000 / statistics.median(consistency),
        "verify_entries_per_s": rate(size, verify_seconds),
        "batched_appends_per_cpu_s": rate(n, statistics.median(batched_cpu)),
        "inclusion_proof_cpu_ms": 1000 * statistics.median(inclusion_cpu) / s["proofs"],
        "database_bytes": database.stat().st_size,
        "batch": BATCH,
        "samples": {
            "batched": batched,
            "single": single,
            "inclusion": inclusion,
            "consistency": consistency,
        },
    }


# -- pymerkle ---------------------------------------------------------------------------------


def pymerkle_inmemory(data: list[bytes], s: dict[str, int], seed: int) -> dict[str, Any]:
    n = len(data)
    batched = []
    tree = InmemoryTree()
    for _ in range(s["repetitions"]):
        tree = InmemoryTree()
        batched.append(rate(n, timed(lambda t=tree: t.append_entries(data))))
    extra = [b"decision %d" % i for i in range(s["single_commits"])]
    single = rate(len(extra), timed(lambda: [tree.append_entry(e) for e in extra]))
    size = tree.get_size()
    rnd = random.Random(seed)
    inclusion, consistency = [], []
    for _ in range(s["repetitions"]):
        indices = [rnd.randrange(1, size + 1) for _ in range(s["proofs"])]
        olds = [rnd.randrange(1, size) for _ in range(s["proofs"])]
        inclusion.append(
            rate(
                len(indices), timed(lambda ix=indices: [tree.prove_inclusion(i, size) for i in ix])
            )
        )
        consistency.append(
            rate(len(olds), timed(lambda o=olds: [tree.prove_consistency(x, size) for x in o]))
        )
    return {
        "batched_appends_per_s": statistics.median(batched),
        "single_appends_per_s_no_commit": single,
        "inclusion_proofs_per_s": statistics.median(inclusion),
        "consistency_proofs_per_s": statistics.median(consistency),
    }


def pymerkle_sqlite(work: Path, data: list[bytes], s: dict[str, int], seed: int) -> dict[str, Any]:
    n = len(data)
    batched = []
    path = work / "pymerkle-0.db"
    for rep in range(s["repetitions"]):
        path = work / f"pymerkle-{rep}.db"
        with SqliteTree(str(path)) as tree:
            batched.append(rate(n, timed(lambda t=tree: t.append_entries(data))))
    with SqliteTree(str(path)) as tree:
        extra = [b"decision %d" % i for i in range(s["single_commits"])]
        single = rate(len(extra), timed(lambda: [tree.append_entry(e) for e in extra]))
        size = tree.get_size()
    rnd = random.Random(seed)
    cold, warm, consistency = [], [], []
    for _ in range(s["repetitions"]):
        with SqliteTree(str(path)) as tree:  # opened fresh: an empty subtree cache
            indices = [rnd.randrange(1, size + 1) for _ in range(s["pymerkle_sqlite_proofs"])]
            cold.append(
                rate(
                    len(indices),
                    timed(lambda t=tree, ix=indices: [t.prove_inclusion(i, size) for i in ix]),
                )
            )
            again = [rnd.randrange(1, size + 1) for _ in range(s["pymerkle_sqlite_proofs"])]
            warm.append(
                rate(
                    len(again),
                    timed(lambda t=tree, ix=again: [t.prove_inclusion(i, size) for i in ix]),
                )
            )
            olds = [rnd.randrange(1, size) for _ in range(s["pymerkle_sqlite_proofs"])]
            consistency.append(
                rate(
                    len(olds),
                    timed(lambda t=tree, o=olds: [t.prove_consistency(x, size) for x in o]),
                )
            )
    return {
        "batched_appends_per_s": statistics.median(batched),
        "single_commit_appends_per_s": single,
        "inclusion_proofs_per_s": statistics.median(cold),
        "inclusion_proofs_per_s_warm_cache": statistics.median(warm),
        "consistency_proofs_per_s": statistics.median(consistency),
        "database_bytes": path.stat().st_size,
    }


# -- the run ----------------------------------------------------------------------------------


def run(quick: bool, size: int | None, seed: int) -> dict[str, Any]:
    s = sizes(quick, size)
    entries = records(s["entries"])
    data = [canonical_json(e.record).encode() for e in entries]
    with tempfile.TemporaryDirectory(prefix="gsomia-bench-ledger-") as tmp:
        work = Path(tmp)
        ours = gsomia_run(work, entries, s, seed)
        sqlite_tree = pymerkle_sqlite(work, data, s, seed)
        memory_tree = pymerkle_inmemory(data, s, seed)
    ratios = {
        "batched_over_pymerkle_sqlite": ours["batched_appends_per_s"]
        / sqlite_tree["batched_appends_per_s"],
        "single_commit_over_pymerkle_sqlite": ours["single_commit_appends_per_s"]
        / sqlite_tree["single_commit_appends_per_s"],
        "inclusion_over_pymerkle_sqlite": ours["inclusion_proofs_per_s"]
        / sqlite_tree["inclusion_proofs_per_s"],
        "inclusion_over_pymerkle_sqlite_warm": ours["inclusion_proofs_per_s"]
        / sqlite_tree["inclusion_proofs_per_s_warm_cache"],
        "consistency_over_pymerkle_sqlite": ours["consistency_proofs_per_s"]
        / sqlite_tree["consistency_proofs_per_s"],
        "inclusion_over_pymerkle_inmemory": ours["inclusion_proofs_per_s"]
        / memory_tree["inclusion_proofs_per_s"],
    }
    targets = {
        "batched_met": ours["batched_appends_per_s"] >= TARGETS["batched_appends_per_s"],
        "single_commit_met": ours["single_commit_appends_per_s"]
        >= TARGETS["single_commit_appends_per_s"],
        "inclusion_latency_met": ours["inclusion_proof_ms"] <= TARGETS["inclusion_proof_ms"],
        "inclusion_ratio_met": ratios["inclusion_over_pymerkle_sqlite"]
        >= TARGETS["inclusion_over_pymerkle_sqlite"],
        **TARGETS,
    }
    return {
        "entries": s["entries"],
        "quick": quick,
        "sizes": s,
        "gsomia": ours,
        "pymerkle_sqlite": sqlite_tree,
        "pymerkle_inmemory": memory_tree,
        "ratios": ratios,
        "targets": targets,
        "environment": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "pymerkle": version("pymerkle"),
            "sqlalchemy": version("sqlalchemy"),
        },
    }


def report(result: dict[str, Any], console: Console) -> None:
    g, ps, pm = result["gsomia"], result["pymerkle_sqlite"], result["pymerkle_inmemory"]
    n = result["entries"]
    mode = " (--quick: 10^5 entries, not 10^6)" if result["quick"] else ""
    table = Table(title=f"Ledger at {n:,} entries{mode}, medians")
    for column in (
        "measure",
        "gsomia (SQLite node db)",
        "pymerkle SqliteTree",
        "pymerkle InmemoryTree",
    ):
        table.add_column(column, justify="right" if column != "measure" else "left")

    def f(value: float | None, unit: str = "/s") -> str:
        return "–" if value is None else f"{value:,.0f}{unit}"

    table.add_row(
        "batched appends",
        f(g["batched_appends_per_s"]),
        f(ps["batched_appends_per_s"]),
        f(pm["batched_appends_per_s"]),
    )
    table.add_row(
        "one commit per entry",
        f(g["single_commit_appends_per_s"]),
        f(ps["single_commit_appends_per_s"]),
        f(pm["single_appends_per_s_no_commit"]) + " (no commit)",
    )
    table.add_row(
        "inclusion proofs",
        f(g["inclusion_proofs_per_s"]),
        f(ps["inclusion_proofs_per_s"]) + " (fresh)",
        f(pm["inclusion_proofs_per_s"]),
    )
    table.add_row("  warm cache", "", f(ps["inclusion_proofs_per_s_warm_cache"]), "")
    table.add_row(
        "consistency proofs",
        f(g["consistency_proofs_per_s"]),
        f(ps["consistency_proofs_per_s"]),
        f(pm["consistency_proofs_per_s"]),
    )
    table.add_row("verify (entries)", f(g["verify_entries_per_s"]), "", "")
    console.print(table)
    console.print(
        f"gsomia CPU time of its own: {g['batched_appends_per_cpu_s']:,.0f} appends per CPU "
        f"second, {g['inclusion_proof_cpu_ms']:.3f} ms per inclusion proof"
    )
    console.print(
        f"inclusion proof {g['inclusion_proof_ms']:.3f} ms, consistency proof "
        f"{g['consistency_proof_ms']:.3f} ms; ratios: "
        + ", ".join(f"{k} {v:,.1f}×" for k, v in result["ratios"].items())
    )
    t = result["targets"]
    console.print(
        "Targets: batched ≥ 100,000/s "
        + ("met" if t["batched_met"] else "NOT met")
        + "; one commit per entry ≥ 1,000/s "
        + ("met" if t["single_commit_met"] else "NOT met")
        + "; inclusion ≤ 0.5 ms "
        + ("met" if t["inclusion_latency_met"] else "NOT met")
        + "; ≥ 100× SqliteTree proofs "
        + ("met" if t["inclusion_ratio_met"] else "NOT met")
    )
    console.print(f"load average during the run: {result['environment']['load_average']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^5 entries, under a minute")
    parser.add_argument("--json", action="store_true", help="print one JSON object, nothing else")
    parser.add_argument("--size", type=int, help="entries (overrides the mode; for smoke tests)")
    parser.add_argument("--seed", type=int, default=20191123)
    args = parser.parse_args(argv)
    result = run(args.quick, args.size, args.seed)
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        report(result, Console())
    return 0


if __name__ == "__main__":
    sys.exit(main())
