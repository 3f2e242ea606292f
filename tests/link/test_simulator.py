"""The ballistic launch simulator: range, altitude, order, phases, determinism, convergence."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime

import pytest

from gsomia.core.errors import InputError
from gsomia.core.labels import SecurityLabel
from gsomia.link.simulator import DPRK_WEST_COAST, Launch, destination, great_circle_m, simulate
from gsomia.link.tracks import (
    PHASE_ORDER,
    GeoPoint,
    Phase,
    SensorMetadata,
    TrackUpdate,
    to_wire,
)

T0 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
SITE = DPRK_WEST_COAST
LABEL = SecurityLabel("KOR", "KOR", "gunsa-2", topics=frozenset({"dprk-missile"}))


def fly(range_km: float, azimuth: float = 90.0, rate: float = 1.0) -> list[TrackUpdate]:
    return list(simulate(Launch(SITE, T0, azimuth, range_km, rate), "t-1", LABEL))


@pytest.mark.parametrize(("range_km", "azimuth"), [(300, 90), (1000, 90), (1000, 60), (4500, 95)])
def test_impact_lands_at_the_requested_range_along_the_azimuth(
    range_km: float, azimuth: float
) -> None:
    updates = fly(range_km, azimuth, rate=0.5)
    last = updates[-1]
    assert last.phase is Phase.IMPACT
    end = last.latest
    assert end is not None and end.alt_m == 0.0
    flown = great_circle_m(SITE.lat, SITE.lon, end.lat, end.lon) / 1000
    assert flown == pytest.approx(range_km, rel=0.01)
    aim = destination(SITE.lat, SITE.lon, azimuth, range_km * 1000 / 6_371_000)
    assert great_circle_m(*aim, end.lat, end.lon) < 0.01 * range_km * 1000


def test_altitude_time_sequence_and_phases() -> None:
    updates = fly(1000, rate=2)
    samples = [u.latest for u in updates]
    assert all(s is not None and s.alt_m >= 0 for s in samples)
    times = [s.time for s in samples if s is not None]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert [u.seq for u in updates] == list(range(len(updates)))
    phases = [u.phase for u in updates]
    ranks = [PHASE_ORDER.index(p) for p in phases]
    assert ranks == sorted(ranks)
    assert set(phases) == set(PHASE_ORDER)
    assert phases.count(Phase.IMPACT) == 1
    assert all(u.launch_point == SITE and u.launch_time == T0 for u in updates)
    apogee = max(s.alt_m for s in samples if s is not None)
    assert 150_000 < apogee < 350_000  # a minimum-energy 1,000 km shot peaks near 240 km


def test_estimated_impact_converges_to_the_true_one() -> None:
    updates = fly(1000)
    end = updates[-1].latest
    assert end is not None
    errors = []
    for u in updates:
        assert u.impact_point is not None and u.impact_time is not None
        errors.append(great_circle_m(u.impact_point.lat, u.impact_point.lon, end.lat, end.lon))
    assert errors[0] == pytest.approx(50_000, rel=0.02)  # 5% of the range at launch
    assert all(a >= b - 1e-6 for a, b in itertools.pairwise(errors))
    assert errors[-1] < 1.0
    assert updates[-1].impact_time == end.time


def test_deterministic_and_rate() -> None:
    assert fly(800, rate=1) == fly(800, rate=1)
    slow, fast = fly(800, rate=1), fly(800, rate=4)
    assert len(fast) - 1 == pytest.approx(4 * (len(slow) - 1), abs=4)
    assert fast[-1].latest == slow[-1].latest


def test_sensor_metadata_stays_local() -> None:
    sensor = SensorMetadata("radar", GeoPoint(35.9, 128.1), ("TEL seen",))
    launch = Launch(SITE, T0, 90, 500, 0.2)
    for u in simulate(launch, "t-2", LABEL, sensor):
        assert u.sensor == sensor
        assert "sensor" not in to_wire(u)


@pytest.mark.parametrize(
    "kw",
    [
        {"range_km": 0.0},
        {"range_km": 20_000.0},
        {"range_km": math.nan},
        {"rate_hz": 0.0},
        {"azimuth_deg": math.inf},
        {"estimate_bias": -0.1},
        {"boost_seconds": -1.0},
    ],
)
def test_bad_launch_parameters(kw: dict[str, float]) -> None:
    args: dict[str, object] = {
        "site": SITE,
        "time": T0,
        "azimuth_deg": 90.0,
        "range_km": 1000.0,
        **kw,
    }
    with pytest.raises(InputError):
        Launch(**args)  # type: ignore[arg-type]


def test_naive_launch_time_is_refused() -> None:
    with pytest.raises(InputError, match="timezone-aware"):
        Launch(SITE, datetime(2026, 3, 1), 90, 1000)
