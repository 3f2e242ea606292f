"""Nothing acknowledged is lost, nothing half-written is left: a served SQLite node is killed
(SIGKILL) in the middle of a burst of concurrent item creations, then started again.

Four client threads post items as fast as the node takes them; once enough creations have been
acknowledged (201), the server process is killed. After a restart on the same data directory,
every acknowledged item must be there with exactly its payload and label; every item that is
there must be whole (its topic and compartment rows, its size and digest, its 'create' row in the
access register), and may only be one that a client sent; and SQLite must find the file sound.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import threading
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from .conftest import ALL_TOPICS, add_user_cli, b64, gsomia, serve

pytestmark = pytest.mark.slow

WRITERS = 4
ACKNOWLEDGED_BEFORE_KILL = 40
MAX_PER_WRITER = 400  # a bound on the burst, far beyond what is sent before the kill
DEADLINE_S = 180.0
LEVELS = ("hi", "gokuhi", "tokutei-himitsu", "kimitsu")


@dataclass(frozen=True)
class Sent:
    title: str
    classification: str
    topics: tuple[str, ...]
    compartments: tuple[str, ...]
    payload: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()

    def body(self) -> dict[str, object]:
        return {
            "title": self.title,
            "label": {
                "classification": self.classification,
                "topics": list(self.topics),
                "compartments": list(self.compartments),
            },
            "payload": b64(self.payload),
        }


def item_to_send(rng: random.Random, writer: int, n: int) -> Sent:
    return Sent(
        title=f"burst w{writer} n{n}",
        classification=rng.choice(LEVELS),
        topics=tuple(sorted(rng.sample(ALL_TOPICS, rng.randint(1, 3)))),
        compartments=rng.choice(((), ("BLUE",))),
        payload=rng.randbytes(rng.randint(0, 3000)),
    )


@dataclass
class Burst:
    base_url: str
    token: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    acknowledged: dict[str, Sent] = field(default_factory=dict)  # item id -> what was sent
    unanswered: dict[str, Sent] = field(default_factory=dict)  # title -> sent, no answer
    unexpected: list[str] = field(default_factory=list)  # answers other than 201
    enough: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def write(self, writer: int) -> None:
        rng = random.Random(1122 + writer)
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=f"{self.base_url}/api/v1", timeout=60) as client:
            for n in range(MAX_PER_WRITER):
                if self.stop.is_set():
                    return
                sent = item_to_send(rng, writer, n)
                with self.lock:
                    self.unanswered[sent.title] = sent
                try:
                    response = client.post("/items", headers=headers, json=sent.body())
                except httpx.TransportError:
                    return  # the server is gone: this one may or may not have been stored
                with self.lock:
                    del self.unanswered[sent.title]
                    if response.status_code != 201:
                        self.unexpected.append(f"{response.status_code} {response.text}")
                        return
                    created = response.json()
                    if created["sha256"] != sent.sha256:
                        self.unexpected.append(f"digest of {sent.title}: {created['sha256']}")
                    self.acknowledged[created["id"]] = sent
                    if len(self.acknowledged) >= ACKNOWLEDGED_BEFORE_KILL:
                        self.enough.set()


@pytest.fixture
def node_dir(tmp_path: Path) -> tuple[Path, str]:
    data = tmp_path / "jpn"
    gsomia("node", "init", "--party", "JPN", "--data", str(data), "--json")
    topics = [arg for t in ALL_TOPICS for arg in ("--need-to-know", t)]
    token = add_user_cli(
        data, "writer", "--role", "release-authority", "--clearance", "機密",
        "--compartment", "BLUE", *topics,
    )  # fmt: skip
    return data, token


def test_acknowledged_items_survive_a_kill_and_nothing_is_half_written(
    node_dir: tuple[Path, str],
) -> None:
    data, token = node_dir
    with serve(data) as served:
        burst = Burst(served.base_url, token)
        writers = [
            threading.Thread(target=burst.write, args=(w,), name=f"writer-{w}", daemon=True)
            for w in range(WRITERS)
        ]
        for thread in writers:
            thread.start()
        try:
            reached = burst.enough.wait(timeout=DEADLINE_S)
            assert reached, f"only {len(burst.acknowledged)} acknowledged: {burst.unexpected}"
            served.process.kill()  # SIGKILL, in the middle of the burst
            served.process.wait(timeout=30)
        finally:
            burst.stop.set()
            for thread in writers:
                thread.join(timeout=90)
        assert not any(t.is_alive() for t in writers)
    assert burst.unexpected == []
    acknowledged = dict(burst.acknowledged)
    unanswered = dict(burst.unanswered)
    assert len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL

    # Start the node again on the same directory, and look through its API.
    with (
        serve(data) as again,
        httpx.Client(
            base_url=f"{again.base_url}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        ) as client,
    ):
        for item_id, sent in acknowledged.items():
            got = client.get(f"/items/{item_id}")
            assert got.status_code == 200, (sent.title, got.text)
            item = got.json()
            assert item["title"] == sent.title
            assert item["label"]["classification"] == sent.classification
            assert tuple(item["label"]["topics"]) == sent.topics
            assert tuple(item["label"]["compartments"]) == sent.compartments
            assert (item["size"], item["sha256"]) == (len(sent.payload), sent.sha256)
            payload = client.get(f"/items/{item_id}/payload")
            assert payload.status_code == 200
            assert hashlib.sha256(payload.content).hexdigest() == sent.sha256
        listed = client.get("/items", params={"limit": 500}).json()
        assert listed["next_cursor"] is None
        stored = {i["id"]: i for i in listed["items"]}
        assert listed["total"] == len(stored)
        assert set(acknowledged) <= set(stored)

    # And in the file itself, with the node stopped.
    sent_titles = {s.title: s for s in (*acknowledged.values(), *unanswered.values())}
    with closing(sqlite3.connect(data / "node.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        rows = db.execute(
            "SELECT id, title, label, payload, payload_sha256, size FROM items"
        ).fetchall()
        assert {r[0] for r in rows} == set(stored)
        for item_id, title, label_text, payload, digest, size in rows:
            # Only what a client sent; acknowledged or not, it is whole.
            assert title in sent_titles, title
            sent = sent_titles[title]
            label = json.loads(label_text)
            assert bytes(payload) == sent.payload, title
            assert (size, digest) == (len(sent.payload), sent.sha256), title
            assert label["classification"] == sent.classification
            topics = db.execute(
                "SELECT topic FROM item_topics WHERE item_id = ? ORDER BY topic", (item_id,)
            ).fetchall()
            assert tuple(t for (t,) in topics) == sent.topics == tuple(label["topics"]), title
            compartments = db.execute(
                "SELECT compartment FROM item_compartments WHERE item_id = ?", (item_id,)
            ).fetchall()
            assert tuple(c for (c,) in compartments) == sent.compartments, title
            creates = db.execute(
                "SELECT count(*) FROM access_register WHERE item_id = ? AND action = 'create'",
                (item_id,),
            ).fetchone()
            assert creates == (1,), title
        # No register row points at an item that is not there.
        orphans = db.execute(
            "SELECT count(*) FROM access_register WHERE item_id IS NOT NULL "
            "AND item_id NOT IN (SELECT id FROM items)"
        ).fetchone()
        assert orphans == (0,)
