"""SQLite's write discipline: WAL, foreign keys, FULL sync, BEGIN IMMEDIATE, one writer."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError
from tests.databases import sqlite_engine

from gsomia.store import schema
from gsomia.store.engine import Store
from gsomia.store.records import Role
from gsomia.store.repositories import NodeMeta, Users

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "node.db"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with sqlite_engine(tmp_path) as engine:
        schema.upgrade(engine)
        yield Store(engine)


def pragma(store: Store, name: str) -> Any:
    with store.read() as s:
        return s.execute(text(f"PRAGMA {name}")).scalar_one()


def test_journal_mode_is_wal(store: Store, db_path: Path) -> None:
    assert pragma(store, "journal_mode") == "wal"
    raw = sqlite3.connect(db_path)  # WAL is a property of the file, not only of our connections
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        raw.close()


def test_foreign_keys_are_enforced(store: Store) -> None:
    assert pragma(store, "foreign_keys") == 1
    with pytest.raises(IntegrityError, match="FOREIGN KEY"), store.write() as s:
        Users(s).add_token("no-such-user", "t", T0)


def test_synchronous_is_full(store: Store) -> None:
    assert pragma(store, "synchronous") == 2  # FULL


def test_writes_begin_immediate_and_reads_do_not(store: Store) -> None:
    seen: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.strip().upper())

    event.listen(store.engine, "before_cursor_execute", listen)
    try:
        with store.write() as s:
            NodeMeta(s).set("party", "ZZA")
        writes, seen[:] = list(seen), []
        with store.read() as s:
            assert NodeMeta(s).get("party") == "ZZA"
        reads = list(seen)
    finally:
        event.remove(store.engine, "before_cursor_execute", listen)
    assert writes[0] == "BEGIN IMMEDIATE"  # before any statement of the transaction
    assert writes.count("BEGIN IMMEDIATE") == 1
    assert reads[0] == "BEGIN" and "BEGIN IMMEDIATE" not in reads


def test_a_write_holds_the_database_write_lock_from_its_start(store: Store, db_path: Path) -> None:
    """Inside ``write()``, before any statement of ours, another writer is already shut out."""
    other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    try:
        with store.write():
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            # readers are not blocked under WAL
            assert other.execute("SELECT count(*) FROM users").fetchone() == (0,)
        other.execute("BEGIN IMMEDIATE")  # released once the write ends
        other.execute("ROLLBACK")
    finally:
        other.close()


ROUNDS = 30


@pytest.mark.parametrize("stores", [1, 2], ids=["one-store", "two-stores"])
def test_concurrent_writers_lose_nothing(store: Store, tmp_path: Path, stores: int) -> None:
    """Two threads do read-modify-write increments at once; every one of them counts.

    With two ``Store`` objects over the same file the in-process lock is not shared, so only
    SQLite's own lock (taken up front by BEGIN IMMEDIATE) keeps the writers apart.
    """
    with store.write() as s:
        NodeMeta(s).set("counter", "0")
    with sqlite_engine(tmp_path) as second_engine:
        writers = [store, Store(second_engine) if stores == 2 else store]
        barrier = threading.Barrier(len(writers), timeout=30)
        errors: list[BaseException] = []

        def work(n: int, writer: Store) -> None:
            try:
                barrier.wait()
                for k in range(ROUNDS):
                    with writer.write() as s:
                        meta = NodeMeta(s)
                        meta.set("counter", str(int(meta.get("counter") or "0") + 1))
                        Users(s).add(
                            name=f"w{n}-{k}",
                            roles=[Role.OFFICER],
                            clearance=None,
                            need_to_know=[],
                            compartments=[],
                            token=f"t{n}-{k}",
                            now=T0,
                        )
            except BaseException as e:  # reported below, in the test's thread
                errors.append(e)

        threads = [
            threading.Thread(target=work, args=(n, w), daemon=True) for n, w in enumerate(writers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "a writer is stuck"
        assert errors == []
    with store.read() as s:
        assert NodeMeta(s).get("counter") == str(2 * ROUNDS)
        assert Users(s).list(limit=500).total == 2 * ROUNDS
