"""A deterministic ballistic launch simulator, for demos, tests and benchmarks.

Pure: standard library and :mod:`gsomia` only; no I/O, no clock, no randomness. The same inputs
give the same updates.

The model and its simplifications (deliberate; good enough to exercise the link, not to
predict a real flight):

- **Spherical, non-rotating Earth** of radius R = 6,371 km; no Coriolis, no Earth rotation
  under the missile.
- **Inverse-square gravity** with μ = g·R², g = 9.80665 m/s²; **no drag**, no thrust.
- **Impulsive launch**: the missile leaves the surface at the launch point with the
  minimum-energy velocity for the requested ground range (flight-path angle
  γ = (π − Φ)/4, speed² = (μ/R)·2 sin(Φ/2)/(1 + sin(Φ/2)), Φ = range/R, a Keplerian arc in the
  great-circle plane of the azimuth). The **boost phase** is the first ``boost_seconds`` of
  that arc, labelled as such; powered flight is not modelled.
- **Phases**: boost, then midcourse, then terminal once descending below
  ``terminal_altitude_m``, then one final impact update at the ground.
- **Estimated impact point**: the true one, displaced downrange by a synthetic estimation error
  of ``estimate_bias`` × range that shrinks linearly to zero at impact, so the estimate visibly
  converges. The estimated impact time is displaced in proportion.

The arc is integrated with fourth-order Runge–Kutta in Earth-centred coordinates of the
trajectory plane; the impact is found by bisection on the last step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from gsomia.core.errors import InputError
from gsomia.core.labels import SecurityLabel
from gsomia.link.tracks import GeoPoint, Phase, SensorMetadata, TrackSample, TrackUpdate

__all__ = [
    "DPRK_WEST_COAST",
    "EARTH_RADIUS_M",
    "G0",
    "KOR_WARNING_LABEL",
    "MU",
    "TERMINAL_ALTITUDE_M",
    "Launch",
    "destination",
    "great_circle_m",
    "simulate",
]

EARTH_RADIUS_M = 6_371_000.0
G0 = 9.80665
MU = G0 * EARTH_RADIUS_M**2
TERMINAL_ALTITUDE_M = 100_000.0  # below it, descending: the terminal phase (CoT reads it too)
_STEP_S = 0.05  # integration step, seconds

DPRK_WEST_COAST = GeoPoint(39.0, 125.7)  # the launch site the demo, the bench and the tests fly

# A Korean sensor's track under the 2023 trilateral mechanism: 군사II급비밀 on DPRK missiles,
# releasable to the US and Japan (what the demo, the link bench and the tests simulate).
KOR_WARNING_LABEL = SecurityLabel(
    originator="KOR",
    policy="KOR",
    classification="gunsa-2",
    releasable_to=frozenset({"USA", "JPN"}),
    topics=frozenset({"dprk-missile"}),
)


@dataclass(frozen=True, slots=True)
class Launch:
    """What the simulation is asked to fly."""

    site: GeoPoint
    time: datetime
    azimuth_deg: float  # clockwise from true north
    range_km: float
    rate_hz: float = 1.0  # updates per second
    boost_seconds: float | None = None  # default: scaled with range, 20 s to 180 s
    terminal_altitude_m: float = TERMINAL_ALTITUDE_M
    estimate_bias: float = 0.05  # initial impact estimation error, as a fraction of range

    def __post_init__(self) -> None:
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise InputError("the launch time must be timezone-aware")
        if not math.isfinite(self.azimuth_deg):
            raise InputError("the azimuth must be a finite number of degrees")
        if not (math.isfinite(self.range_km) and 1.0 <= self.range_km <= 15_000.0):
            raise InputError(f"range {self.range_km} km outside 1 to 15,000 km")
        if not (math.isfinite(self.rate_hz) and 0.01 <= self.rate_hz <= 1_000.0):
            raise InputError(f"update rate {self.rate_hz} Hz outside 0.01 to 1,000")
        if self.boost_seconds is not None and not (
            math.isfinite(self.boost_seconds) and self.boost_seconds >= 0
        ):
            raise InputError("boost_seconds must be a finite number >= 0")
        if not (math.isfinite(self.estimate_bias) and 0.0 <= self.estimate_bias <= 1.0):
            raise InputError("estimate_bias must be between 0 and 1")


def destination(lat: float, lon: float, azimuth_deg: float, angle: float) -> tuple[float, float]:
    """The point ``angle`` radians of great circle from (lat, lon) along ``azimuth_deg``."""
    p1, l1, az = math.radians(lat), math.radians(lon), math.radians(azimuth_deg)
    sin_p2 = math.sin(p1) * math.cos(angle) + math.cos(p1) * math.sin(angle) * math.cos(az)
    p2 = math.asin(max(-1.0, min(1.0, sin_p2)))
    l2 = l1 + math.atan2(
        math.sin(az) * math.sin(angle) * math.cos(p1),
        math.cos(angle) - math.sin(p1) * math.sin(p2),
    )
    lon2 = (math.degrees(l2) + 540.0) % 360.0 - 180.0
    return math.degrees(p2), lon2


def great_circle_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres on the sphere of radius R (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


_State = tuple[float, float, float, float]  # x (downrange), y (up at launch), vx, vy


def _deriv(s: _State) -> _State:
    x, y, vx, vy = s
    r3 = (x * x + y * y) ** 1.5
    return (vx, vy, -MU * x / r3, -MU * y / r3)


def _rk4(s: _State, h: float) -> _State:
    def add(a: _State, b: _State, k: float) -> _State:
        return (a[0] + k * b[0], a[1] + k * b[1], a[2] + k * b[2], a[3] + k * b[3])

    k1 = _deriv(s)
    k2 = _deriv(add(s, k1, h / 2))
    k3 = _deriv(add(s, k2, h / 2))
    k4 = _deriv(add(s, k3, h))
    return (
        s[0] + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0]),
        s[1] + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1]),
        s[2] + h / 6 * (k1[2] + 2 * k2[2] + 2 * k3[2] + k4[2]),
        s[3] + h / 6 * (k1[3] + 2 * k2[3] + 2 * k3[3] + k4[3]),
    )


def _altitude(s: _State) -> float:
    return math.hypot(s[0], s[1]) - EARTH_RADIUS_M


def _trajectory(launch: Launch) -> tuple[list[tuple[float, _State]], float, _State]:
    """Integrated states every step, the impact time and the impact state."""
    phi = launch.range_km * 1000.0 / EARTH_RADIUS_M
    gamma = (math.pi - phi) / 4
    speed = math.sqrt(MU / EARTH_RADIUS_M * 2 * math.sin(phi / 2) / (1 + math.sin(phi / 2)))
    state: _State = (0.0, EARTH_RADIUS_M, speed * math.cos(gamma), speed * math.sin(gamma))
    t = 0.0
    states = [(t, state)]
    while True:
        nxt = _rk4(state, _STEP_S)
        if _altitude(nxt) <= 0.0 and t > 0.0:
            lo, hi = 0.0, _STEP_S
            for _ in range(50):  # bisection on the step for the ground crossing
                mid = (lo + hi) / 2
                if _altitude(_rk4(state, mid)) > 0.0:
                    lo = mid
                else:
                    hi = mid
            impact = _rk4(state, hi)
            return states, t + hi, impact
        t += _STEP_S
        state = nxt
        states.append((t, state))


def _state_at(states: list[tuple[float, _State]], t: float) -> _State:
    index = min(int(t / _STEP_S), len(states) - 1)
    t0, s0 = states[index]
    return _rk4(s0, t - t0) if t > t0 else s0


def simulate(
    launch: Launch,
    track_id: str,
    label: SecurityLabel,
    sensor: SensorMetadata | None = None,
) -> Iterator[TrackUpdate]:
    """The updates of one simulated flight, from launch (seq 0) to impact (the last one).

    ``sensor`` is attached to each update as the originator's local metadata (it lets tests
    check that :func:`~gsomia.link.tracks.to_wire` strips it).
    """
    states, impact_t, impact_state = _trajectory(launch)
    site = launch.site
    boost = launch.boost_seconds
    if boost is None:
        boost = min(180.0, max(20.0, launch.range_km * 0.06))
    boost = min(boost, impact_t)
    true_angle = math.atan2(impact_state[0], impact_state[1])

    def sample(t: float, s: _State) -> TrackSample:
        angle = math.atan2(s[0], s[1])
        lat, lon = destination(site.lat, site.lon, launch.azimuth_deg, angle)
        return TrackSample(
            time=launch.time + timedelta(seconds=t),
            lat=lat,
            lon=lon,
            alt_m=max(0.0, _altitude(s)),
            velocity_mps=math.hypot(s[2], s[3]),
        )

    def estimate(t: float) -> tuple[GeoPoint, datetime]:
        error = launch.estimate_bias * (1.0 - t / impact_t)
        lat, lon = destination(site.lat, site.lon, launch.azimuth_deg, true_angle * (1 + error))
        return GeoPoint(lat, lon, 0.0), launch.time + timedelta(seconds=impact_t * (1 + error))

    def update(seq: int, t: float, s: _State, phase: Phase) -> TrackUpdate:
        point, at = estimate(t)
        return TrackUpdate(
            track_id=track_id,
            seq=seq,
            originator=label.originator,
            label=label,
            phase=phase,
            launch_point=site,
            launch_time=launch.time,
            trajectory=(sample(t, s),),
            impact_point=point,
            impact_time=at,
            sensor=sensor,
        )

    period = 1.0 / launch.rate_hz
    seq = 0
    phase = Phase.BOOST
    previous_alt = 0.0
    while True:
        t = seq * period
        if t >= impact_t:
            break
        s = _state_at(states, t)
        alt = _altitude(s)
        if t >= boost and phase is Phase.BOOST:
            phase = Phase.MIDCOURSE
        if phase is Phase.MIDCOURSE and alt < previous_alt and alt < launch.terminal_altitude_m:
            phase = Phase.TERMINAL
        previous_alt = alt
        yield update(seq, t, s, phase)
        seq += 1
    yield update(seq, impact_t, impact_state, Phase.IMPACT)
