"""The missile-warning link end to end: KOR, JPN and USA nodes as real processes on loopback.

A simulated launch is ingested at KOR and streamed through the US hub under the 2023 mechanism;
subscribers at all three nodes see it from launch to impact, in order, without gaps. The hub is
killed (SIGKILL) mid-flight and restarted; nothing acknowledged is lost. Sensor metadata never
leaves KOR, and users without clearance or need-to-know receive nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.link.support import SENSOR_MARK, Subscriber, flight, poll, post

from gsomia import load_registry
from gsomia.node.cluster import Cluster
from gsomia.node.config import load_config
from gsomia.node.service import open_node

pytestmark = pytest.mark.slow


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
    wires = flight()
    n = len(wires)
    third = n // 3
    track = wires[0]["track_id"]

    post(kor, wires[:third])
    poll(lambda: len(watchers["JPN"].seqs(track)) >= third, what="JPN to see the first third")

    # The hub dies mid-flight; KOR keeps accepting (and acknowledging) updates meanwhile.
    cluster.stop(["USA"], kill=True)
    post(kor, wires[third : 2 * third])
    cluster.start(["USA"])
    post(kor, wires[2 * third :])

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
    wires = flight(n_max=30)  # still in flight: no impact yet
    early = Subscriber(jpn, tokens["JPN"]["officer"])
    assert early.connected.wait(10)
    post(kor, wires[:20])
    poll(lambda: len(early.seqs(wires[0]["track_id"])) == 20, what="JPN to see 20 updates")

    late = Subscriber(jpn, tokens["JPN"]["officer"])
    state = poll(lambda: [e for e in late.events if e["kind"] == "state"], what="the state")
    assert len(state) == 1
    assert state[0]["seq"] == 19 and len(state[0]["trajectory"]) == 20
    post(kor, wires[20:])
    poll(lambda: late.seqs(wires[0]["track_id"]) == list(range(20, 30)), what="the rest, live")
    for s in (early, late):
        s.stop()
