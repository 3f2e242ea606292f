"""bench/decide.py runs its quick mode end to end and reports what it promises.

Speed is never asserted here (the machine is shared); the test checks that `--quick --json`
prints one JSON object with every documented figure and that Cedar agrees with gsomia on every
request of the workload.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "decide.py"
ENGINES = {
    "gsomia_warm",
    "gsomia_cold",
    "cedar_single",
    "cedar_batch",
    "cedar_floor",
    "cedar_request_build",
}
RATIOS = {
    "gsomia_warm_over_cedar_batch",
    "gsomia_cold_over_cedar_batch",
    "gsomia_warm_over_cedar_single",
    "gsomia_cold_over_cedar_single",
    "cedar_batch_over_cedar_single",
    "gsomia_warm_over_gsomia_cold",
    "gsomia_warm_over_cedar_floor",
}


@pytest.fixture(scope="module")
def result() -> dict[str, object]:
    pytest.importorskip("cedarpy")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    # Exit status 1 means a disagreement, which the agreement test reports with its cases.
    assert done.returncode in (0, 1) and done.stdout.strip(), done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, "--json prints one JSON object and nothing else"
    data: dict[str, object] = json.loads(lines[0])
    return data


@pytest.mark.slow
def test_json_has_every_figure_and_ratio(result: dict[str, object]) -> None:
    assert result["benchmark"] == "decide" and result["quick"] is True
    for key in (
        "seed", "environment", "workload", "cedar_model", "repetitions", "timed_requests",
        "rates", "samples", "cpu_over_wall", "ratios", "agreement", "targets",
    ):  # fmt: skip
        assert key in result, key
    rates = result["rates"]
    samples = result["samples"]
    assert isinstance(rates, dict) and isinstance(samples, dict)
    assert set(rates) == ENGINES == set(samples)
    assert all(isinstance(v, float) and v > 0 for v in rates.values())
    assert all(len(v) == result["repetitions"] for v in samples.values())
    ratios = result["ratios"]
    assert isinstance(ratios, dict) and set(ratios) == RATIOS
    targets = result["targets"]
    assert isinstance(targets, dict)
    assert {"rate_met", "ratio_met", "gsomia_warm_min_rate"} <= set(targets)


@pytest.mark.slow
def test_workload_is_mixed(result: dict[str, object]) -> None:
    workload = result["workload"]
    assert isinstance(workload, dict)
    mix = workload["mix"]
    assert set(mix) == {"direct_allow", "hub_allow", "refused"}
    assert all(share > 0 for share in mix.values())
    assert sum(mix.values()) == pytest.approx(1.0)
    assert set(workload["registries"]) == {"recorded", "lapsed"}


@pytest.mark.slow
def test_cedar_agrees_with_gsomia_on_every_request(result: dict[str, object]) -> None:
    agreement = result["agreement"]
    assert isinstance(agreement, dict)
    assert agreement["compared"] == result["workload"]["requests"]  # type: ignore[index]
    assert agreement["rate"] == 1.0, agreement["disagreements"]
    assert agreement["cedar_evaluation_errors"] == 0
    assert agreement["single_vs_batch_mismatches"] == 0
