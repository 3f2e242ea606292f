"""Sharing while the JPN–KOR GSOMIA is in force (2019-11-22): direct share, originator consent
granted and refused, incident reports reaching the originator."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.polling import poll
from typer.testing import CliRunner

from gsomia.cli.main import app
from gsomia.node.cluster import Cluster

from .conftest import (
    create_item,
    get_share,
    held_by_title,
    listing,
    payload,
    share,
    wait_share,
)

pytestmark = pytest.mark.slow


def _direct_to_kor(cluster: Cluster, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A JPN item shared JPN→KOR and delivered: (JPN's item, KOR's copy)."""
    item = create_item(cluster, "JPN", **kwargs)
    sent = share(cluster, "JPN", item["id"], "KOR")
    done = wait_share(cluster, "JPN", sent["id"])
    assert done["status"] == "delivered", done
    (copy,) = held_by_title(cluster, "KOR", item["title"])
    return item, copy


def test_direct_share_is_delivered_and_held_with_provenance(in_force: Cluster) -> None:
    content = bytes(range(256)) * 5  # not text: the bytes must arrive as they left
    item = create_item(in_force, "JPN", payload=content)
    assert item["level"]["id"] == "gokuhi"

    sent = share(in_force, "JPN", item["id"], "KOR")
    assert sent["status"] == "queued"
    assert sent["route"] == ["JPN", "KOR"]
    assert sent["instruments"] == ["JPN-KOR-GSOMIA"]

    done = wait_share(in_force, "JPN", sent["id"])
    assert done["status"] == "delivered", done
    assert done["receipt"]["receipt"]["recipient"] == "KOR"
    assert done["latency_ms"] is not None

    (copy,) = held_by_title(in_force, "KOR", item["title"])
    assert copy["level"]["id"] == "gunsa-2"
    assert copy["label"]["policy"] == "KOR"
    assert copy["label"]["originator"] == "JPN"
    assert copy["received_from"] == "JPN"
    assert copy["received_under"] == "JPN-KOR-GSOMIA"
    assert copy["sha256"] == item["sha256"]
    assert copy["id"] == done["receipt"]["receipt"]["item_id"]
    assert payload(in_force, "KOR", copy["id"]) == content


def _ask_usa(cluster: Cluster) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """KOR passes a JPN item on to USA: (JPN's item, KOR's share, JPN's consent request)."""
    item, copy = _direct_to_kor(cluster)
    onward = share(cluster, "KOR", copy["id"], "USA")
    assert onward["status"] == "awaiting-consent", onward
    assert onward["consent_request_id"]

    def request_at_jpn() -> dict[str, Any] | None:
        rows = listing(cluster, "JPN", "/api/v1/consent-requests", status="pending")
        return next((r for r in rows if r["origin_item_id"] == item["id"]), None)

    request = poll(request_at_jpn, what="the consent request at JPN")
    assert request["direction"] == "incoming"
    assert request["requester"] == "KOR"
    assert request["recipient"] == "USA"
    assert request["item_id"] == item["id"]
    return item, onward, request


def test_consent_granted_lets_the_share_proceed(in_force: Cluster) -> None:
    item, onward, request = _ask_usa(in_force)
    # Still waiting while the originator has not answered.
    assert get_share(in_force, "KOR", onward["id"])["status"] == "awaiting-consent"

    with in_force.nodes["JPN"].client() as jpn:
        r = jpn.post(
            f"/api/v1/consent-requests/{request['id']}/grant", json={"reason": "ok for USA"}
        )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "granted"

    done = wait_share(in_force, "KOR", onward["id"])
    assert done["status"] == "delivered", done
    assert done["route"] == ["KOR", "USA"]

    (at_usa,) = held_by_title(in_force, "USA", item["title"])
    assert at_usa["received_from"] == "KOR"
    assert at_usa["label"]["originator"] == "JPN"
    assert at_usa["sha256"] == item["sha256"]

    # The answer is recorded on both sides.
    theirs = listing(in_force, "KOR", "/api/v1/consent-requests")
    (mine,) = [r for r in theirs if r["id"] == onward["consent_request_id"]]
    assert mine["direction"] == "outgoing"
    assert mine["status"] == "granted"
    answered = listing(in_force, "JPN", "/api/v1/consent-requests", status="granted")
    assert request["id"] in {r["id"] for r in answered}


def test_consent_refused_refuses_the_share_with_the_reason(in_force: Cluster) -> None:
    item, onward, request = _ask_usa(in_force)
    reason = "not for onward release at this time"

    with in_force.nodes["JPN"].client() as jpn:
        r = jpn.post(f"/api/v1/consent-requests/{request['id']}/refuse", json={"reason": reason})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "refused"

    done = wait_share(in_force, "KOR", onward["id"])
    assert done["status"] == "refused", done
    assert any(reason in why and "JPN" in why for why in done["reasons"]), done["reasons"]
    assert held_by_title(in_force, "USA", item["title"]) == []

    # A second answer to the same request is a conflict.
    with in_force.nodes["JPN"].client() as jpn:
        again = jpn.post(f"/api/v1/consent-requests/{request['id']}/grant", json={})
    assert again.status_code == 409, again.text


def test_incident_reaches_the_originator_with_follow_up(in_force: Cluster) -> None:
    item, copy = _direct_to_kor(in_force)
    with in_force.nodes["KOR"].client() as kor:
        r = kor.post(
            f"/api/v1/items/{copy['id']}/incidents",
            json={
                "kind": "possible-compromise",
                "description": "A courier's bag with a printed copy went missing for two hours.",
            },
        )
        assert r.status_code == 201, r.text
        first = r.json()
        assert first["direction"] == "outgoing"
        assert first["originator"] == "JPN"

    def at_jpn(incident_id: str) -> dict[str, Any] | None:
        rows = listing(in_force, "JPN", "/api/v1/incidents")
        return next((i for i in rows if i["id"] == incident_id), None)

    received = poll(lambda: at_jpn(first["id"]), what="the incident at JPN")
    assert received["direction"] == "incoming"
    assert received["reporter"] == "KOR"
    assert received["originator"] == "JPN"
    assert received["kind"] == "possible-compromise"
    assert received["origin_item_id"] == item["id"]
    assert received["item_id"] == item["id"]
    assert "courier" in received["description"]

    with in_force.nodes["KOR"].client() as kor:
        r = kor.post(
            f"/api/v1/items/{copy['id']}/incidents",
            json={
                "kind": "follow-up",
                "description": "The bag was found sealed; no sign of access.",
                "follow_up_of": first["id"],
            },
        )
        assert r.status_code == 201, r.text
        second = r.json()

    follow = poll(lambda: at_jpn(second["id"]), what="the follow-up at JPN")
    assert follow["follow_up_of"] == first["id"]
    assert follow["kind"] == "follow-up"
    assert follow["reporter"] == "KOR"


def test_share_command_sends_a_set_and_names_what_it_could_not(in_force: Cluster) -> None:
    jpn = in_force.nodes["JPN"]
    made = [create_item(in_force, "JPN") for _ in range(3)]
    ids = [made[0]["id"], "no-such-item", made[1]["id"], made[2]["id"]]
    runner = CliRunner()
    result = runner.invoke(
        app, ["share", *ids, "--to", "KOR", "--node", jpn.url, "--token", jpn.token, "--json"]
    )
    # One line naming the item that could not be shared, exit code 2, and the rest shared.
    assert result.exit_code == 2, result.output
    assert "1 of 4 items not shared: no-such-item: " in result.output
    assert "[item-not-found]" in result.output
    assert "Traceback" not in result.output
    answer = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    shared = [row["share"] for row in answer["results"] if "share" in row]
    assert [s["item_id"] for s in shared] == [m["id"] for m in made]
    for sent in shared:
        assert wait_share(in_force, "JPN", sent["id"])["status"] == "delivered"
    for item in made:
        assert len(held_by_title(in_force, "KOR", item["title"])) == 1

    more = [create_item(in_force, "JPN")["id"] for _ in range(2)]
    result = runner.invoke(
        app, ["share", *more, "--to", "KOR", "--node", jpn.url, "--token", jpn.token]
    )
    assert result.exit_code == 0, result.output
    for item_id in more:  # a line per share, naming its item
        assert f"of item {item_id}: queued (JPN → KOR)" in result.output
