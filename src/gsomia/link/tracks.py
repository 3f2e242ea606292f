"""The track model of the missile-warning link, and its wire form.

Pure: standard library and :mod:`gsomia.core` only; no I/O, no clock.

Under the 2023 trilateral mechanism only three data elements leave the originator: the
**estimated launch point**, the **flight trajectory** and the **estimated impact point**, from
launch to impact. Pre-launch indicators and the type or location of each side's sensors are not
shared (shared/domain/gsomia.md §4.3). So a :class:`TrackUpdate` may carry the originator's
:class:`SensorMetadata` for local use, but :func:`to_wire` never emits it, and :func:`from_wire`
refuses any field outside :data:`WIRE_FIELDS` (and the nested field sets) with
:class:`~gsomia.core.errors.TrackFieldRefusedError`.

Wire form (a JSON-safe dict)::

    {"track_id": "...", "seq": 0, "originator": "KOR", "label": {...SecurityLabel.to_dict()},
     "phase": "boost",
     "launch": {"lat": 39.0, "lon": 125.7, "alt_m": 0.0, "time": "2026-...+00:00"},
     "trajectory": [{"time": "...", "lat": ..., "lon": ..., "alt_m": ..., "velocity_mps": ...}],
     "impact": {"lat": ..., "lon": ..., "alt_m": 0.0, "time": "..."} | null}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from gsomia.core.errors import InvalidTrackError, TrackFieldRefusedError
from gsomia.core.labels import SecurityLabel

__all__ = [
    "IMPACT_FIELDS",
    "LAUNCH_FIELDS",
    "PHASE_ORDER",
    "SAMPLE_FIELDS",
    "SENSOR_FIELDS",
    "WIRE_FIELDS",
    "GeoPoint",
    "Phase",
    "SensorMetadata",
    "TrackSample",
    "TrackUpdate",
    "from_wire",
    "to_wire",
]


class Phase(StrEnum):
    BOOST = "boost"
    MIDCOURSE = "midcourse"
    TERMINAL = "terminal"
    IMPACT = "impact"
    LOST = "lost"  # the originator lost the track; no further update follows


# The order of flight phases; LOST may follow any of them.
PHASE_ORDER: tuple[Phase, ...] = (Phase.BOOST, Phase.MIDCOURSE, Phase.TERMINAL, Phase.IMPACT)

# The fields allowed on the wire, at each level. Nothing else leaves the originator.
WIRE_FIELDS = frozenset(
    {"track_id", "seq", "originator", "label", "phase", "launch", "trajectory", "impact"}
)
LAUNCH_FIELDS = frozenset({"lat", "lon", "alt_m", "time"})
IMPACT_FIELDS = LAUNCH_FIELDS
SAMPLE_FIELDS = frozenset({"time", "lat", "lon", "alt_m", "velocity_mps"})
# Names of the sensor metadata the mechanism does not share (refused by name at the boundary).
SENSOR_FIELDS = frozenset(
    {"sensor", "sensor_type", "sensor_location", "pre_launch_indicators", "sensors"}
)


def _check_coordinates(lat: float, lon: float, alt_m: float) -> None:
    for name, value in (("lat", lat), ("lon", lon), ("alt_m", alt_m)):
        if not math.isfinite(value):
            raise InvalidTrackError(f"track field {name!r} must be finite, not {value!r}")
    if not -90.0 <= lat <= 90.0:
        raise InvalidTrackError(f"latitude {lat} outside [-90, 90]")
    if not -180.0 <= lon <= 180.0:
        raise InvalidTrackError(f"longitude {lon} outside [-180, 180]")


def _check_aware(at: datetime, what: str) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidTrackError(f"{what} must be timezone-aware")


@dataclass(frozen=True, slots=True)
class GeoPoint:
    """A point on or above the spherical Earth: degrees, and metres above the surface."""

    lat: float
    lon: float
    alt_m: float = 0.0

    def __post_init__(self) -> None:
        _check_coordinates(self.lat, self.lon, self.alt_m)


@dataclass(frozen=True, slots=True)
class TrackSample:
    """One point of the flight trajectory: when, where, and the speed (m/s) there."""

    time: datetime
    lat: float
    lon: float
    alt_m: float
    velocity_mps: float

    def __post_init__(self) -> None:
        _check_aware(self.time, "a trajectory sample's time")
        _check_coordinates(self.lat, self.lon, self.alt_m)
        if not math.isfinite(self.velocity_mps) or self.velocity_mps < 0:
            raise InvalidTrackError(f"velocity {self.velocity_mps!r} must be finite and >= 0")


@dataclass(frozen=True, slots=True)
class SensorMetadata:
    """What the originator knows of its own sensors. Never leaves the originator."""

    sensor_type: str = ""
    sensor_location: GeoPoint | None = None
    pre_launch_indicators: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TrackUpdate:
    """One update of one track: the three shared elements, plus local-only sensor metadata.

    ``seq`` counts the updates of one track from 0, without gaps. ``trajectory`` holds the
    samples new in this update (usually one). ``impact_point`` and ``impact_time`` are the
    originator's current estimate (None before it has one).
    """

    track_id: str
    seq: int
    originator: str
    label: SecurityLabel
    phase: Phase
    launch_point: GeoPoint
    launch_time: datetime
    trajectory: tuple[TrackSample, ...] = ()
    impact_point: GeoPoint | None = None
    impact_time: datetime | None = None
    sensor: SensorMetadata | None = None  # local only: stripped by to_wire

    def __post_init__(self) -> None:
        if not self.track_id:
            raise InvalidTrackError("a track id must not be empty")
        if self.seq < 0:
            raise InvalidTrackError(f"sequence number {self.seq} must be >= 0")
        if not self.originator:
            raise InvalidTrackError("a track's originator must not be empty")
        if self.label.originator != self.originator:
            raise InvalidTrackError(
                f"the label's originator {self.label.originator!r} is not the track's "
                f"originator {self.originator!r}"
            )
        _check_aware(self.launch_time, "the launch time")
        if (self.impact_point is None) != (self.impact_time is None):
            raise InvalidTrackError("an impact estimate needs both its point and its time")
        if self.impact_time is not None:
            _check_aware(self.impact_time, "the impact time")

    @property
    def latest(self) -> TrackSample | None:
        return self.trajectory[-1] if self.trajectory else None


# -- the wire ---------------------------------------------------------------------------------


def _point(p: GeoPoint, at: datetime) -> dict[str, Any]:
    return {"lat": p.lat, "lon": p.lon, "alt_m": p.alt_m, "time": at.isoformat()}


def to_wire(update: TrackUpdate) -> dict[str, Any]:
    """The JSON-safe dict that leaves the originator: the shared elements only.

    Built field by field from an allow-list, so sensor metadata (or anything added to
    :class:`TrackUpdate` later) cannot leak by accident.
    """
    return {
        "track_id": update.track_id,
        "seq": update.seq,
        "originator": update.originator,
        "label": update.label.to_dict(),
        "phase": update.phase.value,
        "launch": _point(update.launch_point, update.launch_time),
        "trajectory": [
            {
                "time": s.time.isoformat(),
                "lat": s.lat,
                "lon": s.lon,
                "alt_m": s.alt_m,
                "velocity_mps": s.velocity_mps,
            }
            for s in update.trajectory
        ],
        "impact": (
            _point(update.impact_point, update.impact_time)
            if update.impact_point is not None and update.impact_time is not None
            else None
        ),
    }


def _refuse_extra(data: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    extra = sorted(str(k) for k in data if k not in allowed)
    if not extra:
        return
    sensor = [k for k in extra if k in SENSOR_FIELDS]
    if sensor:
        raise TrackFieldRefusedError(
            f"{where}: sensor metadata is not shared on the missile-warning link: "
            f"{', '.join(sensor)}"
        )
    raise TrackFieldRefusedError(f"{where}: field(s) not shared on the link: {', '.join(extra)}")


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidTrackError(f"{where} must be an object, not {type(value).__name__}")
    return value


def _require(data: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    missing = sorted(allowed - data.keys())
    if missing:
        raise InvalidTrackError(f"{where}: field(s) missing: {', '.join(missing)}")


def _number(data: Mapping[str, Any], key: str, where: str) -> float:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidTrackError(f"{where}.{key} must be a number")
    return float(value)


def _text(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise InvalidTrackError(f"{where}.{key} must be a non-empty string")
    return value


def _time(data: Mapping[str, Any], key: str, where: str) -> datetime:
    text = _text(data, key, where)
    try:
        at = datetime.fromisoformat(text)
    except ValueError as e:
        raise InvalidTrackError(f"{where}.{key}: not an ISO 8601 instant: {text!r}") from e
    _check_aware(at, f"{where}.{key}")
    return at


def _read_point(value: object, where: str) -> tuple[GeoPoint, datetime]:
    data = _mapping(value, where)
    _refuse_extra(data, LAUNCH_FIELDS, where)
    _require(data, LAUNCH_FIELDS, where)
    point = GeoPoint(
        _number(data, "lat", where), _number(data, "lon", where), _number(data, "alt_m", where)
    )
    return point, _time(data, "time", where)


def _read_sample(value: object, where: str) -> TrackSample:
    data = _mapping(value, where)
    _refuse_extra(data, SAMPLE_FIELDS, where)
    _require(data, SAMPLE_FIELDS, where)
    return TrackSample(
        time=_time(data, "time", where),
        lat=_number(data, "lat", where),
        lon=_number(data, "lon", where),
        alt_m=_number(data, "alt_m", where),
        velocity_mps=_number(data, "velocity_mps", where),
    )


def from_wire(
    data: Mapping[str, Any],
    label_of: Callable[[Mapping[str, Any]], SecurityLabel] = SecurityLabel.from_dict,
) -> TrackUpdate:
    """The update ``data`` describes, in the shape :func:`to_wire` writes.

    ``label_of`` parses the label (a stream passes one that reuses the label of the track's
    previous update, which rarely changes).

    Raises:
        TrackFieldRefusedError: a field outside the shared elements, at any level (sensor
            metadata is named as such).
        InvalidTrackError: a field missing or of the wrong type or range.
        InvalidLabelError: a malformed label.
    """
    where = "track update"
    data = _mapping(data, where)
    _refuse_extra(data, WIRE_FIELDS, where)
    _require(data, WIRE_FIELDS, where)
    seq = data["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise InvalidTrackError(f"{where}.seq must be an integer")
    try:
        phase = Phase(data["phase"])
    except ValueError as e:
        known = ", ".join(p.value for p in Phase)
        raise InvalidTrackError(f"{where}.phase {data['phase']!r} is not one of {known}") from e
    launch, launch_time = _read_point(data["launch"], f"{where}.launch")
    samples = data["trajectory"]
    if not isinstance(samples, list):
        raise InvalidTrackError(f"{where}.trajectory must be a list")
    trajectory = tuple(_read_sample(s, f"{where}.trajectory[{i}]") for i, s in enumerate(samples))
    impact_point: GeoPoint | None = None
    impact_time: datetime | None = None
    if data["impact"] is not None:
        impact_point, impact_time = _read_point(data["impact"], f"{where}.impact")
    label = label_of(_mapping(data["label"], f"{where}.label"))
    return TrackUpdate(
        track_id=_text(data, "track_id", where),
        seq=seq,
        originator=_text(data, "originator", where),
        label=label,
        phase=phase,
        launch_point=launch,
        launch_time=launch_time,
        trajectory=trajectory,
        impact_point=impact_point,
        impact_time=impact_time,
    )
