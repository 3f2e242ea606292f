"""After the hypothetical lapse (2019-11-24, without Korea's suspension of its notice): the hub
relay JPN→USA→KOR under TISA, the PRC-maritime refusal, and a reclassification that reaches every
holder, the one that received directly before the lapse and the two after a hub relay."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from tests.polling import poll

from gsomia.core.registry import Registry
from gsomia.node.cluster import Cluster

from .conftest import (
    BEFORE,
    LAPSED,
    create_item,
    held_by_title,
    listing,
    new_cluster,
    payload,
    share,
    wait_share,
)

pytestmark = pytest.mark.slow


@dataclass
class Lapsed:
    cluster: Cluster
    early: dict[str, Any]  # a JPN item KOR received directly while the GSOMIA was in force


@pytest.fixture(scope="module")
def lapsed(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Iterator[Lapsed]:
    cluster = new_cluster(tmp_path_factory.mktemp("lapsed"), registry, ("JPN", "KOR", "USA"))
    try:
        cluster.start(clock=BEFORE)
        early = create_item(cluster, "JPN", title="DPRK missile report, 22 Nov")
        sent = share(cluster, "JPN", early["id"], "KOR")
        assert wait_share(cluster, "JPN", sent["id"])["status"] == "delivered"
        cluster.stop()
        cluster.start(**LAPSED)
        yield Lapsed(cluster, early)
    finally:
        cluster.stop()


def test_hub_relay_under_tisa(lapsed: Lapsed) -> None:
    c = lapsed.cluster
    item = create_item(c, "JPN")
    sent = share(c, "JPN", item["id"], "KOR")
    assert sent["status"] == "queued", sent
    assert sent["route"] == ["JPN", "USA", "KOR"]
    assert sent["instruments"] == ["TISA", "TISA"]

    done = wait_share(c, "JPN", sent["id"], until=("delivered", "refused", "failed"))
    assert done["status"] == "delivered", done  # the hub's delivery report came back
    assert done["receipt"]["final"]["receipt"]["recipient"] == "KOR"

    (at_usa,) = held_by_title(c, "USA", item["title"])
    assert at_usa["level"]["id"] == "secret"
    assert at_usa["label"]["policy"] == "USA"
    assert at_usa["received_from"] == "JPN"
    assert at_usa["received_under"] == "TISA"

    (at_kor,) = held_by_title(c, "KOR", item["title"])
    assert at_kor["level"]["id"] == "gunsa-2"
    assert at_kor["label"]["originator"] == "JPN"
    assert at_kor["received_from"] == "USA"
    assert at_kor["received_under"] == "TISA"
    assert at_kor["sha256"] == item["sha256"]
    assert payload(c, "KOR", at_kor["id"]) == payload(c, "JPN", item["id"])

    # The hub's own share, onward to KOR, is delivered and names the original share.
    hub = listing(c, "USA", "/api/v1/shares", item_id=at_usa["id"])
    assert [s["status"] for s in hub] == ["delivered"]
    assert sent["id"] in (hub[0]["relay_of"] or "")


def test_prc_maritime_is_refused_naming_both_routes(lapsed: Lapsed) -> None:
    c = lapsed.cluster
    item = create_item(c, "JPN", topic="prc-maritime", title="PLA Navy activity near Tsushima")
    sent = share(c, "JPN", item["id"], "KOR")
    assert sent["status"] == "refused", sent
    reasons = " | ".join(sent["reasons"])
    assert "JPN-KOR-GSOMIA" in reasons, reasons
    assert "TISA" in reasons, reasons
    assert "USA" in reasons, reasons  # the hub route was considered and refused
    for party in ("KOR", "USA"):
        assert held_by_title(c, party, item["title"]) == []


def test_reclassification_reaches_every_holder(lapsed: Lapsed) -> None:
    c, item = lapsed.cluster, lapsed.early
    # KOR already holds the item (directly, 22 Nov); now it also goes through the hub.
    sent = share(c, "JPN", item["id"], "KOR")
    assert sent["route"] == ["JPN", "USA", "KOR"]
    assert wait_share(c, "JPN", sent["id"])["status"] == "delivered"
    kor_copies = held_by_title(c, "KOR", item["title"])
    assert sorted(k["received_under"] for k in kor_copies) == ["JPN-KOR-GSOMIA", "TISA"]
    assert [k["level"]["id"] for k in kor_copies] == ["gunsa-2", "gunsa-2"]

    with c.nodes["JPN"].client() as jpn:
        r = jpn.post(
            f"/api/v1/items/{item['id']}/reclassification",
            json={"classification": "hi", "reason": "sources now public"},
        )
    assert r.status_code == 200, r.text
    assert r.json()["level"]["id"] == "hi"

    def acknowledged() -> list[dict[str, Any]] | None:
        rows = [
            n
            for n in listing(c, "JPN", "/api/v1/notices")
            if n["origin_item_id"] == item["id"] and n["direction"] == "outgoing"
        ]
        return rows if rows and all(n["acknowledged_at"] for n in rows) else None

    notices = poll(acknowledged, what="every holder's acknowledgment at JPN")
    assert sorted(n["holder"] for n in notices) == ["KOR", "USA"]
    assert {n["kind"] for n in notices} == {"reclassify"}

    # Every copy was relabelled before its holder acknowledged.
    kor_copies = held_by_title(c, "KOR", item["title"])
    assert len(kor_copies) == 2
    assert {k["level"]["id"] for k in kor_copies} == {"gunsa-3"}
    assert {k["version"] for k in kor_copies} == {2}
    (at_usa,) = held_by_title(c, "USA", item["title"])
    assert at_usa["level"]["id"] == "confidential"

    incoming = [
        n for n in listing(c, "KOR", "/api/v1/notices") if n["origin_item_id"] == item["id"]
    ]
    assert [(n["direction"], n["kind"]) for n in incoming] == [("incoming", "reclassify")]
