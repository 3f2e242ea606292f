"""bench/node.py runs its quick mode end to end and reports what it promises.

Speed is never asserted here (the machine is shared); the test checks that `--quick --json`
prints one JSON object with every figure and ratio, that every request of the run succeeded, and
that PostgreSQL was either measured or skipped with a note.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "node.py"
APPS = {"gsomia", "ceiling"}
OPS = {"create", "read"}
FIGURES = {
    "rate", "samples", "p50_ms", "p99_ms", "server_cpu_ms_per_request",
    "client_cpu_ms_per_request", "requests", "succeeded", "failures",
}  # fmt: skip


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.stdout.strip(), done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, "--json prints one JSON object and nothing else"
    data: dict[str, Any] = json.loads(lines[0])
    assert done.returncode == 0, (data.get("requests"), done.stderr[-2000:])
    return data


@pytest.mark.slow
def test_json_has_every_figure_and_ratio(result: dict[str, Any]) -> None:
    assert result["benchmark"] == "node" and result["quick"] is True
    for key in ("seed", "environment", "config", "engines", "ratios", "requests", "targets"):
        assert key in result, key
    config = result["config"]
    assert config["payload_bytes"] == 1024 and config["client_threads"] >= 1
    reps = config["repetitions"]
    engines = result["engines"]
    assert set(engines) == {"sqlite", "postgresql"}
    assert engines["sqlite"]["available"] is True, "SQLite is always measured"
    measured = [name for name, e in engines.items() if e["available"]]
    for name in measured:
        engine = engines[name]
        assert set(engine["results"]) == APPS
        for app in APPS:
            assert set(engine["results"][app]) == OPS
            for op in OPS:
                figures = engine["results"][app][op]
                assert set(figures) >= FIGURES, (name, app, op)
                assert figures["rate"] > 0 and len(figures["samples"]) == reps
                assert 0 < figures["p50_ms"] <= figures["p99_ms"]
        assert set(engine["ratios"]) == OPS
        assert all(v > 0 for v in engine["ratios"].values())
    assert set(result["ratios"]) == {f"{e}_{op}" for e in measured for op in OPS}
    targets = result["targets"]
    assert targets["min_ratio"] == 0.5
    assert set(targets["met"]) == set(result["ratios"])
    assert targets["all_met"] == all(targets["met"].values())


@pytest.mark.slow
def test_every_request_succeeded(result: dict[str, Any]) -> None:
    requests = result["requests"]
    assert requests["failed"] == 0 and requests["sent"] == requests["succeeded"] > 0
    for name, engine in result["engines"].items():
        if not engine["available"]:
            continue
        for app in APPS:
            for op in OPS:
                figures = engine["results"][app][op]
                assert figures["succeeded"] == figures["requests"], (name, app, op, figures)
                assert figures["failures"] == []


@pytest.mark.slow
def test_postgresql_is_measured_or_skipped_with_a_note(result: dict[str, Any]) -> None:
    postgresql = result["engines"]["postgresql"]
    if postgresql["available"]:
        assert result["environment"]["postgresql"]
    else:
        assert postgresql["note"].startswith("PostgreSQL skipped")
