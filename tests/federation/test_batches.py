"""Batched delivery and the hot path of sharing, in process: JPN and KOR nodes over SQLite files
of their own, JPN's delivery worker sending to KOR's real FastAPI application through an httpx
transport (every request still signed, verified and answered as over a socket).

Every test runs on SQLite, and on PostgreSQL too when ``GSOMIA_TEST_DATABASE_URL`` is set (each
node in a fresh schema of its own, dropped afterwards).

What batching must keep: one signed request (one nonce, one transaction at each end) for several
envelopes, an answer per envelope exactly as it would have been alone (a refusal refuses its own
share and nothing else), the same receipts for a redelivered batch and no second effect, replay
protection for the batch request, and the single-envelope intake for peers without batches.
The group commit and the driver statements of the share act are checked against the
repositories they stand in for.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.databases import DATABASE_URL, ENGINES, postgresql_schema_url

from gsomia import load_registry
from gsomia.api.app import create_app
from gsomia.core.canonical import canonical_bytes
from gsomia.core.errors import AuthenticationError, ForbiddenError, InputError, ItemNotFoundError
from gsomia.crypto.envelope import (
    envelope_digest,
    open_envelope,
    seal,
    seal_bytes,
    verify_envelope,
)
from gsomia.crypto.httpsig import sign_request
from gsomia.node.cluster import Cluster
from gsomia.node.config import load_config
from gsomia.node.delivery import DeliverySettings, DeliveryWorker
from gsomia.node.federation import (
    BATCH_ENDPOINT,
    ENDPOINT,
    SET_CHUNK,
    Batch,
    Federation,
    GroupCommit,
)
from gsomia.node.service import LabelInput, Node, open_node
from gsomia.store.federation import ActLog, item_to_share, user_by_token
from gsomia.store.records import User, Visibility
from gsomia.store.repositories import AccessRegister, Items, Users

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette would like httpx2; the transport is the same
    from fastapi.testclient import TestClient

NOON = datetime(2019, 11, 22, 12, 0, tzinfo=timezone(timedelta(hours=9)))
LABEL = LabelInput("gokuhi", frozenset({"dprk-missile"}), frozenset({"USA", "KOR"}))


@dataclass
class Side:
    node: Node
    fed: Federation
    data_dir: Path
    token: str
    user: User

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """A query with ``?`` parameters on the node's database, JSON columns as text."""
        engine = self.node.store.engine
        if engine.dialect.name != "sqlite":
            sql = sql.replace("?", "%s")
        with engine.connect() as connection:
            found = connection.exec_driver_sql(sql, tuple(params)).fetchall()
        return [
            tuple(json.dumps(v) if isinstance(v, dict | list) else v for v in row) for row in found
        ]

    def execute(self, sql: str, *params: Any) -> None:
        """A statement with ``?`` parameters, in a write transaction of the node's store."""
        with self.node.store.write() as s:
            connection = s.connection()
            if connection.dialect.name != "sqlite":
                sql = sql.replace("?", "%s")
            connection.exec_driver_sql(sql, tuple(params))

    def count(self, sql: str, *params: Any) -> int:
        ((n,),) = self.rows(sql, *params)
        return int(n)


@dataclass
class Peering:
    """JPN and KOR in process; requests to KOR go through ``Recorder``."""

    jpn: Side
    kor: Side
    kor_app: TestClient
    url: str  # KOR's base URL as JPN pinned it


@dataclass
class Recorder(httpx.BaseTransport):
    """KOR's application as an httpx transport, counting requests per path; ``answer`` may
    stand in for KOR (return a response) or let the request through (return None)."""

    inner: httpx.BaseTransport
    answer: Callable[[httpx.Request], httpx.Response | None] | None = None
    paths: list[str] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    captured: list[httpx.Request] = field(default_factory=list)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.paths.append(request.url.path)
        self.captured.append(request)
        if request.url.path == BATCH_ENDPOINT:
            self.batch_sizes.append(len(json.loads(body)["envelopes"]))
        if self.answer is not None:
            given = self.answer(request)
            if given is not None:
                return given
        return self.inner.handle_request(request)


def _side(cluster: Cluster, party: str) -> Side:
    registry = cluster.registry
    data_dir = cluster.nodes[party].data_dir
    config = load_config(data_dir)
    node = open_node(
        party=party, registry=registry, database_url=config.database_url, clock=lambda: NOON
    )
    fed = Federation.keyed_by(node, config)
    token = cluster.nodes[party].token
    return Side(node, fed, data_dir, token, node.authenticate(token))


@pytest.fixture(scope="module", params=ENGINES)
def peering(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Peering]:
    with ExitStack() as stack:
        urls = None
        if request.param == "postgresql":
            urls = {
                p: stack.enter_context(postgresql_schema_url(DATABASE_URL, "gsomia_batches"))[0]
                for p in ("JPN", "KOR")
            }
        cluster = Cluster(
            root=tmp_path_factory.mktemp("batches"),
            registry=load_registry(),
            parties=("JPN", "KOR"),
        )
        cluster.create(now=datetime.now(UTC), database_urls=urls)
        jpn, kor = _side(cluster, "JPN"), _side(cluster, "KOR")
        app = TestClient(
            create_app(kor.node, kor.fed, deliver=False), raise_server_exceptions=False
        )
        try:
            yield Peering(jpn, kor, app, cluster.nodes["KOR"].url)
        finally:
            app.close()
            for side in (jpn, kor):
                side.node.store.dispose()


def worker(p: Peering, answer: Callable[[httpx.Request], httpx.Response | None] | None = None,
           **settings: Any) -> tuple[DeliveryWorker, Recorder]:  # fmt: skip
    recorder = Recorder(p.kor_app._transport, answer)
    return DeliveryWorker(p.jpn.fed, DeliverySettings(**settings), transport=recorder), recorder


def items(p: Peering, n: int, tag: str) -> list[str]:
    return [
        p.jpn.node.create_item(
            p.jpn.user, title=f"{tag} {i}", label=LABEL, payload=os.urandom(64)
        ).id
        for i in range(n)
    ]


def shares(p: Peering, item_ids: list[str]) -> list[str]:
    return [p.jpn.fed.share(p.jpn.user, i, "KOR").id for i in item_ids]


def drain(w: DeliveryWorker) -> None:
    """Run the worker until nothing it may claim now is left."""
    for _ in range(50):
        if w.run_once() == 0:
            return
    pytest.fail("the outbox did not drain")


def status(p: Peering, share_id: str) -> str:
    ((s,),) = p.jpn.rows("SELECT status FROM shares WHERE id = ?", share_id)
    return str(s)


def queued_with_envelope(p: Peering, item_id: str) -> int:
    """Shares of ``item_id`` queued at JPN with their envelope in the outbox."""
    return p.jpn.count(
        "SELECT count(*) FROM shares s JOIN outbox o ON o.envelope_id = s.envelope_id "
        "WHERE s.item_id = ? AND s.status = 'queued'",
        item_id,
    )


def share_acts(p: Peering, item_id: str) -> int:
    """Share acts of ``item_id`` in JPN's access register."""
    return p.jpn.count(
        "SELECT count(*) FROM access_register WHERE action = 'share' AND item_id = ?", item_id
    )


def held(p: Peering, tag: str) -> list[tuple[Any, ...]]:
    return p.kor.rows(
        "SELECT id, received_from, received_under, classification FROM items WHERE title LIKE ?",
        f"{tag} %",
    )


# -- batches ------------------------------------------------------------------------------------


def test_a_batch_goes_in_one_request_with_a_receipt_per_envelope(peering: Peering) -> None:
    p = peering
    ids = shares(p, items(p, 5, "batch-one"))
    w, seen = worker(p)
    drain(w)
    assert seen.paths == [BATCH_ENDPOINT]
    assert seen.batch_sizes == [5]
    assert [status(p, i) for i in ids] == ["delivered"] * 5
    copies = held(p, "batch-one")
    assert len(copies) == 5
    assert {(c[1], c[2], c[3]) for c in copies} == {("JPN", "JPN-KOR-GSOMIA", "gunsa-2")}
    # Each share keeps the receipt for its own envelope, signed by KOR.
    for share_id in ids:
        ((envelope_id, receipt),) = p.jpn.rows(
            "SELECT envelope_id, receipt FROM shares WHERE id = ?", share_id
        )
        assert json.loads(receipt)["receipt"]["envelope_id"] == envelope_id
    # One act (and ledger entry) per envelope at each end.
    envelopes = [p.jpn.rows("SELECT envelope_id FROM shares WHERE id = ?", i)[0][0] for i in ids]
    for envelope_id in envelopes:
        assert (
            p.jpn.count(
                "SELECT count(*) FROM access_register WHERE action = 'delivered' AND detail LIKE ?",
                f"%{envelope_id}",
            )
            == 1
        )
        assert (
            p.kor.count(
                "SELECT count(*) FROM access_register WHERE action = 'receive' AND detail LIKE ?",
                f"%{envelope_id}",
            )
            == 1
        )
    assert p.kor.count("SELECT count(*) FROM ledger_entries WHERE kind = 'act.receive'") >= 5


def test_a_refused_envelope_refuses_its_share_and_nothing_else(peering: Peering) -> None:
    p = peering
    ids = shares(p, items(p, 3, "batch-refused"))
    ((envelope_id, body),) = p.jpn.rows(
        "SELECT o.envelope_id, o.body FROM outbox o JOIN shares s ON s.envelope_id = o.envelope_id"
        " WHERE s.id = ?",
        ids[1],
    )
    envelope = json.loads(body)
    envelope["header"]["label"]["classification"] = "himitsu"  # the label no longer binds
    p.jpn.execute(
        "UPDATE outbox SET body = ? WHERE envelope_id = ?", canonical_bytes(envelope), envelope_id
    )
    refused_before = p.kor.count(
        "SELECT count(*) FROM access_register WHERE action = 'federation-refused'"
    )
    w, seen = worker(p)
    drain(w)
    assert seen.batch_sizes == [3]
    assert [status(p, i) for i in ids] == ["delivered", "refused", "delivered"]
    ((reasons,),) = p.jpn.rows("SELECT reasons FROM shares WHERE id = ?", ids[1])
    assert "envelope-invalid" in reasons
    assert len(held(p, "batch-refused")) == 2
    assert p.kor.count("SELECT count(*) FROM inbox WHERE envelope_id = ?", envelope_id) == 0
    assert (
        p.kor.count("SELECT count(*) FROM access_register WHERE action = 'federation-refused'")
        == refused_before + 1
    )


def test_a_batch_sent_again_gets_the_same_receipts_and_no_second_copy(peering: Peering) -> None:
    p = peering
    ids = shares(p, items(p, 3, "batch-again"))
    w, _ = worker(p)
    drain(w)
    first = {
        r[0]: r[1] for r in p.jpn.rows("SELECT id, receipt FROM shares WHERE id IN (?, ?, ?)", *ids)
    }
    # As if JPN had crashed after sending and before recording: pending again.
    p.jpn.execute("UPDATE outbox SET status = 'pending' WHERE share_id IN (?, ?, ?)", *ids)
    w2, seen = worker(p)
    drain(w2)
    assert seen.batch_sizes == [3]
    again = {
        r[0]: r[1] for r in p.jpn.rows("SELECT id, receipt FROM shares WHERE id IN (?, ?, ?)", *ids)
    }
    assert again == first
    assert len(held(p, "batch-again")) == 3


def test_a_replayed_batch_request_is_refused_and_recorded(peering: Peering) -> None:
    p = peering
    shares(p, items(p, 2, "batch-replay"))
    w, seen = worker(p)
    drain(w)
    (request,) = seen.captured
    replay = p.kor_app._transport.handle_request(
        httpx.Request(request.method, request.url, headers=request.headers, content=request.content)
    )
    replay.read()
    assert replay.status_code == 409, replay.text
    assert replay.json()["code"] == "replayed-request"
    assert len(held(p, "batch-replay")) == 2


def test_a_peer_without_batches_gets_the_envelopes_one_by_one(peering: Peering) -> None:
    p = peering

    def no_batches(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == BATCH_ENDPOINT:
            return httpx.Response(404, json={"code": "not-found", "status": 404})
        return None

    ids = shares(p, items(p, 3, "batch-none"))
    w, seen = worker(p, no_batches)
    drain(w)
    assert seen.paths == [BATCH_ENDPOINT, ENDPOINT, ENDPOINT, ENDPOINT]
    assert [status(p, i) for i in ids] == ["delivered"] * 3
    # And for a while it is not asked again.
    more = shares(p, items(p, 2, "batch-none-later"))
    drain(w)
    assert seen.paths[4:] == [ENDPOINT, ENDPOINT]
    assert [status(p, i) for i in more] == ["delivered"] * 2


def test_a_batch_over_the_peers_body_limit_is_halved(peering: Peering) -> None:
    p = peering

    def small_bodies(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == BATCH_ENDPOINT and len(json.loads(request.content)["envelopes"]) > 2:
            return httpx.Response(413, json={"code": "payload-too-large", "status": 413})
        return None

    ids = shares(p, items(p, 5, "batch-halved"))
    w, seen = worker(p, small_bodies)
    drain(w)
    assert seen.batch_sizes == [5, 2, 3, 1, 2]
    assert [status(p, i) for i in ids] == ["delivered"] * 5


def test_a_batch_is_cut_by_bytes_and_by_count(peering: Peering) -> None:
    p = peering
    ids = shares(p, items(p, 5, "batch-cut"))
    w, seen = worker(p, batch=2)
    drain(w)
    assert seen.batch_sizes == [2, 2, 1]
    assert [status(p, i) for i in ids] == ["delivered"] * 5


def test_a_receipt_for_another_envelope_is_not_a_delivery(peering: Peering) -> None:
    p = peering

    def swapped(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != BATCH_ENDPOINT:
            return None
        inner = p.kor_app._transport.handle_request(request)
        answer = json.loads(inner.read())
        answer["results"].reverse()
        return httpx.Response(200, json=answer)

    ids = shares(p, items(p, 2, "batch-swapped"))
    w, _ = worker(p, swapped)
    assert w.run_once() == 2
    assert [status(p, i) for i in ids] == ["queued", "queued"]
    errors = [r[0] for r in p.jpn.rows(
        "SELECT last_error FROM outbox WHERE share_id IN (?, ?)", *ids
    )]  # fmt: skip
    assert all("another envelope" in (e or "") for e in errors), errors
    # Retried: delivered once the receipts are the right ones.
    p.jpn.execute(
        "UPDATE outbox SET next_attempt_at = ? WHERE share_id IN (?, ?)",
        datetime(2000, 1, 1),
        *ids,
    )
    w2, _ = worker(p)
    drain(w2)
    assert [status(p, i) for i in ids] == ["delivered", "delivered"]


def test_the_batch_endpoint_refuses_an_unsigned_or_malformed_batch(peering: Peering) -> None:
    p = peering
    unsigned = p.kor_app.post(BATCH_ENDPOINT, content=b'{"envelopes": []}')
    assert unsigned.status_code == 401
    body = b'{"envelopes": []}'
    request = httpx.Request(
        "POST", p.url + BATCH_ENDPOINT, content=body, headers={"content-type": "application/json"}
    )
    sign_request(request, body, party="JPN", key=p.jpn.fed.signing_key)
    empty = p.kor_app._transport.handle_request(request)
    empty.read()
    assert empty.status_code == 400
    assert empty.json()["code"] == "envelope-invalid"


# -- the share act ------------------------------------------------------------------------------


def test_concurrent_shares_commit_together_and_a_failing_one_alone_fails(
    peering: Peering,
) -> None:
    p = peering
    good = items(p, 12, "group")
    targets = [*good[:6], "no-such-item", *good[6:]]
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        futures = [pool.submit(p.jpn.fed.share, p.jpn.user, i, "KOR") for i in targets]
    outcomes = []
    for f in futures:
        try:
            outcomes.append(f.result(timeout=30).status)
        except ItemNotFoundError:
            outcomes.append("not-found")
    assert outcomes == ["queued"] * 6 + ["not-found"] + ["queued"] * 6
    for item_id in good:
        assert queued_with_envelope(p, item_id) == 1
        assert share_acts(p, item_id) == 1
    w, _ = worker(p)
    drain(w)


def test_the_share_api_checks_the_token_in_the_act(peering: Peering) -> None:
    p = peering
    (item_id,) = items(p, 1, "api-share")
    app = TestClient(create_app(p.jpn.node, p.jpn.fed, deliver=False))
    try:
        path = f"/api/v1/items/{item_id}/shares"
        none = app.post(path, json={"recipient": "KOR"})
        assert none.status_code == 401 and none.json()["code"] == "unauthenticated"
        wrong = app.post(path, json={"recipient": "KOR"}, headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 401 and wrong.json()["code"] == "unauthenticated"
        auth = {"Authorization": f"Bearer {p.jpn.token}"}
        missing = app.post("/api/v1/items/nope/shares", json={"recipient": "KOR"}, headers=auth)
        assert missing.status_code == 404 and missing.json()["code"] == "item-not-found"
        made = app.post(path, json={"recipient": "KOR"}, headers=auth)
        assert made.status_code == 201, made.text
        assert made.json()["status"] == "queued"
        assert made.json()["route"] == ["JPN", "KOR"]
    finally:
        app.close()
    w, _ = worker(p)
    drain(w)


def test_driver_lookups_agree_with_the_repositories(peering: Peering) -> None:
    p = peering
    store = p.jpn.node.store
    (item_id,) = items(p, 1, "lookup")
    visibilities = [
        p.jpn.node.visibility(p.jpn.user),
        Visibility(99, frozenset({"dprk-missile"}), frozenset()),
        Visibility(99, frozenset({"prc-maritime"}), frozenset()),  # no need-to-know
        Visibility(1, frozenset({"dprk-missile"}), frozenset()),  # not cleared
        Visibility(0, frozenset({"dprk-missile"}), frozenset()),
        Visibility(99, frozenset({"dprk-missile"}), frozenset({"X"})),
    ]
    with store.read() as s:
        for v in visibilities:
            assert item_to_share(s, item_id, v) == Items(s).get_with_payload(item_id, v), v
        assert item_to_share(s, "no-such-item", visibilities[0]) is None
        assert user_by_token(s, p.jpn.token) == Users(s).by_token(p.jpn.token)
        assert user_by_token(s, "not-a-token") is None
    _, token = p.jpn.node.add_user(name="short-lived", roles=["officer"])
    with store.read() as s:
        assert user_by_token(s, token) == Users(s).by_token(token) is not None
    p.jpn.node.revoke_user("short-lived")
    with store.read() as s:
        assert user_by_token(s, token) is None
        assert Users(s).by_token(token) is None


def test_an_act_log_writes_what_the_access_register_writes(peering: Peering) -> None:
    p = peering
    store = p.jpn.node.store
    at = NOON
    acts: list[dict[str, Any]] = [
        {"item_id": None, "user_id": None, "action": "delivered", "at": at, "detail": "a"},
        {"item_id": None, "user_id": p.jpn.user.id, "action": "share", "at": at, "detail": "b",
         "evidence": {"decision": "sha256:00"}},
    ]  # fmt: skip

    def written() -> list[tuple[Any, ...]]:
        register = p.jpn.rows(
            "SELECT item_id, user_id, action, at, detail FROM access_register "
            "ORDER BY id DESC LIMIT 2"
        )
        entries = p.jpn.rows(
            "SELECT kind, created_at, record FROM ledger_entries ORDER BY idx DESC LIMIT 2"
        )
        return [*register, *entries]

    with store.write() as s:
        for act in acts:
            AccessRegister(s).record(**act)
    by_register = written()
    with store.write() as s:
        log = ActLog(s)
        for act in acts:
            log.record(**act)
        log.record(item_id=None, user_id=None, action="dropped", at=at, detail="x")
        log.rollback(2)
        log.flush()
    assert written() == by_register


def test_sealed_bytes_are_the_canonical_envelope(peering: Peering) -> None:
    p = peering
    label = {"classification": "gokuhi", "topics": ["dprk-missile"]}
    header = {"id": "e-1", "kind": "share", "sender": "JPN", "recipient": "KOR", "label": label,
              "title": "t"}  # fmt: skip
    kor_key = p.kor.fed.encryption_key
    envelope, body = seal_bytes(
        header, b"payload", sender_key=p.jpn.fed.signing_key, recipient_key=kor_key.public_key
    )
    assert body == canonical_bytes(envelope)
    assert json.loads(body) == envelope
    digest = verify_envelope(json.loads(body), p.jpn.fed.signing_key.public_key)
    assert digest == envelope_digest(envelope)
    opened = open_envelope(
        json.loads(body), sender_key=p.jpn.fed.signing_key.public_key, recipient_key=kor_key
    )
    assert opened.payload == b"payload" and opened.header["title"] == "t"
    plain = seal(header, b"x", sender_key=p.jpn.fed.signing_key, recipient_key=kor_key.public_key)
    assert set(plain) == {"header", "key", "ciphertext", "signature"}
    assert base64.b64decode(plain["signature"]["value"])


def test_concurrent_deliveries_never_send_an_entry_twice(peering: Peering) -> None:
    p = peering
    ids = shares(p, items(p, 30, "batch-threads"))
    w, seen = worker(p, batch=4)
    threads = [threading.Thread(target=drain, args=(w,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(seen.batch_sizes) == 30
    assert [status(p, i) for i in ids] == ["delivered"] * 30
    assert len(held(p, "batch-threads")) == 30


def test_a_share_refused_by_the_receivers_act_leaves_the_rest_of_its_batch(
    peering: Peering,
) -> None:
    p = peering
    (item_id,) = items(p, 1, "batch-misrouted")
    with p.jpn.node.store.read() as s:
        item = Items(s).get(item_id, None)
    assert item is not None

    def envelope(title: str, route: list[str]) -> dict[str, Any]:
        header = {
            "id": str(uuid.uuid4()),
            "kind": "share",
            "sender": "JPN",
            "recipient": "KOR",
            "created_at": NOON.isoformat(),
            "nonce": uuid.uuid4().hex,
            "registry_hash": p.jpn.node.registry.content_hash,
            "share_id": str(uuid.uuid4()),
            "route": route,
            "instruments": ["JPN-KOR-GSOMIA"] * (len(route) - 1),
            "final_recipient": "KOR",
            "label": item.label,
            "received_under": None,
            "consents": ["JPN"],
            "decision_digest": "sha256:" + "0" * 64,
            "origin_item_id": item.id,
            "title": title,
            "relay_of": None,
        }
        kor_key = p.kor.fed.encryption_key.public_key
        return seal(header, b"x", sender_key=p.jpn.fed.signing_key, recipient_key=kor_key)

    batch = [
        envelope("batch-misrouted a", ["JPN", "KOR"]),
        envelope("batch-misrouted b", ["JPN", "USA", "KOR"]),  # KOR is not the next hop
        envelope("batch-misrouted c", ["JPN", "KOR"]),
    ]
    results = p.kor.fed.receive_batch("JPN", batch)
    assert [next(iter(r)) for r in results] == ["receipt", "problem", "receipt"]
    assert results[1]["problem"]["code"] == "misaddressed"
    assert [r[0] for r in p.kor.rows(
        "SELECT title FROM items WHERE title LIKE ? ORDER BY title", "batch-misrouted %"
    )] == ["batch-misrouted a", "batch-misrouted c"]  # fmt: skip
    assert (
        p.kor.count(
            "SELECT count(*) FROM access_register WHERE action = 'federation-refused' "
            "AND detail LIKE ?",
            f"%{batch[1]['header']['id']}%",
        )
        == 1
    )
    # The same batch again: the same receipts, the same refusal, nothing more stored.
    again = p.kor.fed.receive_batch("JPN", batch)
    assert again[0] == results[0] and again[2] == results[2]
    assert again[1]["problem"]["code"] == "misaddressed"
    assert p.kor.count("SELECT count(*) FROM items WHERE title LIKE ?", "batch-misrouted %") == 2


def test_group_commit_keeps_each_acts_outcome_its_own(peering: Peering) -> None:
    p = peering
    commits = GroupCommit(p.jpn.node.store)
    tag = uuid.uuid4().hex[:8]
    started = threading.Event()

    def act(n: int, fail: type[Exception] | None = None, *, hold: bool = False) -> Any:
        def run(b: Batch) -> int:
            if hold:  # keep the writer busy while the others queue: they make one batch
                started.set()
                threading.Event().wait(0.3)
            b.log.record(item_id=None, user_id=None, action="test", at=NOON, detail=f"{tag} {n}")
            if fail is not None:
                raise fail(f"act {n}")
            return n

        return run

    first = commits.submit(act(0, hold=True))
    assert started.wait(10)
    futures = [
        commits.submit(act(1)),
        commits.submit(act(2, ForbiddenError)),  # a refusal: its own
        commits.submit(act(3, RuntimeError)),  # a failure: the batch again, act by act
        commits.submit(act(4), atomic=True),
    ]
    assert first.result(timeout=30) == 0
    assert futures[0].result(timeout=30) == 1
    with pytest.raises(ForbiddenError):
        futures[1].result(timeout=30)
    with pytest.raises(RuntimeError):
        futures[2].result(timeout=30)
    assert futures[3].result(timeout=30) == 4
    recorded = p.jpn.rows(
        "SELECT detail FROM access_register WHERE action = 'test' AND detail LIKE ?", f"{tag} %"
    )
    assert sorted(r[0] for r in recorded) == [f"{tag} 0", f"{tag} 1", f"{tag} 4"]


# -- a set of items in one share request ----------------------------------------------------------


def test_a_set_of_items_is_shared_in_one_request_with_a_result_for_each(peering: Peering) -> None:
    p = peering
    good = items(p, 4, "release-set")
    outside = p.jpn.node.create_item(
        p.jpn.user,
        title="release-set not for KOR",
        label=LabelInput("gokuhi", frozenset({"dprk-missile"}), frozenset({"USA"})),
        payload=b"USA only",
    ).id
    listed = [good[0], "no-such-item", good[1], outside, *good[2:]]
    app = TestClient(create_app(p.jpn.node, p.jpn.fed, deliver=False))
    try:
        r = app.post(
            "/api/v1/shares",
            json={"recipient": "KOR", "items": listed},
            headers={"Authorization": f"Bearer {p.jpn.token}"},
        )
    finally:
        app.close()
    assert r.status_code == 200, r.text
    answer = r.json()
    assert [row["item_id"] for row in answer["results"]] == listed  # in the order asked
    by_item = {row["item_id"]: row for row in answer["results"]}
    assert by_item["no-such-item"]["problem"]["code"] == "item-not-found"
    assert "share" not in by_item["no-such-item"]
    refused = by_item[outside]["share"]
    assert refused["status"] == "refused" and refused["reasons"]
    assert [by_item[i]["share"]["status"] for i in good] == ["queued"] * 4
    assert answer["recipient"] == "KOR"
    assert answer["counts"] == {"queued": 4, "awaiting-consent": 0, "refused": 1, "problem": 1}
    # Each share is what sharing the item alone would have made: its envelope in the outbox
    # and its act in the access register; the refusal is recorded too, the unknown id is not.
    for item_id in good:
        assert queued_with_envelope(p, item_id) == 1
    for item_id in (*good, outside):
        assert share_acts(p, item_id) == 1
    w, recorder = worker(p)
    drain(w)
    assert recorder.paths == [BATCH_ENDPOINT]  # the four envelopes went in one request
    assert [status(p, by_item[i]["share"]["id"]) for i in good] == ["delivered"] * 4
    assert len(held(p, "release-set")) == 4


def test_a_set_share_refused_as_a_whole_shares_nothing(peering: Peering) -> None:
    p = peering
    listed = items(p, 2, "refused-set")
    auth = {"Authorization": f"Bearer {p.jpn.token}"}
    _, auditor_token = p.jpn.node.add_user(name="set auditor", roles=["auditor"])
    app = TestClient(create_app(p.jpn.node, p.jpn.fed, deliver=False))
    try:

        def post(body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
            return app.post("/api/v1/shares", json=body, headers=headers)

        cases = [
            (post({"recipient": "KOR", "items": listed}, {}), 401, "unauthenticated"),
            (
                post({"recipient": "KOR", "items": listed}, {"Authorization": "Bearer nope"}),
                401,
                "unauthenticated",
            ),
            (
                post(
                    {"recipient": "KOR", "items": listed},
                    {"Authorization": f"Bearer {auditor_token}"},
                ),
                403,
                "forbidden",
            ),
            (post({"recipient": "XXX", "items": listed}, auth), 404, "unknown-party"),
            (post({"recipient": "KOR", "items": []}, auth), 422, "invalid-request"),
            (
                post({"recipient": "KOR", "items": [listed[0], listed[1], listed[0]]}, auth),
                422,
                "invalid-request",
            ),
            (
                post({"recipient": "KOR", "items": [f"i{n}" for n in range(1001)]}, auth),
                422,
                "invalid-request",
            ),
        ]
    finally:
        app.close()
    for r, code, problem in cases:
        assert (r.status_code, r.json()["code"]) == (code, problem), r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    assert listed[0] in cases[-2][0].json()["detail"]
    for item_id in listed:
        assert p.jpn.count("SELECT count(*) FROM shares WHERE item_id = ?", item_id) == 0


def test_a_set_is_written_a_chunk_at_a_time_so_other_shares_need_not_wait(
    peering: Peering,
) -> None:
    p = peering
    listed = items(p, SET_CHUNK + 8, "chunked-set")
    (alone,) = items(p, 1, "between-chunks")
    acts = p.jpn.fed.share_set(p.jpn.token, listed, "KOR")
    first = next(acts).result(timeout=30)
    assert [o.status for o in first] == ["queued"] * SET_CHUNK  # type: ignore[union-attr]
    # The next chunk is not written until asked for: a share arriving now commits first.
    assert sum(p.jpn.count("SELECT count(*) FROM shares WHERE item_id = ?", i) for i in listed) == (
        SET_CHUNK
    )
    assert p.jpn.fed.share(p.jpn.user, alone, "KOR").status == "queued"
    second = next(acts).result(timeout=30)
    assert [o.status for o in second] == ["queued"] * 8  # type: ignore[union-attr]
    assert next(acts, None) is None
    w, _ = worker(p)
    drain(w)
    assert len(held(p, "chunked-set")) == SET_CHUNK + 8


def test_a_token_revoked_part_way_through_a_set_shares_no_more(peering: Peering) -> None:
    p = peering
    listed = items(p, SET_CHUNK + 1, "revoked-set")
    user, token = p.jpn.node.add_user(
        name="revoked sharer",
        roles=["officer"],
        clearance=p.jpn.user.clearance,
        need_to_know=p.jpn.user.need_to_know,
    )
    acts = p.jpn.fed.share_set(token, listed, "KOR")
    assert len(next(acts).result(timeout=30)) == SET_CHUNK
    p.jpn.node.revoke_user(user.id)
    with pytest.raises(AuthenticationError):
        next(acts).result(timeout=30)
    assert p.jpn.count("SELECT count(*) FROM shares WHERE item_id = ?", listed[-1]) == 0
    with pytest.raises(InputError, match="listed more than once"):
        p.jpn.fed.share_set(token, [listed[0], listed[0]], "KOR")
    w, _ = worker(p)
    drain(w)
