"""bench/link.py runs end to end (a small run) and reports what it promises.

Speed is never asserted (the machine is shared): the test checks the one JSON object has every
route, figure, ratio and target, and that no update was lost, duplicated or reordered.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_small_run_reports_every_route_losslessly() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "link.py"), "--quick", "--json",
         "--updates", "400", "--seconds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stderr[-3000:]
    result = json.loads(lines[0])
    assert done.returncode == 0, "an update was lost, duplicated or reordered"
    assert result["benchmark"] == "link" and result["updates_throughput"] == 400
    assert set(result["routes"]) == {"direct", "hub", "hub+consent"}
    for name, route in result["routes"].items():
        assert route["lossless"], name
        assert route["updates_per_s"] > 0 and route["p50_ms"] <= route["p99_ms"] <= route["max_ms"]
    assert set(result["ratios"]) == {
        "hub_vs_direct_rate", "consent_vs_hub_rate", "hub_vs_direct_p99", "consent_vs_hub_p99",
    }  # fmt: skip
    assert set(result["targets"]) == {
        "hub_updates_per_s_at_least_2000", "direct_p99_at_most_20_ms", "hub_p99_at_most_40_ms",
    }  # fmt: skip
    (hub,) = result["runs"]["hub"]
    assert hub["throughput"]["received"] == {"USA": 400, "JPN": 400}
    # The consent route asked KOR once per update that went on to JPN.
    (consent,) = result["runs"]["hub+consent"]
    usa = consent["node_stats"]["USA"]["consents"]
    assert usa["asked"] == usa["granted"] == 400 + 200
