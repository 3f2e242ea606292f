"""The track model and its wire form: only the three shared elements leave the originator."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gsomia.core.errors import InputError, InvalidTrackError, TrackFieldRefusedError
from gsomia.link.simulator import KOR_WARNING_LABEL
from gsomia.link.tracks import (
    SENSOR_FIELDS,
    WIRE_FIELDS,
    GeoPoint,
    Phase,
    SensorMetadata,
    TrackSample,
    TrackUpdate,
    from_wire,
    to_wire,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LABEL = KOR_WARNING_LABEL


def update(**changes: Any) -> TrackUpdate:
    fields: dict[str, Any] = {
        "track_id": "t-1",
        "seq": 3,
        "originator": "KOR",
        "label": LABEL,
        "phase": Phase.MIDCOURSE,
        "launch_point": GeoPoint(39.0, 125.7),
        "launch_time": T0,
        "trajectory": (TrackSample(T0 + timedelta(seconds=60), 39.0, 127.0, 100_000.0, 2600.0),),
        "impact_point": GeoPoint(38.4, 137.2),
        "impact_time": T0 + timedelta(seconds=475),
        "sensor": SensorMetadata("AN/TPY-2", GeoPoint(35.9, 128.1, 500.0), ("TEL movement",)),
    }
    fields.update(changes)
    return TrackUpdate(**fields)


def test_round_trip_drops_sensor_metadata() -> None:
    original = update()
    wire = to_wire(original)
    assert set(wire) == WIRE_FIELDS
    back = from_wire(json.loads(json.dumps(wire)))
    assert back.sensor is None
    assert back == update(sensor=None)


def test_no_estimate_yet_round_trips() -> None:
    u = update(impact_point=None, impact_time=None, trajectory=())
    assert to_wire(u)["impact"] is None
    assert from_wire(to_wire(u)) == replace(u, sensor=None)


@pytest.mark.parametrize("field", sorted(SENSOR_FIELDS))
def test_sensor_fields_are_refused_at_every_level(field: str) -> None:
    wire = to_wire(update())
    with pytest.raises(TrackFieldRefusedError, match="sensor metadata is not shared"):
        from_wire({**wire, field: "x"})
    with pytest.raises(TrackFieldRefusedError, match="sensor metadata"):
        from_wire({**wire, "launch": {**wire["launch"], field: "x"}})
    sample = {**wire["trajectory"][0], field: "x"}
    with pytest.raises(TrackFieldRefusedError, match=r"trajectory\[0\]"):
        from_wire({**wire, "trajectory": [sample]})


def test_unknown_fields_are_refused() -> None:
    wire = to_wire(update())
    with pytest.raises(TrackFieldRefusedError, match="radar_cross_section"):
        from_wire({**wire, "radar_cross_section": 0.1})
    with pytest.raises(TrackFieldRefusedError):
        from_wire({**wire, "impact": {**wire["impact"], "confidence": 0.9}})
    assert issubclass(TrackFieldRefusedError, InputError)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seq": -1}, "seq"),
        ({"seq": True}, "seq"),
        ({"phase": "coasting"}, "phase"),
        ({"track_id": ""}, "track_id"),
        ({"trajectory": {}}, "trajectory"),
        ({"launch": [39, 125]}, "launch"),
        (
            {"impact": {"lat": 1.0, "lon": 2.0, "alt_m": 0.0, "time": "2026-03-01T12:00:00"}},
            "aware",
        ),
        ({"impact": {"lat": 91.0, "lon": 2.0, "alt_m": 0.0, "time": T0.isoformat()}}, "latitude"),
        ({"impact": {"lat": "1", "lon": 2.0, "alt_m": 0.0, "time": T0.isoformat()}}, "number"),
        ({"impact": {"lat": 1.0, "lon": 2.0, "time": T0.isoformat()}}, "missing"),
        ({"originator": "JPN"}, "originator"),
    ],
)
def test_malformed_updates_are_refused(change: dict[str, Any], message: str) -> None:
    wire = {**to_wire(update()), **change}
    with pytest.raises(InvalidTrackError, match=message):
        from_wire(wire)


def test_missing_field_is_refused() -> None:
    wire = to_wire(update())
    del wire["trajectory"]
    with pytest.raises(InvalidTrackError, match="missing: trajectory"):
        from_wire(wire)


text = st.text(min_size=1, max_size=20)
coordinates = st.tuples(
    st.floats(-90, 90), st.floats(-180, 180), st.floats(-1e3, 2e6, allow_nan=False)
)
MARK = "\u00a7SENSOR\u00a7"  # marks sensor text, so a leak is visible in the JSON
marked = text.map(lambda t: MARK + t)
sensors = st.builds(
    SensorMetadata,
    sensor_type=marked,
    sensor_location=st.none() | coordinates.map(lambda c: GeoPoint(*c)),
    pre_launch_indicators=st.lists(marked, max_size=3).map(tuple),
)


@given(
    sensor=sensors,
    track_id=text.filter(lambda t: MARK not in t),
    seq=st.integers(0, 10**6),
    phase=st.sampled_from(Phase),
    samples=st.lists(coordinates, max_size=4),
    impact=st.none() | coordinates,
)
def test_no_sensor_field_ever_reaches_the_wire(
    sensor: SensorMetadata,
    track_id: str,
    seq: int,
    phase: Phase,
    samples: list[tuple[float, float, float]],
    impact: tuple[float, float, float] | None,
) -> None:
    u = update(
        track_id=track_id,
        seq=seq,
        phase=phase,
        sensor=sensor,
        trajectory=tuple(
            TrackSample(T0 + timedelta(seconds=i), lat, lon, alt, 1000.0)
            for i, (lat, lon, alt) in enumerate(samples)
        ),
        impact_point=GeoPoint(*impact) if impact else None,
        impact_time=T0 + timedelta(seconds=400) if impact else None,
    )
    wire = to_wire(u)

    def keys(value: object) -> set[str]:
        if isinstance(value, dict):
            return set(value) | {k for v in value.values() for k in keys(v)}
        if isinstance(value, list):
            return {k for v in value for k in keys(v)}
        return set()

    assert not keys(wire) & SENSOR_FIELDS
    # The wire form does not depend on the sensor metadata at all ...
    assert wire == to_wire(replace(u, sensor=None))
    # ... and its marked text never appears in it.
    encoded = json.dumps(wire, ensure_ascii=False)
    assert MARK not in encoded
    assert from_wire(json.loads(encoded)).sensor is None
