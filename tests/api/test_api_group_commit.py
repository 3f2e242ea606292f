"""The group-committed acts (create an item, view one, read its content): each act is on record
before its answer, acts of concurrent requests share a transaction without sharing their fate,
and a token is checked again in the act's own transaction, so one revoked elsewhere (by
``gsomia users revoke`` in another process, which the serving node's memory never hears of)
acts no more."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from datetime import timedelta
from typing import Any

import pytest

from gsomia.core.errors import AuthenticationError, ItemNotFoundError
from gsomia.ledger.log import Ledger
from gsomia.node.service import Caller
from gsomia.store.engine import Outcome
from gsomia.store.repositories import Users

from .conftest import NOON, Api, assert_problem, corpus_payload, item_body


def revoke_behind_the_nodes_back(api: Api, who: str) -> None:
    """As another process would: straight in the database, not through the serving node."""
    with api.node.store.write() as s:
        Users(s).revoke(api.users[who].id, NOON + timedelta(hours=1))


def test_a_token_revoked_elsewhere_is_refused_by_the_next_act(corpus: Api) -> None:
    item_id = corpus.items["hi_missile"]
    assert corpus.get("officer", f"/items/{item_id}/payload").status_code == 200
    assert corpus.node.cached_caller(corpus.tokens["officer"]) is not None  # remembered
    before = corpus.register_total()
    revoke_behind_the_nodes_back(corpus, "officer")
    assert_problem(corpus.get("officer", f"/items/{item_id}/payload"), 401, "unauthenticated")
    assert corpus.node.cached_caller(corpus.tokens["officer"]) is None  # and forgotten
    assert_problem(corpus.get("officer", f"/items/{item_id}"), 401, "unauthenticated")
    created = corpus.post("officer", "/items", item_body())
    assert_problem(created, 401, "unauthenticated")
    assert corpus.register_total() == before
    assert len(corpus.register(item_id=item_id, user="officer", action="read")) == 1
    # Others are unaffected.
    assert corpus.get("officer_hi", f"/items/{item_id}/payload").status_code == 200


def test_an_act_with_a_caller_remembered_before_revocation_is_refused(corpus: Api) -> None:
    node = corpus.node
    caller = node.caller(corpus.tokens["officer_hi"])
    revoke_behind_the_nodes_back(corpus, "officer_hi")
    with pytest.raises(AuthenticationError):
        node.read_payload_soon(caller, corpus.items["hi_missile"]).result(10)
    # Without a token, the caller is taken as given (as the node's plain methods take actors).
    trusted = Caller(corpus.users["ra"])
    item, data = node.read_payload_soon(trusted, corpus.items["hi_missile"]).result(10)
    assert data == corpus_payload("hi_missile")
    assert [r.user_id for r in corpus.register(item_id=item.id, action="read")] == [
        corpus.users["ra"].id
    ]


def test_acts_of_one_batch_succeed_and_fail_on_their_own(corpus: Api) -> None:
    node = corpus.node
    batches: list[int] = []
    first_in = threading.Event()
    go_on = threading.Event()
    execute = node._acts.execute

    def holding(db: Any, acts: Sequence[Any]) -> list[Outcome]:
        batches.append(len(acts))
        first_in.set()
        go_on.wait(10)
        return execute(db, acts)

    node._acts.execute = holding
    try:
        officer = node.caller(corpus.tokens["officer"])
        officer_hi = node.caller(corpus.tokens["officer_hi"])
        first = node.read_payload_soon(officer, corpus.items["gokuhi_missile"])
        assert first_in.wait(10)  # the writer holds the first batch: the rest form the next
        wanted: list[tuple[str, Future[Any]]] = [
            ("gokuhi_missile", node.read_payload_soon(officer, corpus.items["gokuhi_missile"])),
            ("hidden", node.read_payload_soon(officer_hi, corpus.items["gokuhi_missile"])),
            ("hi_missile", node.read_payload_soon(officer_hi, corpus.items["hi_missile"])),
            ("unknown", node.read_payload_soon(officer, "no-such-item")),
            ("viewed", node.get_item_soon(officer_hi, corpus.items["hi_missile"])),
        ]
        go_on.set()
        assert first.result(10)[1] == corpus_payload("gokuhi_missile")
        outcomes = {}
        for key, future in wanted:
            try:
                outcomes[key] = future.result(10)
            except ItemNotFoundError:
                outcomes[key] = "not found"
    finally:
        node._acts.execute = execute
    assert batches == [1, 5]
    assert outcomes["gokuhi_missile"][1] == corpus_payload("gokuhi_missile")
    assert outcomes["hi_missile"][1] == corpus_payload("hi_missile")
    assert outcomes["viewed"].id == corpus.items["hi_missile"]
    assert outcomes["hidden"] == outcomes["unknown"] == "not found"
    reads = corpus.register(action="read")
    assert sorted((corpus.key_of(r.item_id or ""), r.user_id) for r in reads) == sorted(
        [
            ("gokuhi_missile", corpus.users["officer"].id),
            ("gokuhi_missile", corpus.users["officer"].id),
            ("hi_missile", corpus.users["officer_hi"].id),
        ]
    )
    assert len(corpus.register(action="view")) == 1
    assert Ledger(node.store).verify().ok


def test_concurrent_requests_are_each_answered_and_each_on_record(api: Api) -> None:
    created: dict[int, str] = {}
    errors: list[Any] = []

    def work(k: int) -> None:
        for n in range(5):
            response = api.post("officer", "/items", item_body(payload=f"{k}.{n}".encode()))
            if response.status_code != 201:
                errors.append(response.text)
                continue
            item_id = response.json()["id"]
            created[k * 10 + n] = item_id
            read = api.get("officer", f"/items/{item_id}/payload")
            if read.content != f"{k}.{n}".encode():
                errors.append(read.text)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(created) == 20
    for item_id in created.values():
        acts = [r.action for r in api.register(item_id=item_id)]
        assert acts == ["create", "read"]
    ledger = Ledger(api.node.store)
    assert ledger.verify().ok
    kinds = [e.kind for e in ledger.entries(0, ledger.size())]
    assert kinds.count("act.create") == kinds.count("act.read") == 20
