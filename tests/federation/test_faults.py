"""Faults: the recipient down during a share, the sender killed (SIGKILL) during a burst.

Delivery is at least once and receipt is idempotent by envelope id, so the effect must be exactly
once: every acknowledged share arrives, none twice."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from tests.polling import poll

from gsomia.node.cluster import Cluster

from .conftest import (
    BEFORE,
    create_item,
    db_rows,
    get_share,
    held_by_title,
    items,
    share,
    wait_share,
)

pytestmark = pytest.mark.slow

BURST = 30
KILL_AFTER = 10


def _outbox(cluster: Cluster, party: str, envelope_id: str) -> tuple[str, int, str | None]:
    ((status, attempts, error),) = db_rows(
        cluster,
        party,
        "SELECT status, attempts, last_error FROM outbox WHERE envelope_id = ?",
        envelope_id,
    )
    return str(status), int(attempts), error


def _pending(cluster: Cluster, party: str) -> int:
    ((n,),) = db_rows(cluster, party, "SELECT count(*) FROM outbox WHERE status = 'pending'")
    return int(n)


def test_recipient_down_then_up_is_delivered_exactly_once(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(("JPN", "KOR"))
    cluster.start(clock=BEFORE)
    item = create_item(cluster, "JPN")
    cluster.stop(["KOR"])
    assert not cluster.nodes["KOR"].running

    sent = share(cluster, "JPN", item["id"], "KOR")
    assert sent["status"] == "queued"
    envelope = sent["envelope_id"]

    # Retried, with backoff, while KOR is down: still queued, the last error kept.
    poll(lambda: _outbox(cluster, "JPN", envelope)[1] >= 2, what="two failed attempts")
    status, attempts, error = _outbox(cluster, "JPN", envelope)
    assert attempts >= 2
    assert status == "pending"
    assert error
    now = get_share(cluster, "JPN", sent["id"])
    assert now["status"] == "queued", now
    assert now["last_error"]

    cluster.start(["KOR"], clock=BEFORE)
    done = wait_share(cluster, "JPN", sent["id"])
    assert done["status"] == "delivered", done
    assert _outbox(cluster, "JPN", envelope)[0] == "delivered"
    assert _pending(cluster, "JPN") == 0

    copies = held_by_title(cluster, "KOR", item["title"])
    assert len(copies) == 1, copies
    assert copies[0]["received_from"] == "JPN"
    rows = db_rows(cluster, "KOR", "SELECT item_id FROM inbox WHERE envelope_id = ?", envelope)
    assert rows == [(copies[0]["id"],)]


def test_sender_killed_during_a_burst_loses_and_duplicates_nothing(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(("JPN", "KOR"))
    cluster.start(clock=BEFORE)
    burst = [create_item(cluster, "JPN", title=f"burst report {n:02d}") for n in range(BURST)]

    acked: dict[str, dict[str, Any]] = {}  # title -> the 201 share
    lock = threading.Lock()
    enough = threading.Event()
    client = cluster.nodes["JPN"].client(timeout=10.0)

    def post(item: dict[str, Any]) -> None:
        try:
            r = client.post(f"/api/v1/items/{item['id']}/shares", json={"recipient": "KOR"})
        except httpx.HTTPError:
            return  # the node died under this request: not acknowledged
        if r.status_code != 201:
            return
        with lock:
            acked[item["title"]] = r.json()
            if len(acked) >= KILL_AFTER:
                enough.set()

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(post, item) for item in burst]
            assert enough.wait(timeout=60), f"only {len(acked)} shares acknowledged"
            cluster.stop(["JPN"], kill=True)
            for f in futures:
                f.result(timeout=60)
    finally:
        client.close()
    assert not cluster.nodes["JPN"].running
    with lock:
        acknowledged = dict(acked)
    assert len(acknowledged) >= KILL_AFTER
    assert all(s["status"] == "queued" for s in acknowledged.values())

    cluster.start(["JPN"], clock=BEFORE)
    for title, sent in acknowledged.items():
        done = wait_share(cluster, "JPN", sent["id"])
        assert done["status"] == "delivered", (title, done)
    # Let whatever else the killed node had committed go out too, then count.
    poll(lambda: _pending(cluster, "JPN") == 0, what="JPN's outbox to drain")

    held: dict[str, int] = {}
    for row in items(cluster, "KOR"):
        held[row["title"]] = held.get(row["title"], 0) + 1
    twice = {t: n for t, n in held.items() if n > 1}
    assert not twice, f"held more than once: {twice}"
    missing = sorted(set(acknowledged) - set(held))
    assert not missing, f"acknowledged but not delivered: {missing}"
    assert set(held) <= {i["title"] for i in burst}
    envelopes = db_rows(cluster, "KOR", "SELECT envelope_id FROM inbox WHERE kind = 'share'")
    assert len(envelopes) == len(held)
