"""The link service in process: decisions once per track and hop, order, refusals at intake."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gsomia import load_registry
from gsomia.core.errors import (
    ForbiddenError,
    InputError,
    InvalidTrackError,
    TrackFieldRefusedError,
)
from gsomia.core.labels import SecurityLabel
from gsomia.link.simulator import KOR_WARNING_LABEL
from gsomia.link.tracks import GeoPoint, Phase, TrackUpdate, to_wire
from gsomia.node.config import init_node
from gsomia.node.federation import Federation
from gsomia.node.link import LinkOptions, LinkService
from gsomia.node.service import Node, open_node
from gsomia.store.link import LinkJournal
from gsomia.store.models import AccessRow

GSOMIA = "JPN-KOR-GSOMIA"
IN_FORCE = datetime.fromisoformat("2019-11-22T12:00+09:00")
LAPSED = datetime.fromisoformat("2019-11-24T12:00+09:00")
LABEL = SecurityLabel(
    originator="JPN",
    policy="JPN",
    classification="gokuhi",
    releasable_to=frozenset({"KOR"}),
    topics=frozenset({"dprk-missile"}),
)


def update(seq: int, label: SecurityLabel = LABEL) -> TrackUpdate:
    return TrackUpdate(
        track_id="JPN-T1",
        seq=seq,
        originator="JPN",
        label=label,
        phase=Phase.BOOST,
        launch_point=GeoPoint(39.0, 125.7),
        launch_time=IN_FORCE,
    )


@pytest.fixture
def clock() -> list[datetime]:
    return [IN_FORCE]


@pytest.fixture
def node(tmp_path: Path, clock: list[datetime]) -> Iterator[tuple[Node, Federation]]:
    # Korea's suspension of its notice taken away: the GSOMIA lapses on 23 Nov 2019.
    registry = load_registry().what_if(without=["kor-notice-suspension-2019"])
    config = init_node(tmp_path / "jpn", "JPN", registry, None, now=IN_FORCE)
    node = open_node(
        party="JPN", registry=registry, database_url=config.database_url, clock=lambda: clock[0]
    )
    fed = Federation.keyed_by(node, config)
    yield node, fed
    node.store.dispose()


def decisions(node: Node) -> int:
    with node.store.read() as s:
        return int(
            s.execute(
                select(func.count())
                .select_from(AccessRow)
                .where(AccessRow.action == "link-decision")
            ).scalar_one()
        )


def test_a_decision_is_made_once_per_track_and_hop_and_again_when_the_law_changes(
    node: tuple[Node, Federation], clock: list[datetime]
) -> None:
    n, fed = node

    async def scenario() -> list[bool]:
        link = LinkService(fed, LinkOptions(under=(GSOMIA,)))
        await link.start()
        try:
            seen = []
            for seq in range(3):  # the same label: one decision
                seen.append(link._decision(update(seq), "JPN", "KOR", GSOMIA, frozenset()).allowed)
            confidential = replace(LABEL, classification="hi")
            seen.append(
                link._decision(update(3, confidential), "JPN", "KOR", GSOMIA, frozenset()).allowed
            )
            clock[0] = LAPSED  # past the change point: the GSOMIA has lapsed
            seen.append(
                link._decision(update(4, confidential), "JPN", "KOR", GSOMIA, frozenset()).allowed
            )
        finally:
            await link.stop()
        return seen

    assert asyncio.run(scenario()) == [True, True, True, True, False]
    # Three decisions made (two labels, then the lapse), each an act in the access register.
    assert decisions(n) == 3


def test_updates_are_journaled_in_order_and_the_boundary_refuses(
    node: tuple[Node, Federation],
) -> None:
    n, fed = node

    async def scenario() -> None:
        link = LinkService(fed, LinkOptions(under=(GSOMIA,)))
        await link.start()
        try:
            early = link.offer(None, to_wire(update(1)))  # held until 0 arrives
            first = link.offer(None, to_wire(update(0)))
            assert await first < await early
            with pytest.raises(InputError, match="already has update 0"):
                await link.offer(None, to_wire(update(0)))
            with pytest.raises(TrackFieldRefusedError):
                await link.offer(None, {**to_wire(update(2)), "sensor_location": [1, 2]})
            kor = SecurityLabel(originator="KOR", policy="KOR", classification="gunsa-2")
            foreign = replace(update(0), track_id="KOR-T", originator="KOR", label=kor)
            with pytest.raises(ForbiddenError):
                await link.offer(None, to_wire(foreign))
            sensor = {"sensor_type": "kept here"}
            await link.offer(None, {**to_wire(update(2)), "sensor": sensor})
        finally:
            await link.stop()

    asyncio.run(scenario())
    with n.store.read() as s:
        rows = LinkJournal(s).track("JPN-T1")
    assert [r.seq for r in rows] == [0, 1, 2]
    assert [r.pos for r in rows] == sorted(r.pos for r in rows)
    assert rows[2].sensor == {"sensor_type": "kept here"} and "sensor" not in rows[2].body
    assert decisions(n) == 1  # one for the track's hop to KOR, for all its updates


def test_a_producer_that_skips_an_update_is_told_so(node: tuple[Node, Federation]) -> None:
    n, fed = node

    async def scenario() -> None:
        link = LinkService(fed, LinkOptions(under=(GSOMIA,), gap_timeout=0.2))
        await link.start()
        try:
            assert await link.offer(None, to_wire(update(0))) > 0
            with pytest.raises(InvalidTrackError, match="update 1, which never came"):
                await asyncio.wait_for(link.offer(None, to_wire(update(2))), 5)
            # The gap filled later is fine: 1, then 2 again.
            await link.offer(None, to_wire(update(1)))
            await link.offer(None, to_wire(update(2)))
        finally:
            await link.stop()

    asyncio.run(scenario())
    with n.store.read() as s:
        assert [r.seq for r in LinkJournal(s).track("JPN-T1")] == [0, 1, 2]


def test_a_hub_without_the_originators_answer_withholds_and_records_it(tmp_path: Path) -> None:
    """Under TISA the hub asks KOR for each update; no answer: USA keeps it, JPN does not get it."""
    registry = load_registry()
    now = datetime.now(UTC)
    config = init_node(tmp_path / "usa", "USA", registry, None, now=now)
    usa = open_node(party="USA", registry=registry, database_url=config.database_url)
    fed = Federation.keyed_by(usa, config)
    for party in ("KOR", "JPN"):
        peer = init_node(tmp_path / party.lower(), party, registry, None, now=now)
        fed.add_peer(
            party,
            f"http://{party.lower()}.invalid",
            signing_key=peer.signing_public_key.to_text(),
            encryption_key=peer.encryption_public_key.to_text(),
            actor=None,
        )
    wire = to_wire(replace(update(0), track_id="KOR-T", originator="KOR", label=KOR_WARNING_LABEL))
    asked: list[dict[str, object]] = []

    class Silent:  # KOR's end of the stream, which never answers
        async def send_json(self, data: dict[str, object]) -> None:
            asked.append(data)

    async def scenario() -> None:
        link = LinkService(fed, LinkOptions(under=("TISA",), consent_timeout=0.2))
        await link.start()
        try:
            frame = {
                "u": wire,
                "to": ["USA", "JPN"],
                "i": "TISA",
                "c": [],
                "h": [{"p": "KOR", "in": 1}],
            }
            link.receive("KOR", [frame], Silent())
            while not link._tracks:  # until the journal has it (bounded by the test's timeout)
                await asyncio.sleep(0.01)
        finally:
            await link.stop()

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert asked[0]["t"] == "c?" and asked[0]["to"] == ["JPN"]
    with usa.store.read() as s:
        (row,) = LinkJournal(s).track("KOR-T")
        withheld = (
            s.execute(select(AccessRow.detail).where(AccessRow.action == "link-consent-refused"))
            .scalars()
            .all()
        )
    assert row.forward == {} and row.label["policy"] == "USA"
    assert len(withheld) == 1 and "not forwarded to JPN without KOR's consent" in withheld[0]
    usa.store.dispose()
