"""The missile-warning link end to end: KOR, JPN and USA nodes as real processes on loopback.

A simulated launch is ingested at KOR and streamed through the US hub under the 2023 mechanism;
subscribers at all three nodes see it from launch to impact, in order, without gaps. The hub is
killed (SIGKILL) mid-flight and restarted; nothing acknowledged is lost. Sensor metadata never
leaves KOR, and users without clearance or need-to-know receive nothing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from gsomia import load_registry
from gsomia.core.labels import SecurityLabel
from gsomia.link.simulator import Launch, simulate
from gsomia.link.sse import SseParser
from gsomia.link.tracks import GeoPoint, SensorMetadata, to_wire
from gsomia.node.cluster import Cluster, NodeProcess
from gsomia.node.config import load_config
from gsomia.node.service import open_node

pytestmark = pytest.mark.slow

_T = TypeVar("_T")
SENSOR_MARK = "GREEN-PINE-BLOCK-C-AT-SITE-7"  # a string that must never leave KOR


def poll(probe: Callable[[], _T | None], *, timeout: float = 60.0, what: str = "condition") -> _T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)  # polling interval, bounded by the deadline


class Subscriber:
    """A console's SSE subscription in a thread; reconnects with Last-Event-ID when dropped."""

    def __init__(self, proc: NodeProcess, token: str) -> None:
        self.proc, self.token = proc, token
        self.events: list[dict[str, Any]] = []
        self.last_id: str | None = None
        self.connected = threading.Event()
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            headers = {"Authorization": f"Bearer {self.token}"}
            if self.last_id is not None:
                headers["Last-Event-ID"] = self.last_id
            try:
                with httpx.stream(
                    "GET", self.proc.url + "/api/v1/link/stream", headers=headers, timeout=None
                ) as response:
                    response.raise_for_status()
                    self.connected.set()
                    parser = SseParser()
                    for line in response.iter_lines():
                        event = parser.feed(line)
                        if event is None:
                            continue
                        self.last_id = event.id
                        self.events.append(event.json())
                        if self._stop.is_set():
                            return
            except httpx.HTTPError:
                pass
            self.connected.clear()
            self.reconnects += 1
            self._stop.wait(0.05)  # reconnection back-off while the node is down

    def seqs(self, track: str) -> list[int]:
        return [e["seq"] for e in self.events if e["track_id"] == track and e["kind"] == "update"]

    def stop(self) -> None:
        self._stop.set()


@pytest.fixture
def trilateral(tmp_path: Path) -> Iterator[tuple[Cluster, dict[str, dict[str, str]]]]:
    registry = load_registry()
    cluster = Cluster(root=tmp_path / "cluster", registry=registry, parties=("KOR", "JPN", "USA"))
    cluster.create(now=datetime.now(UTC))
    tokens: dict[str, dict[str, str]] = {}
    for party, proc in cluster.nodes.items():
        node = open_node(
            party=party, registry=registry, database_url=load_config(proc.data_dir).database_url
        )
        top = {"JPN": "gokuhi", "KOR": "gunsa-2", "USA": "secret"}[party]
        _, uncleared = node.add_user(
            name="uncleared", roles=["officer"], need_to_know=["dprk-missile"]
        )
        _, no_ntk = node.add_user(
            name="no-ntk", roles=["officer"], clearance=top, need_to_know=["prc-maritime"]
        )
        tokens[party] = {"officer": proc.token, "uncleared": uncleared, "no-ntk": no_ntk}
        node.store.dispose()
    cluster.start()
    try:
        yield cluster, tokens
    finally:
        cluster.stop()


def _flight(n_max: int | None = None) -> list[dict[str, Any]]:
    label = SecurityLabel(
        originator="KOR",
        policy="KOR",
        classification="gunsa-2",
        releasable_to=frozenset({"USA", "JPN"}),
        topics=frozenset({"dprk-missile"}),
    )
    launch = Launch(
        site=GeoPoint(39.0, 125.7),
        time=datetime.now(UTC),
        azimuth_deg=95.0,
        range_km=600.0,
        rate_hz=1.0,
    )
    sensor = SensorMetadata(sensor_type=SENSOR_MARK)
    updates = list(simulate(launch, "KOR-E2E-1", label, sensor))[:n_max]
    wires = [to_wire(u) for u in updates]
    wires[0] = {**wires[0], "sensor": {"sensor_type": SENSOR_MARK}}  # local metadata at intake
    return wires


def _post(proc: NodeProcess, wires: list[dict[str, Any]]) -> None:
    with proc.client(timeout=30) as c:
        for i in range(0, len(wires), 50):
            r = c.post("/api/v1/link/updates", json={"updates": wires[i : i + 50]})
            assert r.status_code == 202, r.text


def test_launch_to_impact_through_the_hub_with_a_hub_restart(
    trilateral: tuple[Cluster, dict[str, dict[str, str]]],
) -> None:
    cluster, tokens = trilateral
    kor, jpn, usa = cluster.nodes["KOR"], cluster.nodes["JPN"], cluster.nodes["USA"]
    watchers = {
        p: Subscriber(cluster.nodes[p], tokens[p]["officer"]) for p in ("KOR", "JPN", "USA")
    }
    blind = [
        Subscriber(jpn, tokens["JPN"]["uncleared"]),
        Subscriber(jpn, tokens["JPN"]["no-ntk"]),
        Subscriber(usa, tokens["USA"]["uncleared"]),
    ]
    for w in [*watchers.values(), *blind]:
        assert w.connected.wait(10)
    wires = _flight()
    n = len(wires)
    third = n // 3
    track = wires[0]["track_id"]

    _post(kor, wires[:third])
    poll(lambda: len(watchers["JPN"].seqs(track)) >= third, what="JPN to see the first third")

    # The hub dies mid-flight; KOR keeps accepting (and acknowledging) updates meanwhile.
    cluster.stop(["USA"], kill=True)
    _post(kor, wires[third : 2 * third])
    cluster.start(["USA"])
    _post(kor, wires[2 * third :])

    expected = list(range(n))
    for party, w in watchers.items():
        poll(lambda w=w: w.seqs(track)[-1:] == [n - 1], what=f"{party} to see the impact")
    for party, w in watchers.items():
        seqs = w.seqs(track)
        if party == "USA":
            # Reconnected after the restart with Last-Event-ID: in order, nothing missing.
            assert w.reconnects >= 1
        assert seqs == expected, f"{party}: out of order or with gaps"
        phases = [e["phase"] for e in w.events if e["track_id"] == track]
        assert phases[0] == "boost" and phases[-1] == "impact"
    # Each node marks the track in its own scheme.
    assert watchers["JPN"].events[-1]["label"]["policy"] == "JPN"
    assert watchers["USA"].events[-1]["label"]["policy"] == "USA"

    # Nobody without clearance or need-to-know received anything.
    for b in blind:
        assert b.events == []

    # The sensor metadata stayed at KOR: in its journal, nowhere else.
    for w in [*watchers.values(), *blind]:
        w.stop()
    cluster.stop()
    for party, proc in cluster.nodes.items():
        files = list(proc.data_dir.glob("node.db*"))
        assert files, party
        raw = b"".join(p.read_bytes() for p in files)
        assert (SENSOR_MARK.encode() in raw) == (party == "KOR"), party
    assert all(SENSOR_MARK not in json.dumps(e) for w in watchers.values() for e in w.events)


def test_a_late_subscriber_first_gets_the_active_tracks(
    trilateral: tuple[Cluster, dict[str, dict[str, str]]],
) -> None:
    cluster, tokens = trilateral
    kor, jpn = cluster.nodes["KOR"], cluster.nodes["JPN"]
    wires = _flight(n_max=30)  # still in flight: no impact yet
    early = Subscriber(jpn, tokens["JPN"]["officer"])
    assert early.connected.wait(10)
    _post(kor, wires[:20])
    poll(lambda: len(early.seqs(wires[0]["track_id"])) == 20, what="JPN to see 20 updates")

    late = Subscriber(jpn, tokens["JPN"]["officer"])
    state = poll(lambda: [e for e in late.events if e["kind"] == "state"], what="the state")
    assert len(state) == 1
    assert state[0]["seq"] == 19 and len(state[0]["trajectory"]) == 20
    _post(kor, wires[20:])
    poll(lambda: late.seqs(wires[0]["track_id"]) == list(range(20, 30)), what="the rest, live")
    for s in (early, late):
        s.stop()
