"""The persistent log on every engine: appends, roots, proofs against signed checkpoints, verify."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsomia.core.errors import (
    InvalidInstantError,
    InvalidRecordError,
    LedgerInconsistentError,
    LedgerRangeError,
)
from gsomia.core.jcs import canonical_json
from gsomia.crypto.keys import SigningPrivateKey
from gsomia.ledger import merkle
from gsomia.ledger.checkpoint import NoteVerifier, open_checkpoint
from gsomia.ledger.log import Ledger, NewEntry, append_entries, leaf_data
from gsomia.store.engine import Store

from .conftest import ORIGIN, T0


def entries(n: int, start: int = 0, kind: str = "decision") -> list[NewEntry]:
    return [
        NewEntry(kind, {"n": i, "party": "JPN", "allowed": i % 3 == 0}, T0 + timedelta(seconds=i))
        for i in range(start, start + n)
    ]


def pure_root(ledger: Ledger, size: int) -> bytes:
    """The root recomputed from the entries alone, by the pure functions."""
    if size == 0:
        return merkle.EMPTY_ROOT
    return merkle.root_from_leaf_hashes(e.leaf_hash for e in ledger.entries(0, size))


def test_appends_return_their_indices_and_move_the_head(store: Store) -> None:
    ledger = Ledger(store)
    assert ledger.head() == (0, merkle.EMPTY_ROOT)
    assert ledger.append("decision", {"n": 0}, T0) == 0
    assert ledger.append_many(entries(5, 1)) == range(1, 6)
    assert ledger.append_many([]) == range(6, 6)
    assert ledger.size() == 6
    assert ledger.head() == (6, pure_root(ledger, 6))


def test_an_entry_keeps_its_canonical_record_digest_kind_and_instant(store: Store) -> None:
    ledger = Ledger(store)
    seoul = timezone(timedelta(hours=9))
    at = datetime(2019, 11, 23, 0, 0, 0, 123456, tzinfo=seoul)
    record = {"z": [1, 2.5, None], "a": "機密", "m": {"b": True, "a": False}}
    index = ledger.append("share.sent", record, at)
    entry = ledger.entry(index)
    assert entry.kind == "share.sent"
    assert entry.at == at and entry.at.tzinfo == UTC
    assert entry.record_json == canonical_json(record)
    assert entry.record == record
    assert entry.digest == hashlib.sha256(entry.record_json.encode()).digest()
    assert entry.record_matches()
    assert leaf_data(entry.kind, entry.at, entry.digest) == (
        b"gsomia-ledger-entry/1\nshare.sent\n2019-11-22T15:00:00.123456Z\n"
        + entry.digest.hex().encode()
        + b"\n"
    )


def test_roots_match_the_pure_tree_for_every_size(store: Store) -> None:
    ledger = Ledger(store)
    for batch in (1, 2, 5, 1, 13, 8, 3):  # uneven batches: peaks carried across appends
        ledger.append_many(entries(batch, ledger.size()))
    size = ledger.size()
    leaves = [e.leaf_hash for e in ledger.entries(0, size)]
    for n in range(size + 1):
        assert ledger.root(n) == merkle.root_from_leaf_hashes(leaves[:n])


def test_every_inclusion_proof_verifies_against_its_signed_checkpoint(
    store: Store, log_key: SigningPrivateKey, log_verifier: NoteVerifier
) -> None:
    ledger = Ledger(store)
    signed = []
    for batch in (1, 1, 3, 6, 11, 10):
        ledger.append_many(entries(batch, ledger.size()))
        signed.append(ledger.checkpoint(log_key, ORIGIN, T0))
    for stored in signed:
        checkpoint = open_checkpoint(stored.note, log_verifier, origin=ORIGIN).checkpoint
        for index in range(checkpoint.size):
            proof = ledger.inclusion_proof(index, checkpoint.size)
            assert proof.leaf_hash == ledger.entry(index).leaf_hash
            proof.verify(checkpoint.root_hash)


def test_every_consistency_proof_verifies(store: Store) -> None:
    ledger = Ledger(store)
    ledger.append_many(entries(21))
    roots = [ledger.root(n) for n in range(22)]
    for new in range(22):
        for old in range(new + 1):
            ledger.consistency_proof(old, new).verify(roots[old], roots[new])


def test_proof_ranges_are_checked(store: Store) -> None:
    ledger = Ledger(store)
    ledger.append_many(entries(4))
    with pytest.raises(LedgerRangeError):
        ledger.inclusion_proof(4)
    with pytest.raises(LedgerRangeError):
        ledger.inclusion_proof(0, 5)
    with pytest.raises(LedgerRangeError):
        ledger.consistency_proof(3, 2)
    with pytest.raises(LedgerRangeError):
        ledger.root(5)
    with pytest.raises(LedgerRangeError):
        ledger.entry(4)


@pytest.mark.parametrize(
    ("kind", "record", "at", "error"),
    [
        ("Decision", {}, T0, InvalidRecordError),
        ("decision!", {}, T0, InvalidRecordError),
        ("", {}, T0, InvalidRecordError),
        ("decision", ["not", "an", "object"], T0, InvalidRecordError),
        ("decision", {"x": float("nan")}, T0, InvalidRecordError),
        ("decision", {"x": 2**60}, T0, InvalidRecordError),
        ("decision", {"x": b"bytes"}, T0, InvalidRecordError),
        ("decision", {}, datetime(2019, 11, 22, 18, 0), InvalidInstantError),
    ],
)
def test_bad_entries_are_refused_and_nothing_is_written(
    store: Store, kind: str, record: object, at: datetime, error: type[Exception]
) -> None:
    ledger = Ledger(store)
    ledger.append("decision", {"n": 0}, T0)
    with pytest.raises(error):
        ledger.append_many([*entries(3, 1), NewEntry(kind, record, at)])  # type: ignore[arg-type]
    assert ledger.size() == 1
    assert ledger.verify().ok


def act_that_fails(store: Store, new: list[NewEntry]) -> None:
    with store.write() as session:
        assert append_entries(session, new) == range(new[0].record["n"], new[-1].record["n"] + 1)
        raise RuntimeError("the act failed: its entries must go with it")


def test_entries_join_the_callers_transaction(store: Store) -> None:
    ledger = Ledger(store)
    ledger.append_many(entries(3))
    with pytest.raises(RuntimeError, match="act failed"):
        act_that_fails(store, entries(2, 3))
    assert ledger.size() == 3
    with store.write() as session:
        assert append_entries(session, entries(2, 3, kind="retraction")) == range(3, 5)
    assert ledger.entry(4).kind == "retraction"
    assert ledger.verify().ok


def test_two_writers_never_share_stale_peaks(store: Store) -> None:
    # Each Ledger caches its peaks by (size, root): another writer's appends, or a rolled-back
    # transaction, change the head, and the cache is dropped rather than trusted.
    a, b = Ledger(store), Ledger(store)
    a.append_many(entries(5))
    b.append_many(entries(3, 5, kind="share"))
    a.append_many(entries(4, 8))
    with pytest.raises(RuntimeError, match="act failed"):
        act_that_fails(store, entries(6, 12))
    b.append_many(entries(6, 12, kind="receipt"))
    a.append("incident", {"n": 18}, T0)
    assert a.size() == 19
    assert a.head()[1] == pure_root(a, 19)
    assert a.verify().ok


def test_concurrent_appends_are_serialised(store: Store) -> None:
    ledger = Ledger(store)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            own = Ledger(store)
            for i in range(15):
                own.append("decision", {"worker": worker, "i": i}, T0)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert ledger.size() == 60
    assert ledger.verify().ok
    seen = {(e.record["worker"], e.record["i"]) for e in ledger.entries(0, 60)}
    assert len(seen) == 60


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=6))
def test_batching_does_not_change_the_log(store: Store, batches: list[int]) -> None:
    ledger = Ledger(store)
    start = ledger.size()
    total = sum(batches)
    for n in batches:
        ledger.append_many(entries(n, ledger.size()))
    size = ledger.size()
    assert size == start + total
    assert ledger.root() == pure_root(ledger, size)
    # the same entries in one batch give the same root as a fresh log would
    assert (
        merkle.root_from_leaf_hashes(
            merkle.leaf_hash(
                leaf_data(e.kind, e.at, hashlib.sha256(canonical_json(e.record).encode()).digest())
            )
            for e in entries(size)
        )
        == ledger.root()
    )


def test_checkpoints_are_kept_signed_and_listed(
    store: Store, log_key: SigningPrivateKey, log_verifier: NoteVerifier
) -> None:
    ledger = Ledger(store)
    assert ledger.latest_checkpoint() is None
    first = ledger.checkpoint(log_key, ORIGIN, T0)
    ledger.append_many(entries(7))
    second = ledger.checkpoint(log_key, ORIGIN, T0 + timedelta(hours=1))
    assert [c.size for c in ledger.checkpoints()] == [0, 7]
    assert ledger.latest_checkpoint() == second
    assert first.root_hash == merkle.EMPTY_ROOT
    opened = open_checkpoint(second.note, log_verifier, origin=ORIGIN)
    assert (opened.checkpoint.size, opened.checkpoint.root_hash) == (7, ledger.root())
    assert second.created_at == T0 + timedelta(hours=1)


def test_a_checkpoint_is_refused_when_the_log_does_not_extend_the_last_one(
    store: Store, log_key: SigningPrivateKey
) -> None:
    ledger = Ledger(store)
    ledger.append_many(entries(4))
    previous = ledger.checkpoint(log_key, ORIGIN, T0)
    ledger.append_many(entries(2, 4))
    ledger.checkpoint(log_key, ORIGIN, T0, after=_checkpoint_of(previous))
    forged = _checkpoint_of(previous, size=9)
    with pytest.raises(LedgerInconsistentError, match="ahead of the log"):
        ledger.checkpoint(log_key, ORIGIN, T0, after=forged)
    rewritten = _checkpoint_of(previous, root=bytes(32))
    with pytest.raises(LedgerInconsistentError, match="does not extend"):
        ledger.checkpoint(log_key, ORIGIN, T0, after=rewritten)


def _checkpoint_of(stored: object, *, size: int | None = None, root: bytes | None = None) -> object:
    from gsomia.ledger.checkpoint import Checkpoint

    assert hasattr(stored, "origin")
    return Checkpoint(
        stored.origin,  # type: ignore[attr-defined]
        stored.size if size is None else size,  # type: ignore[attr-defined]
        stored.root_hash if root is None else root,  # type: ignore[attr-defined]
    )


def test_verify_on_a_clean_log_reports_what_it_checked(
    store: Store, log_key: SigningPrivateKey, log_verifier: NoteVerifier
) -> None:
    ledger = Ledger(store)
    ledger.append_many(entries(50))
    ledger.checkpoint(log_key, ORIGIN, T0)
    ledger.append_many(entries(9, 50))
    ledger.checkpoint(log_key, ORIGIN, T0)
    seen: list[tuple[int, int]] = []
    report = ledger.verify(log_verifier, progress=lambda done, total: seen.append((done, total)))
    assert report.ok, report.problems
    assert (report.size, report.entries_checked, report.checkpoints_checked) == (59, 59, 2)
    assert report.root_hash == ledger.root()
    assert seen[-1] == (59, 59)
    assert json.loads(json.dumps(report.to_dict()))["ok"] is True
    report.raise_for_problems()


def test_a_checkpoint_signed_by_another_key_is_reported(
    store: Store, log_verifier: NoteVerifier
) -> None:
    ledger = Ledger(store)
    ledger.append_many(entries(3))
    ledger.checkpoint(SigningPrivateKey.generate(), ORIGIN, T0)
    report = ledger.verify(log_verifier)
    assert [(p.check, p.table, p.row) for p in report.problems] == [
        ("checkpoint-signature", "ledger_checkpoints", "id=1")
    ]
    with pytest.raises(LedgerInconsistentError, match=r"ledger_checkpoints \[id=1\]"):
        report.raise_for_problems()
