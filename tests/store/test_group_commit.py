"""The hot path's contract, on every engine (see conftest.py): the driver-level statements of
``HotStatements``/``ActBatch`` read and write exactly what the ORM repositories do, and
``GroupCommit`` commits a batch once, before any of its results is handed out, and isolates a
failing job from the others."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from gsomia.core.errors import InputError
from gsomia.ledger.log import Appender, Ledger
from gsomia.store.engine import GroupCommit, Outcome, Store
from gsomia.store.models import UserRow
from gsomia.store.repositories import (
    AccessRegister,
    ActBatch,
    HotStatements,
    Items,
    NodeMeta,
    Users,
    token_digest,
)

from .test_repositories_contract import (
    INSTANTS,
    NAIVE,
    SPECS,
    T0,
    VISIBILITIES,
    add_specs,
    add_user,
    label,
    may_see,
    vis,
)


def hot(store: Store) -> HotStatements:
    return HotStatements(store.engine.dialect)


# -- reading ----------------------------------------------------------------------------------


def test_the_hot_read_applies_the_same_visibility_and_returns_the_same_item(store: Store) -> None:
    added = add_specs(store, SPECS)
    statements = hot(store)
    wrong: dict[Any, Any] = {}
    with store.write_dbapi() as db, store.read() as s:
        for who, v in VISIBILITIES.items():
            for spec in SPECS:
                item = added[spec.key]
                found = statements.item(db, item.id, v, with_payload=True)
                by_orm = Items(s).get_with_payload(item.id, v)
                if (found is not None) != may_see(v, spec) or found != by_orm:
                    wrong[who, spec.key] = (found, by_orm)
                bare = statements.item(db, item.id, v, with_payload=False)
                if bare != (None if found is None else (found[0], None)):
                    wrong[who, spec.key, "no payload"] = bare
            if statements.item(db, "no-such-item", v, with_payload=True) is not None:
                wrong[who, "no-such-item"] = True
    assert wrong == {}


def test_the_token_check_finds_only_active_tokens_of_active_users(store: Store) -> None:
    kim = add_user(store, "kim", token="kim-1")
    lee = add_user(store, "lee", token="lee-1")
    with store.write() as s:
        Users(s).add_token(kim.id, "kim-2", T0)
        Users(s).revoke(lee.id, T0 + timedelta(hours=1))
    statements = hot(store)
    hashes = {token_digest(t) for t in ("kim-1", "kim-2", "lee-1", "nobody")}
    with store.write_dbapi() as db:
        found = statements.users_by_token(db, hashes)
        assert statements.users_by_token(db, ()) == {}
    assert found == {token_digest("kim-1"): kim, token_digest("kim-2"): kim}
    # a user changed in the database is read afresh, not remembered
    with store.write() as s:
        s.execute(update(UserRow).where(UserRow.id == kim.id).values(clearance="ZZA-TOP"))
    with store.write_dbapi() as db:
        again = statements.users_by_token(db, [token_digest("kim-1")])
    assert again[token_digest("kim-1")].clearance == "ZZA-TOP"


# -- writing ----------------------------------------------------------------------------------


def test_a_batch_writes_items_as_the_orm_does(store: Store) -> None:
    reader = add_user(store, "kim")
    appender = Appender(store.engine.dialect)
    made = []
    with store.write_dbapi() as db:
        batch = ActBatch(db, hot(store), appender)
        for n, (name, at) in enumerate(INSTANTS.items()):
            made.append(
                batch.add_item(
                    title=name,
                    label=label("missile", "naval", compartments=["ALPHA"] if n % 2 else []),
                    level_rank=n + 1,
                    payload=name.encode(),
                    created_by=reader.id,
                    now=at,
                )
            )
        batch.flush()
    everything = vis(9, {"missile", "naval"}, {"ALPHA"})
    with store.read() as s:
        items = Items(s)
        for item in made:
            assert items.get_with_payload(item.id, everything) == (item, item.title.encode())
            assert items.get(item.id, vis(9, {"missile", "naval"})) == (
                None if item.label["compartments"] else item
            )
            assert items.get(item.id, vis(9, {"missile"})) is None  # "naval" is needed too
        assert {i.id for i in items.search(everything, topic="naval").rows} == {i.id for i in made}


def test_a_batch_records_acts_in_the_register_and_the_ledger(store: Store) -> None:
    user = add_user(store, "kim")
    appender = Appender(store.engine.dialect)
    ledger = Ledger(store)
    size = ledger.size()
    for round_ in range(3):  # the appender's cached peaks carry over between transactions
        with store.write_dbapi() as db:
            batch = ActBatch(db, hot(store), appender)
            for n in range(round_ + 1):
                at = T0 + timedelta(minutes=10 * round_ + n)
                batch.record(
                    item_id=None, user_id=user.id, action="read", at=at, detail=f"{round_}.{n}"
                )
            batch.flush()
    with store.write() as s:  # an append by someone else in between: the cache must miss
        AccessRegister(s).record(item_id=None, user_id=None, action="other", at=T0, detail="x")
    with store.write_dbapi() as db:
        batch = ActBatch(db, hot(store), appender)
        batch.record(item_id=None, user_id=user.id, action="read", at=T0, detail="last")
        batch.flush()
    with store.read() as s:
        rows = AccessRegister(s).list(limit=500).rows
    details = [r.detail for r in rows if r.action in ("read", "other")]
    assert details == ["0.0", "1.0", "1.1", "2.0", "2.1", "2.2", "x", "last"]
    assert ledger.size() == size + 8
    entries = ledger.entries(size, size + 8)
    assert [e.record["detail"] for e in entries] == details
    assert [e.kind for e in entries][-2:] == ["act.other", "act.read"]
    assert ledger.verify().ok


def test_a_naive_instant_is_refused_before_anything_is_queued(store: Store) -> None:
    with store.write_dbapi() as db:
        batch = ActBatch(db, hot(store), Appender(store.engine.dialect))
        with pytest.raises(ValueError, match="naive datetime"):
            batch.record(item_id=None, user_id=None, action="read", at=NAIVE, detail="")
        with pytest.raises(ValueError, match="naive datetime"):
            batch.add_item(
                title="t", label=label("missile"), level_rank=1, payload=b"", created_by=None,
                now=NAIVE,
            )  # fmt: skip
        with pytest.raises(InputError):
            batch.add_item(
                title="t", label=label(), level_rank=1, payload=b"", created_by=None, now=T0
            )
        batch.flush()
    with store.read() as s:
        assert Items(s).count() == 0
        assert AccessRegister(s).list().total == 0


# -- group commit -----------------------------------------------------------------------------


class Recorder:
    """A GroupCommit ``execute`` that writes one node_meta row per job ("fail" raises)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.mark = "?" if store.is_sqlite else "%s"
        self.batches: list[list[str]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()
        self.fail_flush = False

    def __call__(self, db: Any, jobs: Sequence[str]) -> list[Outcome]:
        self.entered.set()
        self.hold.wait(10)
        self.batches.append(list(jobs))
        outcomes: list[Outcome] = []
        rows = []
        for job in jobs:
            if job.startswith("fail"):
                outcomes.append((None, InputError(job)))
                continue
            rows.append((job, "done"))
            outcomes.append((job.upper(), None))
        if rows:
            db.cursor().executemany(
                f"INSERT INTO node_meta (key, value) VALUES ({self.mark}, {self.mark})", rows
            )
        if self.fail_flush and len(jobs) > 1:
            raise RuntimeError("the batch could not be written")
        return outcomes


def stored(store: Store, key: str) -> str | None:
    with store.read() as s:
        return NodeMeta(s).get(key)


def test_a_batch_commits_once_and_isolates_a_failing_job(store: Store) -> None:
    recorder = Recorder(store)
    commits = GroupCommit(store, recorder, idle=0.2)
    recorder.hold.clear()
    first = commits.submit("a")
    assert recorder.entered.wait(10)  # the writer is inside the first batch: the rest queue up
    rest = [commits.submit(job) for job in ("b", "fail-c", "d")]
    recorder.hold.set()
    assert first.result(10) == "A"
    assert [f.result(10) for f in (rest[0], rest[2])] == ["B", "D"]
    with pytest.raises(InputError, match="fail-c"):
        rest[1].result(10)
    assert recorder.batches == [["a"], ["b", "fail-c", "d"]]
    assert [stored(store, k) for k in ("a", "b", "fail-c", "d")] == ["done", "done", None, "done"]


def test_a_result_is_handed_out_only_once_its_batch_committed(store: Store) -> None:
    commits = GroupCommit(store, Recorder(store), idle=0.2)
    seen: list[str | None] = []
    done = threading.Event()

    def check(future: Future[Any]) -> None:
        seen.append(stored(store, "x"))  # from another connection: committed, or not there
        done.set()

    commits.submit("x").add_done_callback(check)
    assert done.wait(10)
    assert seen == ["done"]


def test_a_batch_that_cannot_be_written_is_run_again_job_by_job(store: Store) -> None:
    recorder = Recorder(store)
    recorder.fail_flush = True
    commits = GroupCommit(store, recorder, idle=0.2)
    recorder.hold.clear()
    first = commits.submit("a")
    assert recorder.entered.wait(10)
    rest = [commits.submit(job) for job in ("b", "fail-c", "d")]
    recorder.hold.set()
    assert first.result(10) == "A"
    assert [rest[0].result(10), rest[2].result(10)] == ["B", "D"]
    with pytest.raises(InputError):
        rest[1].result(10)
    assert recorder.batches == [["a"], ["b", "fail-c", "d"], ["b"], ["fail-c"], ["d"]]
    assert [stored(store, k) for k in ("b", "fail-c", "d")] == ["done", None, "done"]


def test_when_the_commit_itself_fails_every_job_fails_and_none_is_tried_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder(store)
    commits = GroupCommit(store, recorder, idle=0.2)
    write = store.write_dbapi

    @contextmanager
    def commit_fails() -> Iterator[Any]:
        with write() as db:
            yield db
            if any(len(b) > 1 for b in recorder.batches):
                db.rollback()  # as a commit that did not happen (or cannot be known to have)
                raise RuntimeError("the commit failed")

    monkeypatch.setattr(store, "write_dbapi", commit_fails)
    recorder.hold.clear()
    first = commits.submit("a")
    assert recorder.entered.wait(10)
    rest = [commits.submit(job) for job in ("b", "c")]
    recorder.hold.set()
    assert first.result(10) == "A"
    for future in rest:
        with pytest.raises(RuntimeError, match="the commit failed"):
            future.result(10)
    assert recorder.batches == [["a"], ["b", "c"]]
    assert [stored(store, k) for k in ("a", "b", "c")] == ["done", None, None]


def test_a_cancelled_job_is_not_run_and_run_works_inline(store: Store) -> None:
    recorder = Recorder(store)
    commits = GroupCommit(store, recorder, idle=0.2)
    recorder.hold.clear()
    first = commits.submit("a")
    assert recorder.entered.wait(10)
    cancelled = commits.submit("never")
    assert cancelled.cancel()
    recorder.hold.set()
    assert first.result(10) == "A"
    assert commits.run("inline") == "INLINE"
    with pytest.raises(InputError):
        commits.run("fail-inline")
    assert stored(store, "never") is None
    assert stored(store, "inline") == "done"
    assert ["never"] not in recorder.batches


def test_the_writer_ends_when_idle_and_starts_again_on_demand(store: Store) -> None:
    commits = GroupCommit(store, Recorder(store), idle=0.05)
    assert commits.submit("a").result(10) == "A"
    for _ in range(200):
        if commits._writer is None:
            break
        threading.Event().wait(0.01)
    assert commits._writer is None
    assert commits.submit("b").result(10) == "B"


def test_many_threads_submitting_get_every_result(store: Store) -> None:
    commits = GroupCommit(store, Recorder(store), idle=0.2)
    results: dict[str, Any] = {}

    def work(k: int) -> None:
        for n in range(20):
            key = f"t{k}-{n}"
            results[key] = commits.submit(key).result(10)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {f"t{k}-{n}": f"T{k}-{n}" for k in range(4) for n in range(20)}
    assert all(stored(store, key) == "done" for key in results)
