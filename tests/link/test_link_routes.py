"""Routing follows the registry: directly between Japan and Korea under a what-if instrument,
and through the hub with a consent round trip for each update under TISA (para 4)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.link.support import Subscriber, flight, poll, post
from typer.testing import CliRunner
from websockets.sync.client import connect

from gsomia import load_registry
from gsomia.cli.main import app as gsomia
from gsomia.node.cluster import Cluster

pytestmark = pytest.mark.slow

WHATIF = str(Path(__file__).resolve().parents[2] / "examples" / "what-if-direct-link")


def _cluster(
    tmp_path: Path, parties: tuple[str, ...], under: str, dirs: tuple[str, ...]
) -> Cluster:
    registry = load_registry(dirs)
    cluster = Cluster(
        root=tmp_path / "c", registry=registry, parties=parties, registry_dirs=dirs,
        link_under=(under,),
    )  # fmt: skip
    cluster.create(now=datetime.now(UTC))
    cluster.start()
    return cluster


@pytest.fixture
def direct(tmp_path: Path) -> Iterator[Cluster]:
    cluster = _cluster(tmp_path, ("KOR", "JPN"), "WHATIF-JPN-KOR-DIRECT-LINK", (WHATIF,))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def tisa(tmp_path: Path) -> Iterator[Cluster]:
    cluster = _cluster(tmp_path, ("KOR", "JPN", "USA"), "TISA", ())
    try:
        yield cluster
    finally:
        cluster.stop()


def test_a_what_if_direct_link_goes_straight_from_korea_to_japan(direct: Cluster) -> None:
    kor, jpn = direct.nodes["KOR"], direct.nodes["JPN"]
    watcher = Subscriber(jpn, jpn.token)
    assert watcher.connected.wait(10)
    wires = flight(n_max=40)
    post(kor, wires)
    poll(lambda: len(watcher.seqs(wires[0]["track_id"])) == 40, what="JPN to see 40 updates")
    assert {tuple(h["p"] for h in e["hops"]) for e in watcher.events} == {("KOR", "JPN")}
    with jpn.client() as c:
        stats = c.get("/api/v1/link/stats").json()
    (route,) = stats["routes"]
    assert route["route"] == ["KOR", "JPN"] and route["count"] == 40
    assert route["end_to_end"]["p50_ms"] > 0
    # The same figures on the command line.
    shown = CliRunner().invoke(gsomia, ["link", "stats", "--node", jpn.url, "--token", jpn.token])
    assert shown.exit_code == 0, shown.output
    assert "KOR → JPN" in shown.output and "end to end" in shown.output
    refused = CliRunner().invoke(gsomia, ["link", "stats", "--node", jpn.url, "--token", "wrong"])
    assert refused.exit_code == 2 and "401" in refused.output
    watcher.stop()


def test_under_tisa_the_hub_asks_the_originator_for_each_update(tisa: Cluster) -> None:
    kor, jpn, usa = tisa.nodes["KOR"], tisa.nodes["JPN"], tisa.nodes["USA"]
    watcher = Subscriber(jpn, jpn.token)
    assert watcher.connected.wait(10)
    wires = flight(n_max=25)
    # All at once over the producers' stream: the hub asks before KOR has written them.
    with connect(
        "ws" + kor.url[4:] + "/api/v1/link/ingest",
        additional_headers={"Authorization": f"Bearer {kor.token}"},
    ) as ws:
        ws.send(json.dumps(wires))
        acked = json.loads(ws.recv(timeout=30))
    assert acked["t"] == "a" and len(acked["k"]) == 25
    poll(lambda: len(watcher.seqs(wires[0]["track_id"])) == 25, what="JPN to see 25 updates")
    assert watcher.seqs(wires[0]["track_id"]) == list(range(25))
    assert {tuple(h["p"] for h in e["hops"]) for e in watcher.events} == {("KOR", "USA", "JPN")}
    with usa.client() as c:
        consents = c.get("/api/v1/link/stats").json()["consents"]
    assert consents == {"asked": 25, "granted": 25}
    watcher.stop()
