"""bench/screening.py runs end to end and reports what it promises.

Speed is never asserted (the machine is shared): the test runs the seconds-long ``--smoke`` mode
with ``--json`` and checks that one JSON object carries every figure and ratio.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "screening.py"
ENGINES = {"gsomia_batch", "gsomia_single", "wratio_single", "wratio_batch"}


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, "--json prints one JSON object and nothing else"
    data: dict[str, Any] = json.loads(lines[0])
    return data


def test_json_has_every_figure_and_ratio(result: dict[str, Any]) -> None:
    assert result["benchmark"] == "screening" and result["mode"] == "smoke"
    for key in ("seed", "environment", "labelled", "accuracy", "throughput", "ratios", "targets"):
        assert key in result, key
    speed = result["throughput"]
    assert speed["list_entries"] == 1000
    assert set(speed["rates"]) == ENGINES == set(speed["wall_rates"])
    assert all(v > 0 for v in speed["rates"].values())
    assert len(result["ratios"]) == 4
    assert {"precision_recall_met", "rate_met"} <= set(result["targets"])


def test_both_engines_are_scored_on_both_lists(result: dict[str, Any]) -> None:
    for list_name in ("sample_list", "list_1000"):
        data = result["accuracy"][list_name]
        for engine in ("gsomia", "wratio_same_threshold", "wratio_best_threshold"):
            scores = data[engine]
            assert 0 <= scores["precision"] <= 1 and 0 <= scores["recall"] <= 1
            assert scores["total"] == result["labelled"]["names"]
    ours = result["accuracy"]["sample_list"]["gsomia"]
    assert ours["precision"] >= 0.95 and ours["recall"] >= 0.95
