"""End-to-end federation tests: real ``gsomia node serve`` processes on 127.0.0.1.

Each cluster lives under a temporary directory and is always stopped by its fixture's finalizer.
Synchronisation is by bounded polling (:func:`poll`), never by fixed sleeps.

Scenario clocks:

- ``BEFORE`` (2019-11-22T12:00+09:00): the JPN–KOR GSOMIA is in force, JPN→KOR goes directly;
- ``AFTER`` (2019-11-24T12:00+09:00) without Korea's suspension of its notice: the GSOMIA has
  lapsed, DPRK-missile items go JPN→USA→KOR under TISA and PRC-maritime items are refused.
"""

from __future__ import annotations

import base64
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gsomia import load_registry
from gsomia.core.registry import Registry
from gsomia.node.cluster import Cluster

BEFORE = "2019-11-22T12:00+09:00"
AFTER = "2019-11-24T12:00+09:00"
SUSPENSION = "kor-notice-suspension-2019"
LAPSED = {"clock": AFTER, "without": [SUSPENSION]}
FINAL = ("delivered", "refused", "failed")
PROBLEM = "application/problem+json"


# -- the cluster ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_registry()


def new_cluster(root: Path, registry: Registry, parties: tuple[str, ...]) -> Cluster:
    cluster = Cluster(root=root, registry=registry, parties=parties)
    cluster.create(now=datetime.now(UTC))
    return cluster


@pytest.fixture
def make_cluster(tmp_path: Path, registry: Registry) -> Iterator[Callable[..., Cluster]]:
    """A factory of clusters in ``tmp_path``, every one stopped when the test ends."""
    made: list[Cluster] = []

    def make(parties: tuple[str, ...] = ("JPN", "KOR", "USA")) -> Cluster:
        cluster = new_cluster(tmp_path / f"cluster-{len(made)}", registry, parties)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop()


@pytest.fixture(scope="session")
def in_force(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Iterator[Cluster]:
    """JPN, KOR and USA at 2019-11-22T12:00+09:00: the JPN–KOR GSOMIA in force.

    Shared by the modules whose tests only add items and shares of their own."""
    cluster = new_cluster(tmp_path_factory.mktemp("in-force"), registry, ("JPN", "KOR", "USA"))
    try:
        cluster.start(clock=BEFORE)
        yield cluster
    finally:
        cluster.stop()


# -- the API -------------------------------------------------------------------------------------


def api(cluster: Cluster, party: str) -> httpx.Client:
    return cluster.nodes[party].client(timeout=15.0)


def create_item(
    cluster: Cluster,
    party: str,
    *,
    title: str | None = None,
    topic: str = "dprk-missile",
    classification: str = "gokuhi",
    payload: bytes | None = None,
) -> dict[str, Any]:
    title = title or f"report {uuid.uuid4().hex[:8]}"
    payload = payload if payload is not None else f"{title}: details follow.".encode()
    with api(cluster, party) as client:
        r = client.post(
            "/api/v1/items",
            json={
                "title": title,
                "label": {
                    "classification": classification,
                    "topics": [topic],
                    "rel_to": ["USA", "KOR"],
                },
                "payload": base64.b64encode(payload).decode(),
            },
        )
    assert r.status_code == 201, r.text
    item: dict[str, Any] = r.json()
    return item


def share(cluster: Cluster, party: str, item_id: str, to: str) -> dict[str, Any]:
    with api(cluster, party) as client:
        r = client.post(f"/api/v1/items/{item_id}/shares", json={"recipient": to})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def get_share(cluster: Cluster, party: str, share_id: str) -> dict[str, Any]:
    with api(cluster, party) as client:
        r = client.get(f"/api/v1/shares/{share_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def wait_share(
    cluster: Cluster,
    party: str,
    share_id: str,
    until: tuple[str, ...] = FINAL,
    timeout: float = 30.0,
) -> dict[str, Any]:
    found = cluster.wait_for_share(party, share_id, until=until, timeout=timeout)
    assert found.get("status") in until, f"share {share_id} at {party}: {found}"
    return found


def items(cluster: Cluster, party: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    with api(cluster, party) as client:
        while True:
            query = {**params, "limit": 500, **({"cursor": cursor} if cursor else {})}
            r = client.get("/api/v1/items", params=query)
            assert r.status_code == 200, r.text
            page = r.json()
            rows += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return rows


def item_count(cluster: Cluster, party: str) -> int:
    with api(cluster, party) as client:
        r = client.get("/api/v1/items", params={"limit": 1})
    assert r.status_code == 200, r.text
    total: int = r.json()["total"]
    return total


def held_by_title(cluster: Cluster, party: str, title: str) -> list[dict[str, Any]]:
    return [i for i in items(cluster, party) if i["title"] == title]


def payload(cluster: Cluster, party: str, item_id: str) -> bytes:
    with api(cluster, party) as client:
        r = client.get(f"/api/v1/items/{item_id}/payload")
    assert r.status_code == 200, r.text
    return r.content


def listing(cluster: Cluster, party: str, path: str, **params: Any) -> list[dict[str, Any]]:
    with api(cluster, party) as client:
        r = client.get(path, params=params)
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["items"]
    return rows


# -- the node's database, read-only ------------------------------------------------------------


def db_rows(cluster: Cluster, party: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of a query on a node's SQLite file, opened read-only beside the running node."""
    path = cluster.nodes[party].data_dir / "node.db"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()
