"""bench/ledger.py runs end to end on a tiny log and prints the figures it promises.

Speed is never asserted (the machine is shared): the test checks the shape of ``--json``, that
every engine was measured, and that the figures are positive.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "ledger.py"


def test_the_benchmark_reports_every_engine_and_target() -> None:
    pytest.importorskip("pymerkle")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--size", "300", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(done.stdout)
    assert result["entries"] == 300
    for engine, keys in {
        "gsomia": (
            "batched_appends_per_s",
            "single_commit_appends_per_s",
            "inclusion_proofs_per_s",
            "inclusion_proof_ms",
            "consistency_proofs_per_s",
            "verify_entries_per_s",
        ),
        "pymerkle_sqlite": (
            "batched_appends_per_s",
            "single_commit_appends_per_s",
            "inclusion_proofs_per_s",
            "inclusion_proofs_per_s_warm_cache",
            "consistency_proofs_per_s",
        ),
        "pymerkle_inmemory": ("batched_appends_per_s", "inclusion_proofs_per_s"),
    }.items():
        for key in keys:
            assert result[engine][key] > 0, (engine, key)
    assert set(result["targets"]) >= {
        "batched_met",
        "single_commit_met",
        "inclusion_latency_met",
        "inclusion_ratio_met",
    }
    assert result["ratios"]["inclusion_over_pymerkle_sqlite"] > 0
