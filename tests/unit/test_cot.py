"""Cursor-on-Target: track updates out as CoT events and back, refusals, and stream framing."""

from __future__ import annotations

import contextlib
import functools
import math
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import defusedxml.ElementTree as SafeET
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsomia.core.errors import (
    CotStreamError,
    InputError,
    InvalidTrackError,
    TrackFieldRefusedError,
)
from gsomia.core.labels import SecurityLabel
from gsomia.link.cot import (
    MAX_EVENT_BYTES,
    MISSILE_COT_TYPE,
    CotKind,
    CotTrackAssembler,
    classify,
    is_track_type,
    pong_event,
    split_stream,
    update_to_cot,
)
from gsomia.link.simulator import DPRK_WEST_COAST, KOR_WARNING_LABEL, Launch, simulate
from gsomia.link.tracks import GeoPoint, Phase, SensorMetadata, TrackSample, TrackUpdate

T0 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
SITE = DPRK_WEST_COAST
LABEL = KOR_WARNING_LABEL
SENSOR = SensorMetadata("AN/TPY-2", GeoPoint(35.917, 128.113, 512.0), ("TEL movement at Sohae",))


def flight(rate: float = 1.0, range_km: float = 1000.0) -> list[TrackUpdate]:
    launch = Launch(SITE, T0, 95.0, range_km, rate)
    return list(simulate(launch, "kor-2026-0301-01", LABEL, SENSOR))


def feed(assembler: CotTrackAssembler, event: bytes | str) -> TrackUpdate:
    data = event.encode() if isinstance(event, str) else event
    return assembler.feed(data, originator="KOR", label=LABEL)


def tak_event(
    uid: str = "trk-1",
    *,
    at: datetime = T0,
    lat: str = "39.5",
    lon: str = "127.0",
    hae: str = "150000.0",
    cot_type: str = "a-h-A-W-M-S-S",
    detail: str = "",
) -> str:
    """An event as a TAK tool writes one: no gsomia element."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (
        f'<event version="2.0" uid="{uid}" type="{cot_type}" how="m-g" time="{stamp}" '
        f'start="{stamp}" stale="{stamp}">'
        f'<point lat="{lat}" lon="{lon}" hae="{hae}" ce="9999999.0" le="9999999.0"/>'
        f"<detail>{detail}</detail></event>"
    )


# -- out ------------------------------------------------------------------------------------


def test_an_update_becomes_one_cot_event_for_its_latest_sample() -> None:
    update = flight()[100]
    sample = update.latest
    assert sample is not None and update.impact_point is not None
    root = SafeET.fromstring(update_to_cot(update, stale_seconds=45.0))
    assert root.tag == "event"
    assert root.get("version") == "2.0"
    assert root.get("uid") == update.track_id
    assert root.get("type") == MISSILE_COT_TYPE == "a-h-A-W-M-S-S"
    assert root.get("how") == "m-f"
    assert root.get("time") == root.get("start") == "2026-03-01T03:01:40.000000Z"
    assert root.get("stale") == "2026-03-01T03:02:25.000000Z"
    point = root.find("point")
    assert point is not None
    assert float(point.get("lat", "")) == sample.lat
    assert float(point.get("lon", "")) == sample.lon
    assert float(point.get("hae", "")) == sample.alt_m
    assert point.get("ce") == point.get("le") == "9999999.0"
    track = root.find("detail/track")
    assert track is not None
    assert float(track.get("speed", "")) == sample.velocity_mps
    assert 90.0 < float(track.get("course", "")) < 100.0  # flying east-south-east
    ours = root.find("detail/gsomia")
    assert ours is not None
    assert (ours.get("seq"), ours.get("originator"), ours.get("phase")) == (
        "100",
        "KOR",
        update.phase.value,
    )
    launch = ours.find("launch")
    impact = ours.find("impact")
    label = ours.find("label")
    assert launch is not None and impact is not None and label is not None
    assert (float(launch.get("lat", "")), float(launch.get("lon", ""))) == (39.0, 125.7)
    assert float(impact.get("lat", "")) == update.impact_point.lat
    assert label.attrib == {
        "originator": "KOR",
        "policy": "KOR",
        "classification": "gunsa-2",
        "releasable_to": "JPN USA",
        "compartments": "",
    }
    assert root.findtext("detail/remarks") == "KOR gunsa-2//REL TO JPN, USA"


def test_a_banner_is_written_as_the_remarks() -> None:
    event = update_to_cot(flight()[0], banner="군사II급비밀//REL TO USA, JPN, KOR")
    root = SafeET.fromstring(event)
    assert root.findtext("detail/remarks") == "군사II급비밀//REL TO USA, JPN, KOR"


def test_sensor_metadata_never_leaves_in_a_cot_event() -> None:
    assert SENSOR.sensor_location is not None
    location = {SENSOR.sensor_location.lat, SENSOR.sensor_location.lon}
    for update in flight(rate=0.2):
        assert update.sensor == SENSOR
        event = update_to_cot(update)
        text = event.decode()
        for leak in ("AN/TPY-2", "TEL movement", "Sohae", "sensor"):
            assert leak not in text
        for element in SafeET.fromstring(event).iter():
            for value in element.attrib.values():
                with contextlib.suppress(ValueError):
                    assert float(value) not in location


def test_an_update_without_samples_is_shown_at_its_launch_point() -> None:
    update = replace(flight()[0], trajectory=(), impact_point=None, impact_time=None)
    root = SafeET.fromstring(update_to_cot(update))
    assert root.get("time") == "2026-03-01T03:00:00.000000Z"
    point = root.find("point")
    assert point is not None
    assert (point.get("lat"), point.get("lon"), point.get("hae")) == ("39.0", "125.7", "0.0")
    assert root.find("detail/gsomia/impact") is None
    track = root.find("detail/track")
    assert track is not None and track.get("speed") == "0.0"


@pytest.mark.parametrize("stale", [0.0, -1.0, math.nan, math.inf])
def test_a_stale_period_must_be_positive_and_finite(stale: float) -> None:
    with pytest.raises(InputError, match="stale_seconds"):
        update_to_cot(flight()[0], stale_seconds=stale)


# -- round trip -----------------------------------------------------------------------------


def test_a_whole_flight_round_trips_through_cot() -> None:
    assembler = CotTrackAssembler()
    updates = flight()
    for update in updates:
        back = feed(assembler, update_to_cot(update))
        assert back == replace(update, sensor=None)
    assert updates[-1].phase is Phase.IMPACT
    assert assembler.last_stripped == ("contact", "remarks")


def test_the_label_is_the_assembler_callers() -> None:
    """The label in the event is informative; the assembler's caller decides the label."""
    other = SecurityLabel("KOR", "KOR", "gunsa-3")
    update = flight()[0]
    back = CotTrackAssembler().feed(update_to_cot(update), originator="KOR", label=other)
    assert back.label == other
    assert back.trajectory == update.trajectory


# -- in, from TAK tools ---------------------------------------------------------------------


def test_a_tak_tools_events_build_a_track() -> None:
    assembler = CotTrackAssembler()
    first = feed(assembler, tak_event(detail='<contact callsign="X"/><_flow-tags_ a="1"/>'))
    assert assembler.last_stripped == ("_flow-tags_", "contact")
    assert first.seq == 0
    assert first.originator == "KOR" and first.label == LABEL
    assert first.phase is Phase.MIDCOURSE
    assert first.launch_point == GeoPoint(39.5, 127.0, 150000.0)
    assert first.launch_time == T0
    assert first.impact_point is None and first.impact_time is None
    assert first.trajectory == (TrackSample(T0, 39.5, 127.0, 150000.0, 0.0),)
    # Ten seconds later, 0.1 degree of latitude further north: the speed is derived.
    second = feed(assembler, tak_event(at=T0 + timedelta(seconds=10), lat="39.6"))
    assert second.seq == 1
    assert second.launch_point == first.launch_point
    assert second.trajectory[0].velocity_mps == pytest.approx(1111.95, rel=1e-3)
    # Given speed wins; descending below 100 km turns the track terminal, for good.
    third = feed(
        assembler,
        tak_event(at=T0 + timedelta(seconds=20), hae="90000", detail='<track speed="2000.5"/>'),
    )
    assert (third.seq, third.phase, third.trajectory[0].velocity_mps) == (
        2,
        Phase.TERMINAL,
        2000.5,
    )
    fourth = feed(assembler, tak_event(at=T0 + timedelta(seconds=30), hae="95000"))
    assert (fourth.seq, fourth.phase) == (3, Phase.TERMINAL)


def test_an_unknown_altitude_is_zero_and_does_not_change_the_phase() -> None:
    assembler = CotTrackAssembler()
    feed(assembler, tak_event(hae="150000"))
    later = feed(assembler, tak_event(at=T0 + timedelta(seconds=5), hae="9999999.0"))
    assert later.trajectory[0].alt_m == 0.0
    assert later.phase is Phase.MIDCOURSE


def test_tracks_are_kept_apart_by_uid() -> None:
    assembler = CotTrackAssembler()
    assert feed(assembler, tak_event("a")).seq == 0
    assert feed(assembler, tak_event("b")).seq == 0
    assert feed(assembler, tak_event("a", at=T0 + timedelta(seconds=1))).seq == 1
    assert len(assembler) == 2


def test_the_least_recently_updated_track_is_forgotten_first() -> None:
    assembler = CotTrackAssembler(max_tracks=2)
    feed(assembler, tak_event("a"))
    feed(assembler, tak_event("b"))
    feed(assembler, tak_event("a", at=T0 + timedelta(seconds=1)))
    feed(assembler, tak_event("c"))
    assert len(assembler) == 2
    assert feed(assembler, tak_event("a", at=T0 + timedelta(seconds=2))).seq == 2
    assert feed(assembler, tak_event("b", at=T0 + timedelta(seconds=2))).seq == 0


def test_an_update_the_link_did_not_take_is_retracted_without_a_gap() -> None:
    assembler = CotTrackAssembler()
    first = feed(assembler, tak_event())
    second = feed(assembler, tak_event(at=T0 + timedelta(seconds=1), lat="39.6"))
    assert assembler.retract(second)
    assert not assembler.retract(second)  # already undone
    again = feed(assembler, tak_event(at=T0 + timedelta(seconds=2), lat="39.7"))
    assert again.seq == 1 and again.launch_point == first.launch_point
    assert not assembler.retract(first)  # not the track's last update
    assert assembler.retract(again)
    assert assembler.retract(first)
    assert len(assembler) == 0
    assert feed(assembler, tak_event(at=T0 + timedelta(seconds=3))).seq == 0


def test_a_space_track_type_is_a_track() -> None:
    update = feed(CotTrackAssembler(), tak_event(cot_type="a-u-P"))
    assert update.track_id == "trk-1"


# -- refusals -------------------------------------------------------------------------------

_BAD: list[tuple[str, str, str]] = [
    ("not xml", "<event uid='x'", "malformed CoT event"),
    ("not an event", "<message/>", "not 'event'"),
    (
        "a DTD",
        '<!DOCTYPE event [<!ENTITY a "aaaa">]><event uid="x">&a;</event>',
        "DTDForbidden",
    ),
    ("no uid", tak_event().replace('uid="trk-1" ', ""), "without a uid"),
    ("no type", tak_event().replace('type="a-h-A-W-M-S-S" ', ""), "without a type"),
    ("users' own position", tak_event(cot_type="a-f-G-U-C"), "not a missile track"),
    ("a ping", tak_event(cot_type="t-x-c-t"), "not a missile track"),
    ("no time", re.sub(r' time="[^"]*"', "", tak_event()), "lacks 'time'"),
    ("a naive time", tak_event().replace(".000000Z", "", 1), "no time zone"),
    ("a bad time", tak_event().replace("2026-03-01T", "yesterday", 1), "not an xs:dateTime"),
    ("no point", re.sub(r"<point[^>]*/>", "", tak_event()), "no <point>"),
    ("no lat", tak_event().replace('lat="39.5" ', ""), "lacks 'lat'"),
    ("NaN lat", tak_event(lat="NaN"), "must be finite"),
    ("infinite lon", tak_event(lon="-INF"), "must be finite"),
    ("a word for lat", tak_event(lat="north"), "not a number"),
    ("underscored digits", tak_event(lat="3_9"), "not a number"),
    ("lat out of range", tak_event(lat="91"), "outside"),
    ("lon out of range", tak_event(lon="180.5"), "outside"),
    ("negative speed", tak_event(detail='<track speed="-1"/>'), "must be >= 0"),
    ("infinite speed", tak_event(detail='<track speed="inf"/>'), "must be finite"),
    ("bad phase", tak_event(detail='<gsomia phase="coasting"/>'), "not one of"),
    ("bad seq", tak_event(detail='<gsomia seq="-1"/>'), "not a sequence number"),
    (
        "a launch without time",
        tak_event(detail='<gsomia><launch lat="39" lon="125"/></gsomia>'),
        "lacks 'time'",
    ),
    (
        "another originator's track",
        tak_event(detail='<gsomia originator="JPN" seq="0"/>'),
        "not re-fed as KOR's own",
    ),
]


@pytest.mark.parametrize(("event", "message"), [b[1:] for b in _BAD], ids=[b[0] for b in _BAD])
def test_malformed_events_are_refused(event: str, message: str) -> None:
    with pytest.raises(InvalidTrackError, match=re.escape(message)):
        feed(CotTrackAssembler(), event)


_SENSOR = [
    '<sensor fov="45" range="300000" azimuth="270"/>',  # ATAK's sensor field-of-view detail
    "<sensors><radar/></sensors>",
    '<gsomia><sensor_location lat="35.9" lon="128.1"/></gsomia>',
    "<pre_launch_indicators>TEL movement</pre_launch_indicators>",
    '<remarks sensorType="AN/TPY-2">seen</remarks>',
    '<contact callsign="x" sensor-location="35.9,128.1"/>',
]


@pytest.mark.parametrize("detail", _SENSOR)
def test_sensor_metadata_is_refused_wherever_it_is(detail: str) -> None:
    with pytest.raises(TrackFieldRefusedError, match="sensor metadata is not shared"):
        feed(CotTrackAssembler(), tak_event(detail=detail))


def test_a_sensor_attribute_on_the_point_is_refused() -> None:
    event = tak_event().replace("<point ", '<point sensor_type="radar" ')
    with pytest.raises(TrackFieldRefusedError, match="sensor_type"):
        feed(CotTrackAssembler(), event)


def test_a_refused_event_changes_nothing() -> None:
    assembler = CotTrackAssembler()
    feed(assembler, tak_event())
    with pytest.raises(TrackFieldRefusedError):
        feed(assembler, tak_event(at=T0 + timedelta(seconds=1), detail="<sensor/>"))
    with pytest.raises(InvalidTrackError):
        feed(assembler, tak_event(at=T0 + timedelta(seconds=1), lat="95"))
    assert feed(assembler, tak_event(at=T0 + timedelta(seconds=2))).seq == 1


def test_events_out_of_order_are_refused() -> None:
    assembler = CotTrackAssembler()
    feed(assembler, tak_event(at=T0 + timedelta(seconds=10)))
    with pytest.raises(InvalidTrackError, match="out of order"):
        feed(assembler, tak_event(at=T0 + timedelta(seconds=9)))


def test_a_replayed_update_is_refused() -> None:
    assembler = CotTrackAssembler()
    updates = flight()
    for update in updates[:3]:
        feed(assembler, update_to_cot(update))
    with pytest.raises(InvalidTrackError, match="not after 2"):
        feed(assembler, update_to_cot(updates[2]))
    with pytest.raises(InvalidTrackError, match="out of order"):
        feed(assembler, update_to_cot(updates[1]))
    assert feed(assembler, update_to_cot(updates[3])).seq == 3


def test_nothing_follows_an_impact() -> None:
    assembler = CotTrackAssembler()
    updates = flight(rate=0.1)
    for update in updates:
        feed(assembler, update_to_cot(update))
    late = replace(updates[-1], seq=updates[-1].seq + 1)
    with pytest.raises(InvalidTrackError, match="ended"):
        feed(assembler, update_to_cot(late))


def test_an_oversized_event_is_refused_unread() -> None:
    event = tak_event(detail="<remarks>" + "x" * MAX_EVENT_BYTES + "</remarks>")
    with pytest.raises(InvalidTrackError, match="over"):
        feed(CotTrackAssembler(), event)


# -- classify, pong -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cot_type", "kind"),
    [
        ("a-h-A-W-M-S-S", CotKind.TRACK),
        ("a-u-A-W-M", CotKind.TRACK),
        ("a-n-P-S", CotKind.TRACK),
        ("t-x-c-t", CotKind.PING),
        ("t-x-c-t-r", CotKind.OTHER),
        ("t-x-d-d", CotKind.OTHER),  # PyTAK's hello
        ("a-f-G-U-C", CotKind.OTHER),  # a TAK user's own position
        ("a-h-A-M-F", CotKind.OTHER),  # a fixed-wing aircraft
        ("b-t-f", CotKind.OTHER),  # chat
    ],
)
def test_classify(cot_type: str, kind: CotKind) -> None:
    assert classify(tak_event(cot_type=cot_type).encode()) is kind
    assert is_track_type(cot_type) is (kind is CotKind.TRACK)


def test_classify_refuses_malformed_xml() -> None:
    with pytest.raises(InvalidTrackError):
        classify(b"<event")


def test_a_pong_answers_a_ping() -> None:
    now = datetime(2026, 3, 1, 3, 0, 1, 500000, tzinfo=UTC)
    root = SafeET.fromstring(pong_event(now))
    assert root.get("type") == "t-x-c-t-r"
    assert root.get("uid") == "takPong"
    assert root.get("time") == "2026-03-01T03:00:01.500000Z"
    assert root.get("stale") == "2026-03-01T03:00:21.500000Z"


# -- split_stream ---------------------------------------------------------------------------

DECLARATION = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'


def test_split_stream_cuts_events_and_keeps_the_rest() -> None:
    a, b = update_to_cot(flight()[0]), b'<event uid="p" type="t-x-c-t"/>'
    events, rest = split_stream(DECLARATION + b"\n" + a + b"\r\n" + b + b"\n " + a[:50])
    assert events == [a, b]
    assert rest == a[:50]
    events, rest = split_stream(rest + a[50:])
    assert (events, rest) == ([a], b"")


@pytest.mark.parametrize(
    "event",
    [
        b'<event uid="a/>b" type="x>y"><point/></event>',  # '>' and '/>' in attribute values
        b"<event uid='q'><detail><remarks><![CDATA[</event>]]></remarks></detail></event>",
        b'<event uid="c"><!-- </event> --><detail/></event>',
        b'<event uid="d"><?pi </event> ?></event>',
        b'<event\n  uid="e"\n/>',
        b'<event uid="f"></event >',
        b'<event uid="g"><detail><events/></detail></event>',
    ],
)
def test_split_stream_is_not_fooled_by_markup_in_values(event: bytes) -> None:
    assert split_stream(b"  " + event + b"\n<eve") == ([event], b"<eve")


def test_junk_between_events_is_handed_over_to_be_refused() -> None:
    a = update_to_cot(flight()[0])
    events, rest = split_stream(b"garbage <not-event/>\n" + a + b"<eventual/>" + a)
    assert events == [b"garbage <not-event/>", a, b"<eventual/>", a]
    assert rest == b""
    with pytest.raises(InvalidTrackError):
        classify(events[0])


def test_junk_is_held_until_an_event_follows() -> None:
    assert split_stream(b"garbage <ev") == ([], b"garbage <ev")
    assert split_stream(b"garbage <event") == ([], b"garbage <event")
    assert split_stream(b"garbage <event>") == ([b"garbage"], b"<event>")


def test_split_stream_bounds_what_it_holds() -> None:
    with pytest.raises(CotStreamError, match="without a complete CoT event"):
        split_stream(b'<event uid="x"><detail>' + b" " * MAX_EVENT_BYTES)
    with pytest.raises(CotStreamError, match="over"):
        split_stream(b'<event uid="x"><detail>' + b" " * MAX_EVENT_BYTES + b"</detail></event>")
    with pytest.raises(CotStreamError):
        split_stream(b"x" * (MAX_EVENT_BYTES + 1))
    # Just under the bound is held.
    held = b'<event uid="x">' + b" " * (MAX_EVENT_BYTES - 20)
    assert split_stream(held) == ([], held)


# Values that stress the framing: quotes of the other kind, '>' and '/>', '</event>' text.
def _pieces(*pieces: str) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(pieces), max_size=12).map("".join)


_VALUE = _pieces(*"ab 1/>'=?!-[]", "</event>", "é", "<![CDATA[x").map(
    lambda s: s.replace("<", "&lt;")
)
_CDATA = _pieces(*"ab<>/]-", "</event>").filter(lambda s: "]]>" not in s and not s.endswith("]"))
_COMMENT = _pieces(*"ab<>/", "</event>", "-").filter(
    lambda s: "--" not in s and not s.endswith("-")
)


@st.composite
def _events(draw: Any) -> bytes:
    kind = draw(st.integers(0, 3))
    value = draw(_VALUE)
    if kind == 0:
        space = draw(st.sampled_from(["", " ", "\n"]))
        return f'<event uid="{value}" type="a-h-A-W-M"{space}/>'.encode()
    if kind == 1:
        return (
            f'<event uid=\'{value.replace(chr(39), "")}\'><point lat="1" lon="2"/>'
            f"<detail><remarks><![CDATA[{draw(_CDATA)}]]></remarks>"
            f"<!--{draw(_COMMENT)}--></detail></event>"
        ).encode()
    if kind == 2:
        return f'<event uid="{value}"><detail><events/><eventual a=">"/></detail></event>'.encode()
    some = _some_events()
    return some[draw(st.integers(0, len(some) - 1))]


@functools.cache
def _some_events() -> list[bytes]:
    return [update_to_cot(u) for u in flight(rate=0.05)]


_SEPARATOR = st.sampled_from([b"", b"\n", b" \r\n\t", DECLARATION + b"\n", DECLARATION])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_SEPARATOR, _events()), max_size=6), st.data())
def test_any_chunking_of_a_stream_yields_the_same_events(
    items: list[tuple[bytes, bytes]], data: st.DataObject
) -> None:
    stream = b"".join(sep + event for sep, event in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    got: list[bytes] = []
    buffer = b""
    start = 0
    for cut in [*cuts, len(stream)]:
        events, buffer = split_stream(buffer + stream[start:cut])
        got.extend(events)
        start = cut
    assert got == [event for _, event in items]
    assert buffer == b""
