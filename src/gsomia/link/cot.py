"""Cursor-on-Target (CoT) for the missile-warning link: TAK's XML events, out and in.

Pure: standard library, defusedxml, :mod:`gsomia.core`, :mod:`gsomia.link.tracks` and
:mod:`gsomia.link.simulator`'s geometry; no I/O, no clock (:func:`pong_event` takes the time it
stamps).

**Out.** :func:`update_to_cot` writes one CoT 2.0 event per track update, for the update's
latest trajectory sample (the launch point if it has none)::

    <event version="2.0" uid="<track id>" type="a-h-A-W-M-S-S" how="m-f"
           time="<sample time>" start="<sample time>" stale="<start + stale_seconds>">
      <point lat=".." lon=".." hae="<alt_m>" ce="9999999.0" le="9999999.0"/>
      <detail>
        <track course="<degrees>" speed="<m/s>"/>
        <contact callsign="KOR t-1"/>
        <gsomia version="1" seq="3" originator="KOR" phase="midcourse">
          <launch lat=".." lon=".." hae=".." time=".."/>
          <impact lat=".." lon=".." hae=".." time=".."/>          (when estimated)
          <label originator="KOR" policy="KOR" classification="gunsa-2"
                 releasable_to="JPN USA" compartments=""/>
        </gsomia>
        <remarks>(the label's banner, or its policy and level)</remarks>
      </detail>
    </event>

Only the three shared elements are written, field by field, as :func:`~gsomia.link.tracks.to_wire`
does: the sensor metadata a :class:`~gsomia.link.tracks.TrackUpdate` may carry never is. ``ce`` and
``le`` (the position's error) say "no value", as an accuracy would hint at the sensor. ``hae`` is
the altitude above the spherical Earth of :mod:`gsomia.link.simulator`, not above the WGS 84
ellipsoid (a few tens of metres apart, far below what a missile track resolves).

The **type** is an atom (``a``), hostile (``h``), air track (``A``), weapon (``W``), missile in
flight (``M``), surface/land launched (``S``), surface-to-surface missile (``S``): CoT types
follow the MIL-STD-2525 symbol hierarchy, and 1.X.2.2.1.1.1 "Air track / Weapon / Missile in
flight / Surface/land launched missile / Surface to surface missile (SSM)" is function id
``WMSS--`` (2525B/C) — the closest symbol to a ballistic missile in flight. The **how** is
``m-f``, "machine, fused": the originator's track, which may come from several sensors and names
none (``m-g``, "machine, GPS", would be false for a missile track).

**In.** :class:`CotTrackAssembler` turns the events of TAK clients back into track updates, keeping
per track (per CoT ``uid``) a sequence number counted from 0 without gaps, the launch point and
time (the first point seen, unless the event's ``gsomia`` element names them), the phase and the
last time. Only missile tracks are taken (:func:`is_track_type`: ``a-?-A-W-M...`` missiles in
flight and ``a-?-P...`` space tracks, of any affiliation); TAK's own traffic (its ``t-x-c-t``
pings, PyTAK's ``t-x-d-d`` hello, the users' positions ``a-f-G-U-C``, chat ``b-t-f``) is not a
track (:func:`classify`). Refused, with :class:`~gsomia.core.errors.InvalidTrackError` and nothing
kept: malformed XML (or any DTD or entity: defusedxml), a missing ``uid``, ``time`` or
``<point>``, coordinates that are not finite or out of range, an event older than the last of its
track, a ``gsomia`` sequence number not above the last one (a replay), an event for a track that
has ended, and a ``gsomia`` element of another originator (a track that came over the link is
not re-fed as this node's own: that would launder its label and loop it). **Sensor metadata is
refused** with :class:`~gsomia.core.errors.TrackFieldRefusedError`, as
:func:`~gsomia.link.tracks.from_wire` refuses it: any element or attribute, anywhere in the event,
named as in :data:`~gsomia.link.tracks.SENSOR_FIELDS` or starting with "sensor" (ATAK's own
``<sensor>`` field-of-view detail among them). Everything else in ``<detail>`` (``contact``,
``remarks``, ``link``, ``precisionlocation``, ``_flow-tags_``, ...) has no place in a track
update and is stripped: :attr:`CotTrackAssembler.last_stripped` names it.

:func:`split_stream` cuts a TCP byte stream into events, as a TAK server reads its clients.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from gsomia.core.errors import (
    CotStreamError,
    InputError,
    InvalidTrackError,
    TrackFieldRefusedError,
)
from gsomia.core.labels import SecurityLabel
from gsomia.link.simulator import TERMINAL_ALTITUDE_M, great_circle_m
from gsomia.link.tracks import SENSOR_FIELDS, GeoPoint, Phase, TrackSample, TrackUpdate

__all__ = [
    "COT_HOW",
    "GSOMIA_ELEMENT",
    "MAX_EVENT_BYTES",
    "MISSILE_COT_TYPE",
    "NO_VALUE",
    "PING_TYPE",
    "PONG_TYPE",
    "CotKind",
    "CotTrackAssembler",
    "classify",
    "is_track_type",
    "pong_event",
    "split_stream",
    "update_to_cot",
]

MISSILE_COT_TYPE = "a-h-A-W-M-S-S"  # hostile air track, surface-to-surface missile (see above)
COT_HOW = "m-f"  # machine, fused
PING_TYPE = "t-x-c-t"  # a TAK client's keep-alive ping
PONG_TYPE = "t-x-c-t-r"  # the server's answer, which resets the client's receive timeout
GSOMIA_ELEMENT = "gsomia"  # our element in <detail>
GSOMIA_VERSION = "1"
NO_VALUE = 9_999_999.0  # CoT's "no value" for ce, le and hae
MAX_EVENT_BYTES = 1024 * 1024  # one event, and what split_stream holds without one complete
MAX_TRACKS = 4096  # tracks an assembler remembers (least recently updated forgotten first)
_MAX_NAME = 256  # uid and type length
_ENDED = frozenset({Phase.IMPACT, Phase.LOST})

_TRACK_TYPE = re.compile(r"a-[a-z]-(?:A-W-M|P)(?:-[A-Za-z0-9]+)*")
_NUMBER = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*")
_NON_FINITE = re.compile(r"\s*[+-]?(?:inf|infinity|nan)\s*", re.IGNORECASE)


def _norm(name: str) -> str:
    """An element or attribute name without namespace, case, hyphens or underscores."""
    return name.rpartition("}")[2].lower().replace("-", "").replace("_", "")


_SENSOR_NAMES = frozenset(_norm(f) for f in SENSOR_FIELDS)


def _is_sensor_name(name: str) -> bool:
    n = _norm(name)
    return n in _SENSOR_NAMES or n.startswith("sensor") or "prelaunch" in n


# -- out ------------------------------------------------------------------------------------


def _cot_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _num(value: float) -> str:
    return repr(float(value))


def _bearing(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial great-circle bearing from point 1 to point 2, degrees clockwise from north."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


def _course(update: TrackUpdate, lat: float, lon: float) -> float:
    """Where the missile is heading: along the great circle from launch, else towards impact."""
    launch = update.launch_point
    if great_circle_m(launch.lat, launch.lon, lat, lon) > 1.0:
        # the final bearing of launch -> here is the reverse of the bearing here -> launch
        return (_bearing(lat, lon, launch.lat, launch.lon) + 180.0) % 360.0
    impact = update.impact_point
    if impact is not None and great_circle_m(lat, lon, impact.lat, impact.lon) > 1.0:
        return _bearing(lat, lon, impact.lat, impact.lon)
    return 0.0


def _point_element(parent: ET.Element, tag: str, p: GeoPoint, at: datetime) -> None:
    ET.SubElement(
        parent,
        tag,
        {"lat": _num(p.lat), "lon": _num(p.lon), "hae": _num(p.alt_m), "time": _cot_time(at)},
    )


def _marking(label: SecurityLabel) -> str:
    """The label as one line, for <remarks> when no banner is given (not a formal marking)."""
    text = f"{label.policy} {label.classification}"
    if label.compartments:
        text += "//" + "/".join(sorted(label.compartments))
    if label.releasable_to:
        text += "//REL TO " + ", ".join(sorted(label.releasable_to))
    return text


def update_to_cot(
    update: TrackUpdate, *, stale_seconds: float = 30.0, banner: str | None = None
) -> bytes:
    """The CoT event (UTF-8 XML, no declaration) for ``update``'s latest position.

    ``time`` and ``start`` are the sample's time, ``stale`` that plus ``stale_seconds``.
    ``banner``, when given (the caller renders it with :func:`gsomia.core.markings.render`, which
    needs the registry), is written as ``<remarks>``; otherwise a plain "policy level//REL TO ..."
    line is. Sensor metadata is never written.

    Raises:
        InputError: ``stale_seconds`` is not a finite number above 0.
    """
    if not (math.isfinite(stale_seconds) and stale_seconds > 0):
        raise InputError(f"stale_seconds {stale_seconds!r} must be a finite number above 0")
    sample = update.latest
    if sample is not None:
        at, lat, lon, alt, speed = (
            sample.time,
            sample.lat,
            sample.lon,
            sample.alt_m,
            sample.velocity_mps,
        )
    else:
        p = update.launch_point
        at, lat, lon, alt, speed = update.launch_time, p.lat, p.lon, p.alt_m, 0.0
    event = ET.Element(
        "event",
        {
            "version": "2.0",
            "uid": update.track_id,
            "type": MISSILE_COT_TYPE,
            "how": COT_HOW,
            "time": _cot_time(at),
            "start": _cot_time(at),
            "stale": _cot_time(at + timedelta(seconds=stale_seconds)),
        },
    )
    ET.SubElement(
        event,
        "point",
        {
            "lat": _num(lat),
            "lon": _num(lon),
            "hae": _num(alt),
            "ce": _num(NO_VALUE),
            "le": _num(NO_VALUE),
        },
    )
    detail = ET.SubElement(event, "detail")
    ET.SubElement(
        detail, "track", {"course": _num(_course(update, lat, lon)), "speed": _num(speed)}
    )
    ET.SubElement(detail, "contact", {"callsign": f"{update.originator} {update.track_id}"})
    ours = ET.SubElement(
        detail,
        GSOMIA_ELEMENT,
        {
            "version": GSOMIA_VERSION,
            "seq": str(update.seq),
            "originator": update.originator,
            "phase": update.phase.value,
        },
    )
    _point_element(ours, "launch", update.launch_point, update.launch_time)
    if update.impact_point is not None and update.impact_time is not None:
        _point_element(ours, "impact", update.impact_point, update.impact_time)
    label = update.label
    ET.SubElement(
        ours,
        "label",
        {
            "originator": label.originator,
            "policy": label.policy,
            "classification": label.classification,
            "releasable_to": " ".join(sorted(label.releasable_to)),
            "compartments": " ".join(sorted(label.compartments)),
        },
    )
    remarks = ET.SubElement(detail, "remarks")
    remarks.text = banner if banner is not None else _marking(label)
    return ET.tostring(event, encoding="unicode").encode("utf-8")


def pong_event(now: datetime, *, stale_seconds: float = 20.0) -> bytes:
    """The ``t-x-c-t-r`` answer a TAK server sends to a client's ``t-x-c-t`` ping."""
    at = _cot_time(now)
    event = ET.Element(
        "event",
        {
            "version": "2.0",
            "uid": "takPong",
            "type": PONG_TYPE,
            "how": "h-g-i-g-o",
            "time": at,
            "start": at,
            "stale": _cot_time(now + timedelta(seconds=stale_seconds)),
        },
    )
    ET.SubElement(
        event,
        "point",
        {"lat": "0.0", "lon": "0.0", "hae": "0.0", "ce": "9999999.0", "le": "9999999.0"},
    )
    ET.SubElement(event, "detail")
    return ET.tostring(event, encoding="unicode").encode("utf-8")


# -- in -------------------------------------------------------------------------------------


class CotKind(StrEnum):
    TRACK = "track"  # a missile track: fed to the assembler
    PING = "ping"  # a client's keep-alive: answered with a pong, never ingested
    OTHER = "other"  # anything else TAK sends (positions of its users, chat, deletes): ignored


def is_track_type(cot_type: str) -> bool:
    """Whether a CoT type is a missile track: ``a-?-A-W-M...`` or a space track ``a-?-P...``."""
    return _TRACK_TYPE.fullmatch(cot_type) is not None


def _parse(event_xml: bytes) -> ET.Element:
    if len(event_xml) > MAX_EVENT_BYTES:
        raise InvalidTrackError(f"CoT event refused: over {MAX_EVENT_BYTES} bytes")
    try:
        root: ET.Element = SafeET.fromstring(
            event_xml, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as e:
        raise InvalidTrackError(f"CoT event refused: {type(e).__name__}") from e
    except (SyntaxError, ValueError) as e:  # ParseError is a SyntaxError; bad encodings raise
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InvalidTrackError(f"malformed CoT event: {detail}") from e
    if root.tag != "event":
        raise InvalidTrackError(f"CoT event refused: document element {root.tag!r}, not 'event'")
    return root


def _type(root: ET.Element) -> str:
    cot_type = root.get("type")
    if not cot_type or len(cot_type) > _MAX_NAME:
        raise InvalidTrackError("CoT event without a type (or with one too long)")
    return cot_type


def classify(event_xml: bytes) -> CotKind:
    """What a TAK server does with this event: feed it, answer it, or ignore it.

    Raises:
        InvalidTrackError: malformed XML, a DTD or entity, or no ``type``.
    """
    cot_type = _type(_parse(event_xml))
    if cot_type == PING_TYPE:
        return CotKind.PING
    return CotKind.TRACK if is_track_type(cot_type) else CotKind.OTHER


def _number(element: ET.Element, name: str, where: str) -> float | None:
    text = element.get(name)
    if text is None:
        return None
    if _NON_FINITE.fullmatch(text):
        raise InvalidTrackError(f"{where} {name}={text!r}: must be finite")
    if not _NUMBER.fullmatch(text):
        raise InvalidTrackError(f"{where} {name}={text!r}: not a number")
    return float(text)


def _required_number(element: ET.Element, name: str, where: str) -> float:
    value = _number(element, name, where)
    if value is None:
        raise InvalidTrackError(f"{where} lacks {name!r}")
    return value


def _altitude(element: ET.Element, where: str) -> float | None:
    """``hae``, or None when absent or CoT's "no value"."""
    hae = _number(element, "hae", where)
    return None if hae is None or hae >= NO_VALUE else hae


def _instant(element: ET.Element, name: str, where: str) -> datetime:
    text = element.get(name)
    if not text:
        raise InvalidTrackError(f"{where} lacks {name!r}")
    try:
        at = datetime.fromisoformat(text.strip()) if len(text) <= 64 else None
    except ValueError:
        at = None
    if at is None:
        raise InvalidTrackError(f"{where} {name}={text[:64]!r}: not an xs:dateTime")
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidTrackError(f"{where} {name}={text!r}: no time zone (CoT times are UTC)")
    return at


def _geo(element: ET.Element, where: str) -> tuple[GeoPoint, datetime]:
    lat = _required_number(element, "lat", where)
    lon = _required_number(element, "lon", where)
    alt = _altitude(element, where)
    try:
        point = GeoPoint(lat, lon, alt if alt is not None else 0.0)
    except InvalidTrackError as e:
        raise InvalidTrackError(f"{where}: {e.message}") from e
    return point, _instant(element, "time", where)


@dataclass(frozen=True, slots=True)
class _Ours:
    """What a ``gsomia`` detail element says (each part optional)."""

    seq: int | None
    originator: str | None
    phase: Phase | None
    launch: tuple[GeoPoint, datetime] | None
    impact: tuple[GeoPoint, datetime] | None


def _read_ours(element: ET.Element, where: str) -> _Ours:
    where = f"{where} <{GSOMIA_ELEMENT}>"
    seq: int | None = None
    text = element.get("seq")
    if text is not None:
        if not text.isascii() or not text.isdigit() or len(text) > 18:
            raise InvalidTrackError(f"{where} seq={text!r}: not a sequence number")
        seq = int(text)
    phase: Phase | None = None
    text = element.get("phase")
    if text is not None:
        try:
            phase = Phase(text)
        except ValueError as e:
            known = ", ".join(p.value for p in Phase)
            raise InvalidTrackError(f"{where} phase={text!r}: not one of {known}") from e
    launch = element.find("launch")
    impact = element.find("impact")
    return _Ours(
        seq=seq,
        originator=element.get("originator"),
        phase=phase,
        launch=_geo(launch, f"{where} <launch>") if launch is not None else None,
        impact=_geo(impact, f"{where} <impact>") if impact is not None else None,
    )


def _refuse_sensor(root: ET.Element, where: str) -> None:
    found: set[str] = set()
    for element in root.iter():
        if _is_sensor_name(element.tag):
            found.add(f"<{element.tag}>")
        found.update(name for name in element.attrib if _is_sensor_name(name))
    if found:
        raise TrackFieldRefusedError(
            f"{where}: sensor metadata is not shared on the missile-warning link: "
            f"{', '.join(sorted(found))}"
        )


@dataclass(frozen=True, slots=True)
class _TrackState:
    last_seq: int
    launch_point: GeoPoint
    launch_time: datetime
    phase: Phase
    last_time: datetime
    last_point: GeoPoint
    altitude_known: bool
    source_seq: int | None  # the last gsomia seq seen, to refuse replays
    previous: _TrackState | None  # the state before the last update, for retract()


def _check_order(state: _TrackState, at: datetime, ours: _Ours | None, where: str) -> None:
    if state.phase in _ENDED:
        raise InvalidTrackError(f"{where}: the track ended ({state.phase.value})")
    if at < state.last_time:
        raise InvalidTrackError(
            f"{where}: time {at.isoformat()} is before the track's last, "
            f"{state.last_time.isoformat()} (out of order)"
        )
    seq = ours.seq if ours is not None else None
    if seq is not None and state.source_seq is not None and seq <= state.source_seq:
        raise InvalidTrackError(f"{where}: seq {seq} is not after {state.source_seq} (a replay)")


def _speed(state: _TrackState | None, here: GeoPoint, altitude_known: bool, at: datetime) -> float:
    """The mean speed since the track's previous point (0 for its first)."""
    if state is None:
        return 0.0
    dt = (at - state.last_time).total_seconds()
    if dt <= 0:
        return 0.0
    last = state.last_point
    ground = great_circle_m(last.lat, last.lon, here.lat, here.lon)
    climb = here.alt_m - last.alt_m if altitude_known and state.altitude_known else 0.0
    return math.hypot(ground, climb) / dt


def _guess_phase(state: _TrackState | None, alt: float | None) -> Phase:
    """Midcourse; terminal once descending below 100 km, and then for good."""
    if state is None:
        return Phase.MIDCOURSE
    if state.phase is Phase.TERMINAL:
        return Phase.TERMINAL
    descending = alt is not None and state.altitude_known and alt < state.last_point.alt_m
    if descending and alt is not None and alt < TERMINAL_ALTITUDE_M:
        return Phase.TERMINAL
    return Phase.MIDCOURSE


class CotTrackAssembler:
    """Turns the CoT events of TAK clients into track updates, keeping per-track state.

    Pure and single-threaded: one instance per server, fed one event at a time. A refused event
    changes nothing. At most ``max_tracks`` tracks are remembered; the least recently updated is
    forgotten first (an event for it later starts it again at sequence 0).
    """

    def __init__(self, *, max_tracks: int = MAX_TRACKS) -> None:
        if max_tracks < 1:
            raise InputError("max_tracks must be at least 1")
        self._max_tracks = max_tracks
        self._tracks: OrderedDict[str, _TrackState] = OrderedDict()
        self._stripped: tuple[str, ...] = ()

    @property
    def last_stripped(self) -> tuple[str, ...]:
        """The ``<detail>`` elements of the last accepted event that were not carried, sorted."""
        return self._stripped

    def __len__(self) -> int:
        return len(self._tracks)

    def feed(self, event_xml: bytes, *, originator: str, label: SecurityLabel) -> TrackUpdate:
        """The track update one CoT event makes, as ``originator``'s, under ``label``.

        The sequence number is this assembler's count for the event's ``uid``: 0, 1, 2, ...
        The phase, launch point and time and impact estimate come from the event's ``gsomia``
        element when it has one; otherwise the launch is the first point seen, there is no
        impact estimate, and the phase is midcourse, turning terminal once the track descends
        below 100 km (it never goes back). The speed comes from ``<track speed>``, else from
        the distance to the previous point, else 0.

        Raises:
            TrackFieldRefusedError: sensor metadata anywhere in the event.
            InvalidTrackError: malformed XML, not a missile track type, a missing uid, time or
                point, a bad coordinate, time, speed or ``gsomia`` field, an event out of order
                or replayed, for a track that ended, or from another originator's link.
        """
        root = _parse(event_xml)
        uid = root.get("uid")
        if not uid or len(uid) > _MAX_NAME:
            raise InvalidTrackError("CoT event without a uid (or with one too long)")
        where = f"CoT event {uid!r}"
        _refuse_sensor(root, where)
        cot_type = _type(root)
        if not is_track_type(cot_type):
            raise InvalidTrackError(f"{where}: type {cot_type!r} is not a missile track")
        at = _instant(root, "time", where)
        point = root.find("point")
        if point is None:
            raise InvalidTrackError(f"{where} has no <point>")
        lat = _required_number(point, "lat", f"{where} <point>")
        lon = _required_number(point, "lon", f"{where} <point>")
        alt = _altitude(point, f"{where} <point>")
        detail = root.find("detail")
        speed: float | None = None
        ours: _Ours | None = None
        stripped: set[str] = set()
        if detail is not None:
            for child in detail:
                if child.tag == "track" and speed is None:
                    speed = _number(child, "speed", f"{where} <track>")
                elif child.tag == GSOMIA_ELEMENT and ours is None:
                    ours = _read_ours(child, where)
                else:
                    stripped.add(child.tag)
        if speed is not None and speed < 0:
            raise InvalidTrackError(f"{where} <track> speed={speed!r}: must be >= 0")
        if ours is not None and ours.originator not in (None, originator):
            raise InvalidTrackError(
                f"{where} came over the link from {ours.originator}; it is not re-fed as "
                f"{originator}'s own track"
            )

        state = self._tracks.get(uid)
        if state is not None:
            _check_order(state, at, ours, where)
        try:
            here = GeoPoint(lat, lon, alt if alt is not None else 0.0)  # checks the range
        except InvalidTrackError as e:
            raise InvalidTrackError(f"{where}: {e.message}") from e
        if speed is None:
            speed = _speed(state, here, alt is not None, at)
        if ours is not None and ours.launch is not None:
            launch_point, launch_time = ours.launch
        elif state is not None:
            launch_point, launch_time = state.launch_point, state.launch_time
        else:
            launch_point, launch_time = here, at
        if ours is not None and ours.phase is not None:
            phase = ours.phase
        else:
            phase = _guess_phase(state, alt)
        impact_point, impact_time = (
            ours.impact if ours is not None and ours.impact is not None else (None, None)
        )
        seq = state.last_seq + 1 if state is not None else 0
        update = TrackUpdate(
            track_id=uid,
            seq=seq,
            originator=originator,
            label=label,
            phase=phase,
            launch_point=launch_point,
            launch_time=launch_time,
            trajectory=(TrackSample(at, lat, lon, here.alt_m, speed),),
            impact_point=impact_point,
            impact_time=impact_time,
        )
        # Accepted: only now is the state changed.
        self._tracks[uid] = _TrackState(
            last_seq=seq,
            launch_point=launch_point,
            launch_time=launch_time,
            phase=phase,
            last_time=at,
            last_point=here,
            altitude_known=alt is not None,
            source_seq=(
                ours.seq
                if ours is not None and ours.seq is not None
                else (state.source_seq if state is not None else None)
            ),
            previous=replace(state, previous=None) if state is not None else None,
        )
        self._tracks.move_to_end(uid)
        while len(self._tracks) > self._max_tracks:
            self._tracks.popitem(last=False)
        self._stripped = tuple(sorted(stripped))
        return update

    def retract(self, update: TrackUpdate) -> bool:
        """Undo the last :meth:`feed` of ``update``'s track, if ``update`` is what it returned.

        For an update the link did not take: the track's next event then gets the same
        sequence number, so the numbers stay without gaps. Says whether it undid anything.
        """
        state = self._tracks.get(update.track_id)
        if state is None or state.last_seq != update.seq:
            return False
        if state.previous is None:
            del self._tracks[update.track_id]
        else:
            self._tracks[update.track_id] = state.previous
        return True


# -- the stream -----------------------------------------------------------------------------

_WHITESPACE = b" \t\r\n"
_EVENT_OPEN = b"<event"
_EVENT_CLOSE = b"</event"
_NAME_END = b" \t\r\n/>"


def _opens_event(buffer: bytes, at: int) -> bool | None:
    """Whether an ``<event`` start tag begins at ``at``; None if the buffer ends too soon."""
    end = at + len(_EVENT_OPEN)
    if len(buffer) < end + 1:
        return None if _EVENT_OPEN.startswith(buffer[at:end]) else False
    return buffer[at:end] == _EVENT_OPEN and buffer[end] in _NAME_END


def _start_tag_end(buffer: bytes, at: int) -> int | None:
    """The index just past the ``>`` ending the start tag at ``at`` (quotes respected)."""
    quote = 0
    for i in range(at + 1, len(buffer)):
        c = buffer[i]
        if quote:
            if c == quote:
                quote = 0
        elif c in (0x22, 0x27):  # " '
            quote = c
        elif c == 0x3E:  # >
            return i + 1
    return None


def _event_end(buffer: bytes, at: int) -> int | None:
    """The index just past the event that starts at ``at``, or None if it is incomplete.

    Elements do not nest events; ``<`` cannot occur in attribute values or text, except in
    comments, CDATA sections and processing instructions, which are skipped whole.
    """
    tag_end = _start_tag_end(buffer, at)
    if tag_end is None:
        return None
    if buffer[tag_end - 2 : tag_end - 1] == b"/":
        return tag_end  # <event .../>
    i = tag_end
    while True:
        i = buffer.find(b"<", i)
        if i < 0:
            return None
        for opening, closing in ((b"<!--", b"-->"), (b"<![CDATA[", b"]]>"), (b"<?", b"?>")):
            if buffer.startswith(opening, i):
                close = buffer.find(closing, i + len(opening))
                if close < 0:
                    return None
                i = close + len(closing)
                break
            if opening.startswith(buffer[i : i + len(opening)]) and len(buffer) - i < len(opening):
                return None  # too short to tell which it is
        else:
            if buffer.startswith(_EVENT_CLOSE, i):
                j = i + len(_EVENT_CLOSE)
                while j < len(buffer) and buffer[j] in _WHITESPACE:
                    j += 1
                if j >= len(buffer):
                    return None
                if buffer[j] == 0x3E:
                    return j + 1
            elif _EVENT_CLOSE.startswith(buffer[i:]):
                return None
            i += 1


def split_stream(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The complete events at the start of ``buffer``, and the rest, to keep for more bytes.

    Whitespace and XML declarations (any ``<?...?>``) between events are skipped. Bytes that do
    not start an event (up to the next ``<event``) are returned as one piece, which the
    assembler then refuses as malformed: a stray byte costs one refused piece, not the
    connection. The result does not depend on how the stream was cut into buffers.

    Raises:
        CotStreamError: an event, or what is held waiting for one, over
            :data:`MAX_EVENT_BYTES` (the connection cannot be resynchronised; close it).
    """
    events: list[bytes] = []
    pos = 0
    size = len(buffer)
    while pos < size:
        c = buffer[pos]
        if c in _WHITESPACE:
            pos += 1
            continue
        if buffer.startswith(b"<?", pos):
            close = buffer.find(b"?>", pos + 2)
            if close < 0:
                break
            if close + 2 - pos > MAX_EVENT_BYTES:
                raise CotStreamError(f"a declaration over {MAX_EVENT_BYTES} bytes")
            pos = close + 2
            continue
        if size - pos < 2 and c == 0x3C:  # a lone "<": wait
            break
        opens = _opens_event(buffer, pos)
        if opens is None:
            break
        if opens:
            end = _event_end(buffer, pos)
            if end is None:
                break
            if end - pos > MAX_EVENT_BYTES:
                raise CotStreamError(f"a CoT event over {MAX_EVENT_BYTES} bytes")
            events.append(buffer[pos:end])
            pos = end
            continue
        # Not an event: everything up to the next "<event" is one refused piece.
        search = pos + 1
        while True:
            nxt = buffer.find(b"<", search)
            if nxt < 0:
                nxt = -1
                break
            opens = _opens_event(buffer, nxt)
            if opens is None:
                nxt = -1
                break
            if opens:
                break
            search = nxt + 1
        if nxt < 0:
            break
        if nxt - pos > MAX_EVENT_BYTES:
            raise CotStreamError(f"over {MAX_EVENT_BYTES} bytes that are not a CoT event")
        events.append(buffer[pos:nxt].rstrip(_WHITESPACE))
        pos = nxt
    rest = buffer[pos:]
    if len(rest) > MAX_EVENT_BYTES:
        raise CotStreamError(
            f"over {MAX_EVENT_BYTES} bytes from a TAK client without a complete CoT event"
        )
    return events, rest
