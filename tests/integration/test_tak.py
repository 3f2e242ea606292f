"""TAK interoperability, with PyTAK as the real client on both ends.

A PyTAK client feeds CoT events into KOR's TAK server; what KOR ingests is published (standing in
for the node link) on JPN's TAK server, where another PyTAK client watches. No sleeps: every wait
is on a queue or a condition, under a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Coroutine
from configparser import ConfigParser, SectionProxy
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import defusedxml.ElementTree as SafeET
import pytak
import pytest

from gsomia import load_registry
from gsomia.core.errors import InputError
from gsomia.core.labels import SecurityLabel
from gsomia.link.cot import MISSILE_COT_TYPE, PONG_TYPE, CotTrackAssembler
from gsomia.link.simulator import DPRK_WEST_COAST, KOR_WARNING_LABEL, Launch, simulate
from gsomia.link.tak import TakServer
from gsomia.link.tracks import GeoPoint, Phase, TrackUpdate
from gsomia.node.cluster import Cluster, free_port

TIMEOUT = 10.0
T0 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
KOR_LABEL = KOR_WARNING_LABEL
JPN_LABEL = SecurityLabel("JPN", "JPN", "hi", releasable_to=frozenset({"KOR", "USA"}))

T = TypeVar("T")


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 60.0))


async def within(awaitable: Awaitable[T]) -> T:
    return await asyncio.wait_for(awaitable, TIMEOUT)


def pytak_config(port: int) -> SectionProxy:
    parser = ConfigParser()
    parser["gsomia-test"] = {"COT_URL": f"tcp://127.0.0.1:{port}"}
    return parser["gsomia-test"]


class PytakClient:
    """A PyTAK client from its parts: pytak.protocol_factory, a TXWorker and an RXWorker."""

    def __init__(self, reader: Any, writer: Any, config: SectionProxy) -> None:
        self.tx: asyncio.Queue[bytes] = asyncio.Queue()
        self.rx: asyncio.Queue[bytes] = asyncio.Queue()
        self.writer = writer
        self.tasks = [
            asyncio.create_task(pytak.TXWorker(self.tx, config, writer).run()),
            asyncio.create_task(pytak.RXWorker(self.rx, config, reader).run()),
        ]

    @classmethod
    async def connect(cls, port: int) -> PytakClient:
        config = pytak_config(port)
        reader, writer = await pytak.protocol_factory(config)
        return cls(reader, writer, config)

    async def send(self, event: bytes) -> None:
        await self.tx.put(event)

    async def receive(self, cot_type: str = MISSILE_COT_TYPE) -> ET.Element:
        """The next event of ``cot_type`` received (others, such as pongs, are passed over)."""
        while True:
            root: ET.Element = SafeET.fromstring(await within(self.rx.get()))
            if root.get("type") == cot_type:
                return root

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


def pytak_event(
    uid: str,
    lat: float,
    lon: float,
    hae: float,
    *,
    speed: float | None = None,
    cot_type: str = MISSILE_COT_TYPE,
    extra: ET.Element | None = None,
) -> bytes:
    """A CoT event as PyTAK writes one (its XML declaration, flow tags and clock included)."""
    children = []
    if speed is not None:
        children.append(ET.Element("track", {"speed": repr(speed), "course": "95.0"}))
    if extra is not None:
        children.append(extra)
    event = pytak.cot_event(
        lat=lat,
        lon=lon,
        hae=hae,
        uid=uid,
        cot_type=cot_type,
        stale=60,
        detail=pytak.cot_detail(*children),
    )
    return bytes(pytak.serialize_cot(event))


def flight_positions() -> list[tuple[float, float, float, float]]:
    """(lat, lon, hae, speed) every 10 s of a simulated flight, to PyTAK's 4 decimals."""
    launch = Launch(DPRK_WEST_COAST, T0, 95.0, 1000.0, rate_hz=0.1)
    positions = []
    for update in simulate(launch, "unused", KOR_LABEL):
        sample = update.latest
        assert sample is not None
        positions.append(
            (round(sample.lat, 4), round(sample.lon, 4), round(sample.alt_m), sample.velocity_mps)
        )
    return positions


def test_a_pytak_client_feeds_kor_and_another_watches_at_jpn() -> None:
    positions = flight_positions()
    uid = "kor-tak-0301-01"

    async def scenario() -> None:
        kor_ingested: asyncio.Queue[TrackUpdate] = asyncio.Queue()
        jpn_ingested: asyncio.Queue[TrackUpdate] = asyncio.Queue()

        async def jpn_ingest(update: TrackUpdate) -> None:
            await jpn_ingested.put(update)

        jpn = TakServer(ingest=jpn_ingest, originator="JPN", label=JPN_LABEL)

        async def kor_ingest(update: TrackUpdate) -> None:  # the node link, in miniature
            await kor_ingested.put(update)
            await jpn.publish(update)

        kor = TakServer(ingest=kor_ingest, originator="KOR", label=KOR_LABEL)
        await kor.start()
        await jpn.start()
        watcher = await PytakClient.connect(jpn.port)
        await within(jpn.wait_for_clients(1))

        # The feeder is a PyTAK CLITool, as PyTAK applications are built; it says hello first
        # (a t-x-d-d event), which the server ignores.
        feeder = pytak.CLITool(pytak_config(kor.port))
        await feeder.setup()
        feeder_writer = next(w.writer for w in feeder.tasks if isinstance(w, pytak.TXWorker))
        feeder_run = asyncio.create_task(feeder.run())
        try:
            await within(kor.wait_for_clients(1))
            half = len(positions) // 2
            for i, (lat, lon, hae, speed) in enumerate(positions):
                await feeder.tx_queue.put(pytak_event(uid, lat, lon, hae, speed=speed))
                if i == 1:  # TAK traffic that is not a track, and events that are refused
                    await feeder.tx_queue.put(
                        bytes(pytak.gen_cot(uid="feeder-ping", cot_type="t-x-c-t"))
                    )
                    await feeder.tx_queue.put(
                        pytak_event("feeder", 37.5, 127.0, 40.0, cot_type="a-f-G-U-C")
                    )
                    sensor = ET.Element("sensor", {"fov": "45", "range": "2000000"})
                    await feeder.tx_queue.put(pytak_event(uid, lat, lon, hae, extra=sensor))
                    await feeder.tx_queue.put(b'<event uid="broken"><point></event>')
                    await feeder.tx_queue.put(pytak_event(uid, 91.0, lon, hae))
                if i == half:
                    bad = re.sub(rb'lat="[^"]*"', b'lat="NaN"', pytak_event(uid, lat, lon, hae))
                    await feeder.tx_queue.put(bad)

            # KOR ingested every position, in order, and nothing it refused.
            got = [await within(kor_ingested.get()) for _ in positions]
            assert kor_ingested.empty()
            assert [u.seq for u in got] == list(range(len(positions)))
            assert {(u.track_id, u.originator, u.label) for u in got} == {(uid, "KOR", KOR_LABEL)}
            assert [(s.lat, s.lon, s.alt_m) for u in got for s in u.trajectory] == [
                (lat, lon, float(hae)) for lat, lon, hae, _ in positions
            ]
            assert got[0].launch_point == GeoPoint(*positions[0][:3])
            assert got[0].phase is Phase.MIDCOURSE and got[-1].phase is Phase.TERMINAL
            assert got[-1].trajectory[0].velocity_mps == positions[-1][3]

            # The ping was answered.
            pong = SafeET.fromstring(await within(feeder.rx_queue.get()))
            assert pong.get("type") == PONG_TYPE

            # The watcher at JPN received every position, in order, as KOR's track.
            assembler = CotTrackAssembler()
            for i, (lat, lon, _, _) in enumerate(positions):
                event = await watcher.receive()
                assert event.get("uid") == uid
                point = event.find("point")
                ours = event.find("detail/gsomia")
                assert point is not None and ours is not None
                assert (float(point.get("lat", "")), float(point.get("lon", ""))) == (lat, lon)
                assert (ours.get("seq"), ours.get("originator")) == (str(i), "KOR")
                assert "sensor" not in ET.tostring(event, encoding="unicode")
                back = assembler.feed(ET.tostring(event), originator="KOR", label=KOR_LABEL)
                assert back == got[i]

            # A watcher that feeds KOR's track back into JPN is refused (no laundering, no
            # loop); JPN's own tracks from the same client are taken.
            echoed = ET.tostring(event)
            await watcher.send(echoed)
            await watcher.send(pytak_event("jpn-tak-01", 40.0, 135.0, 120000.0))
            own = await within(jpn_ingested.get())
            assert (own.track_id, own.originator, own.seq) == ("jpn-tak-01", "JPN", 0)
            assert jpn_ingested.empty()
        finally:
            feeder_run.cancel()
            for task in feeder.running_tasks:
                task.cancel()
            await asyncio.gather(feeder_run, *feeder.running_tasks, return_exceptions=True)
            feeder_writer.close()
            await watcher.close()
            await kor.stop()
            await jpn.stop()

    run(scenario)


def test_a_late_watcher_first_gets_the_current_picture() -> None:
    async def noop(update: TrackUpdate) -> None:
        return None

    async def scenario() -> None:
        server = TakServer(ingest=noop, originator="KOR", label=KOR_LABEL)
        await server.start()
        watcher: PytakClient | None = None
        try:
            launch = Launch(DPRK_WEST_COAST, T0, 95.0, 500.0, rate_hz=0.1)
            updates = list(simulate(launch, "t-a", KOR_LABEL))[:3]
            for update in updates:
                await server.publish(update)
            await server.publish(replace(updates[0], track_id="t-b"))
            watcher = await PytakClient.connect(server.port)
            first, second = await watcher.receive(), await watcher.receive()
            assert [first.get("uid"), second.get("uid")] == ["t-a", "t-b"]
            ours = first.find("detail/gsomia")
            assert ours is not None and ours.get("seq") == "2"
            await server.publish(updates[2])
            assert (await watcher.receive()).get("uid") == "t-a"
        finally:
            if watcher is not None:
                await watcher.close()
            await server.stop()

    run(scenario)


def test_a_slow_client_does_not_hold_up_the_others() -> None:
    """A client that never reads is disconnected; a PyTAK client beside it gets every event."""

    async def noop(update: TrackUpdate) -> None:
        return None

    async def scenario() -> None:
        server = TakServer(ingest=noop, originator="KOR", label=KOR_LABEL, queue_size=8)
        await server.start()
        slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.setblocking(False)
        fast: PytakClient | None = None
        try:
            await asyncio.get_running_loop().sock_connect(slow, ("127.0.0.1", server.port))
            fast = await PytakClient.connect(server.port)
            await within(server.wait_for_clients(2))
            launch = Launch(DPRK_WEST_COAST, T0, 95.0, 500.0, rate_hz=1.0)
            template = next(iter(simulate(launch, "x", KOR_LABEL)))
            sent = 0
            while server.client_count == 2:
                assert sent < 20_000, "the slow client was never disconnected"
                track_id = f"track-{sent:05d}-" + "x" * 200  # distinct tracks: nothing to drop
                await server.publish(replace(template, track_id=track_id))
                event = await fast.receive()
                assert event.get("uid") == track_id
                sent += 1
            assert server.client_count == 1
            # The fast client is still served.
            await server.publish(replace(template, track_id="after"))
            assert (await fast.receive()).get("uid") == "after"
        finally:
            slow.close()
            if fast is not None:
                await fast.close()
            await server.stop()

    run(scenario)


def test_a_stream_without_events_is_closed_at_the_bound() -> None:
    async def noop(update: TrackUpdate) -> None:
        return None

    async def scenario() -> None:
        server = TakServer(ingest=noop, originator="KOR", label=KOR_LABEL)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            await within(server.wait_for_clients(1))
            writer.write(b'<event uid="x"><detail>' + b" " * (1024 * 1024 + 1))
            await writer.drain()
            await within(server.wait_for_clients(0))
            assert await within(reader.read()) == b""
            writer.close()
        finally:
            await server.stop()

    run(scenario)


def test_an_update_the_link_refuses_leaves_no_gap() -> None:
    async def scenario() -> None:
        taken: asyncio.Queue[TrackUpdate] = asyncio.Queue()
        calls = 0

        async def ingest(update: TrackUpdate) -> None:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise InputError("the link is not taking this one")
            await taken.put(update)

        server = TakServer(ingest=ingest, originator="KOR", label=KOR_LABEL)
        await server.start()
        feeder = await PytakClient.connect(server.port)
        try:
            for i in range(3):
                await feeder.send(pytak_event("t-1", 39.0 + i / 10, 126.0, 100_000.0))
            got = [await within(taken.get()) for _ in range(2)]
            assert [(u.seq, u.trajectory[0].lat) for u in got] == [(0, 39.0), (1, 39.2)]
        finally:
            await feeder.close()
            await server.stop()

    run(scenario)


@pytest.mark.slow
def test_pytak_feeds_the_kor_node_and_pytak_watches_at_the_jpn_node(tmp_path: Path) -> None:
    """The real thing: node processes, the KOR→USA→JPN link between them, PyTAK at both ends."""
    registry = load_registry()
    ports = {"KOR": free_port(), "JPN": free_port()}
    levels = {"KOR": "gunsa-2", "JPN": "gokuhi"}
    cluster = Cluster(
        root=tmp_path / "c",
        registry=registry,
        parties=("KOR", "USA", "JPN"),
        serve_args={
            p: ["--tak-port", str(ports[p]), "--tak-user", "officer",
                "--tak-classification", levels[p]]
            for p in ports
        },
    )  # fmt: skip
    cluster.create(now=datetime.now(UTC))
    cluster.start()
    positions = flight_positions()[:40]
    uid = "kor-tak-node-01"

    async def scenario() -> None:
        watcher = await PytakClient.connect(ports["JPN"])
        feeder = await PytakClient.connect(ports["KOR"])
        try:
            for lat, lon, hae, speed in positions:
                await feeder.send(pytak_event(uid, lat, lon, hae, speed=speed))
            for i, (lat, lon, _, _) in enumerate(positions):
                event = await watcher.receive()
                point, ours = event.find("point"), event.find("detail/gsomia")
                assert point is not None and ours is not None
                assert event.get("uid") == uid
                assert (float(point.get("lat", "")), float(point.get("lon", ""))) == (lat, lon)
                assert int(ours.get("seq", "-1")) == i
                assert ours.get("originator") == "KOR"
        finally:
            await watcher.close()
            await feeder.close()

    try:
        run(scenario)
        # JPN holds the track as KOR's, marked in its own scheme, routed through the hub.
        with cluster.nodes["JPN"].client() as c:
            (stats_route,) = c.get("/api/v1/link/stats").json()["routes"]
        assert stats_route["route"] == ["KOR", "USA", "JPN"]
        assert stats_route["count"] == len(positions)
    finally:
        cluster.stop()
