"""Witnessing peers' checkpoints (issue 6, item 4).

Unit tests of :func:`gsomia.ledger.witness.assess` on in-memory trees and notes, and a slow
three-node test: JPN, KOR and USA witness each other, KOR's log is rewritten in its database
while it is stopped, and JPN's and USA's next witnessing runs detect it (exit 1, an incident, a
``witness.inconsistent`` ledger entry).
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gsomia.cli.main import app as cli_app
from gsomia.core.errors import CheckpointError, InvalidProofError, PeerUnreachableError
from gsomia.crypto.keys import SigningPrivateKey
from gsomia.ledger import merkle
from gsomia.ledger.checkpoint import Checkpoint, NoteVerifier, open_checkpoint
from gsomia.ledger.log import Ledger, NewEntry
from gsomia.ledger.witness import Cosigned, _proof_path, assess, ledger_origin
from gsomia.loader import load_registry
from gsomia.node.cluster import Cluster
from gsomia.store.engine import Store, make_engine

PEER = "KOR"
ORIGIN = ledger_origin(PEER)
PEER_KEY = SigningPrivateKey.generate()
LOG_KEY = NoteVerifier(ORIGIN, PEER_KEY.public_key)
WITNESS = ledger_origin("JPN")
WITNESS_KEY = SigningPrivateKey.generate()


# -- in-memory trees ------------------------------------------------------------------------------


class Tree:
    def __init__(self, tag: str, size: int) -> None:
        self.hashes = [merkle.leaf_hash(f"{tag}-{i}".encode()) for i in range(size)]

    def root(self, size: int) -> bytes:
        return merkle.root_from_leaf_hashes(self.hashes[:size])

    def note(self, size: int, key: SigningPrivateKey = PEER_KEY, origin: str = ORIGIN) -> str:
        return Checkpoint(origin, size, self.root(size)).sign(origin, key).to_text()

    def proof(self, old: int, new: int) -> list[bytes]:
        return merkle.consistency_proof(
            old, new, lambda a, b: merkle.root_from_leaf_hashes(self.hashes[a:b])
        )


def cosigned(tree: Tree, size: int) -> Cosigned:
    return Cosigned(PEER, size, tree.root(size), tree.note(size), "2026-01-01T00:00:00+00:00")


class Fetcher:
    def __init__(self, tree: Tree | None) -> None:
        self.tree = tree
        self.calls: list[tuple[int, int]] = []

    def __call__(self, old: int, new: int) -> Sequence[bytes]:
        self.calls.append((old, new))
        if self.tree is None:
            raise InvalidProofError("no consistency proof from the peer")
        return self.tree.proof(old, new)


HONEST = Tree("a", 40)
REWRITTEN = Tree("b", 40)  # same sizes, another history


def test_first_checkpoint_is_cosigned_without_a_proof() -> None:
    fetch = Fetcher(HONEST)
    verdict = assess(HONEST.note(7), LOG_KEY, None, fetch)
    assert verdict.consistent and fetch.calls == []
    assert verdict.checkpoint.checkpoint.size == 7


@pytest.mark.parametrize(("old", "new"), [(1, 2), (5, 13), (8, 16), (7, 40), (13, 14)])
def test_an_extension_is_consistent_after_a_verified_proof(old: int, new: int) -> None:
    fetch = Fetcher(HONEST)
    verdict = assess(HONEST.note(new), LOG_KEY, cosigned(HONEST, old), fetch)
    assert verdict.consistent, verdict.detail
    assert fetch.calls == [(old, new)]


def test_the_same_checkpoint_again_is_consistent_without_a_proof() -> None:
    fetch = Fetcher(None)
    verdict = assess(HONEST.note(9), LOG_KEY, cosigned(HONEST, 9), fetch)
    assert verdict.consistent and fetch.calls == []


def test_two_roots_for_one_size_is_a_split_view() -> None:
    verdict = assess(REWRITTEN.note(9), LOG_KEY, cosigned(HONEST, 9), Fetcher(REWRITTEN))
    assert not verdict.consistent
    assert "two different roots" in verdict.detail


def test_a_smaller_checkpoint_is_a_rollback() -> None:
    verdict = assess(HONEST.note(5), LOG_KEY, cosigned(HONEST, 9), Fetcher(HONEST))
    assert not verdict.consistent
    assert "shrank" in verdict.detail


@pytest.mark.parametrize(("old", "new"), [(1, 2), (5, 13), (8, 16), (9, 40)])
def test_a_rewritten_history_fails_its_consistency_proof(old: int, new: int) -> None:
    # The peer proves from its rewritten tree: the proof cannot give the cosigned old root.
    verdict = assess(REWRITTEN.note(new), LOG_KEY, cosigned(HONEST, old), Fetcher(REWRITTEN))
    assert not verdict.consistent
    assert f"does not extend the cosigned size {old}" in verdict.detail


def test_a_peer_that_gives_no_proof_is_not_cosigned() -> None:
    verdict = assess(HONEST.note(13), LOG_KEY, cosigned(HONEST, 5), Fetcher(None))
    assert not verdict.consistent


def test_a_transport_failure_is_not_evidence() -> None:
    def unreachable(old: int, new: int) -> list[bytes]:
        raise PeerUnreachableError("connection refused")

    with pytest.raises(PeerUnreachableError):
        assess(HONEST.note(13), LOG_KEY, cosigned(HONEST, 5), unreachable)


def test_a_tampered_proof_fails() -> None:
    def bad(old: int, new: int) -> list[bytes]:
        path = HONEST.proof(old, new)
        return [bytes(32), *path[1:]]

    verdict = assess(HONEST.note(13), LOG_KEY, cosigned(HONEST, 5), bad)
    assert not verdict.consistent


def test_a_note_not_signed_by_the_pinned_key_is_an_error_not_evidence() -> None:
    other = SigningPrivateKey.generate()
    with pytest.raises(CheckpointError):
        assess(HONEST.note(9, key=other), LOG_KEY, cosigned(HONEST, 9), Fetcher(HONEST))
    with pytest.raises(CheckpointError):
        assess(HONEST.note(9, origin=ledger_origin("USA")), LOG_KEY, None, Fetcher(HONEST))
    with pytest.raises(CheckpointError):
        assess("not a note", LOG_KEY, None, Fetcher(HONEST))


def test_the_cosignature_verifies_with_the_witness_key() -> None:
    verdict = assess(HONEST.note(13), LOG_KEY, cosigned(HONEST, 5), Fetcher(HONEST))
    note = verdict.checkpoint.note.cosign(WITNESS, WITNESS_KEY).to_text()
    witness = NoteVerifier(WITNESS, WITNESS_KEY.public_key)
    opened = open_checkpoint(note, LOG_KEY, cosigners=[witness], min_cosigners=1)
    assert opened.cosigners == {WITNESS}


def test_cosigned_round_trips() -> None:
    held = cosigned(HONEST, 5)
    assert Cosigned.from_dict(json.loads(json.dumps(held.to_dict()))) == held


def test_proof_answers_are_checked() -> None:
    path = HONEST.proof(5, 13)
    good: dict[str, Any] = {"old_size": 5, "new_size": 13, "path": [merkle_b64(h) for h in path]}
    assert _proof_path(good, 5, 13) == path
    bad_answers: list[Any] = [
        {**good, "old_size": 4},
        {**good, "new_size": 12},
        {**good, "path": "x"},
        [],
        {**good, "path": ["not base64!"]},
    ]
    for bad in bad_answers:
        with pytest.raises(InvalidProofError):
            _proof_path(bad, 5, 13)


def merkle_b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# -- three nodes ----------------------------------------------------------------------------------


def witness(cluster: Cluster, party: str) -> tuple[int, dict[str, dict[str, Any]]]:
    """``gsomia audit witness --json`` at ``party``: its exit code and its results by peer."""
    data = str(cluster.nodes[party].data_dir)
    result = CliRunner().invoke(
        cli_app, ["audit", "witness", "--data", data, "--json"], env={"GSOMIA_KEY_PASSPHRASE": None}
    )
    assert result.exit_code in (0, 1), result.output
    start = result.stdout.index("{")
    body = json.loads(result.stdout[start:])
    return result.exit_code, {r["peer"]: r for r in body["results"]}


def db_rows(cluster: Cluster, party: str, sql: str) -> list[tuple[Any, ...]]:
    path = cluster.nodes[party].data_dir / "node.db"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def rewrite_log(data_dir: Path, at: datetime) -> int:
    """What an insider with the database file could do: a new history, longer than the old."""
    engine = make_engine(f"sqlite:///{data_dir / 'node.db'}")
    try:
        store = Store(engine)
        with store.write() as s:
            raw = s.connection()
            old = raw.exec_driver_sql("SELECT size FROM ledger_head").scalar_one()
            raw.exec_driver_sql("DELETE FROM ledger_entries")
            raw.exec_driver_sql("DELETE FROM ledger_checkpoints")
            raw.exec_driver_sql(
                "UPDATE ledger_head SET size = 0, root_hash = ?",
                (merkle.root_from_leaf_hashes([]),),
            )
        entries = [NewEntry("registry-change", {"forged": i}, at) for i in range(int(old) + 3)]
        Ledger(store).append_many(entries)
        return len(entries)
    finally:
        engine.dispose()


@pytest.mark.slow
def test_three_nodes_witness_each_other_and_catch_a_rewritten_log(cluster: Cluster) -> None:
    parties = ("JPN", "KOR", "USA")
    # Two rounds: the first cosigns each peer's first checkpoint, the second needs a
    # consistency proof from it (each log grew by the witness.cosigned entries of round one).
    for round_ in (1, 2):
        for party in parties:
            code, results = witness(cluster, party)
            assert code == 0, results
            assert set(results) == set(parties) - {party}
            for peer, r in results.items():
                assert r["status"] == "cosigned", (party, peer, r)
                if round_ == 2:
                    assert r["previous_size"] is not None and r["size"] > 0
    with cluster.nodes["JPN"].client() as client:
        held = client.get("/api/v1/ledger/cosignatures").json()["items"]
        assert {c["peer"] for c in held} == {"KOR", "USA"}
        kor = next(c for c in held if c["peer"] == "KOR")
        assert ledger_origin("JPN") in kor["note"]
        latest = client.get("/api/v1/ledger/checkpoint").json()
        assert latest["checkpoint"] is not None
        proof = client.get("/api/v1/ledger/proofs/consistency", params={"old": 1}).json()
        assert proof["old_size"] == 1 and proof["new_size"] == latest["log_size"]
        inclusion = client.get("/api/v1/ledger/proofs/inclusion/0").json()
        assert inclusion["index"] == 0
    with cluster.nodes["KOR"].client() as client:
        # the peers-only endpoint refuses an unsigned request, even with a bearer token
        assert client.get("/federation/v1/checkpoint").status_code == 401
    cosigned_kor = json.loads(
        db_rows(
            cluster, "JPN", "SELECT value FROM node_meta WHERE key = 'ledger.witness.cosigned'"
        )[0][0]
    )["KOR"]

    cluster.stop(["KOR"])
    size = rewrite_log(cluster.nodes["KOR"].data_dir, datetime.now(UTC))
    assert size > cosigned_kor["size"]
    cluster.start(["KOR"])

    for party in ("JPN", "USA"):
        code, results = witness(cluster, party)
        assert code == 1, results
        assert results["KOR"]["status"] == "inconsistent", results
        assert results["KOR"]["incident_id"]
        assert "does not extend the cosigned size" in results["KOR"]["detail"]
        others = [p for p in results if p != "KOR"]
        assert all(results[p]["status"] == "cosigned" for p in others), results
        incidents = db_rows(
            cluster, party, "SELECT reporter, originator, kind, description FROM incidents"
        )
        assert [(r[0], r[1], r[2]) for r in incidents] == [("KOR", party, "compromise")]
        kinds = [r[0] for r in db_rows(cluster, party, "SELECT kind FROM ledger_entries")]
        assert kinds.count("witness.inconsistent") == 1
    # Seen again: reported again (exit 1), recorded once.
    first = db_rows(cluster, "JPN", "SELECT id FROM incidents")
    code, results = witness(cluster, "JPN")
    assert code == 1 and results["KOR"]["status"] == "inconsistent"
    assert (
        [(results["KOR"]["incident_id"],)]
        == first
        == db_rows(cluster, "JPN", "SELECT id FROM incidents")
    )
    # The rewritten node still cosigns honest peers; KOR's own verdicts are not evidence.
    code, results = witness(cluster, "KOR")
    assert code == 0, results


# -- the peers' endpoints, in process -------------------------------------------------------------


def test_peer_endpoints_need_a_signed_fresh_request(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from gsomia.api.app import create_app
    from gsomia.crypto.httpsig import sign_request
    from gsomia.node.config import init_node, load_config, load_signing_key
    from gsomia.node.federation import Federation
    from gsomia.node.service import open_node

    registry = load_registry()
    at = datetime.now(UTC)
    config = init_node(tmp_path / "jpn", "JPN", registry, None, now=at)
    node = open_node(party="JPN", registry=registry, database_url=config.database_url)
    fed = Federation.keyed_by(node, config)
    kor = init_node(tmp_path / "kor", "KOR", registry, None, now=at)
    kor_key = load_signing_key(load_config(tmp_path / "kor"), None)
    fed.add_peer(
        "KOR",
        "http://kor.invalid",
        signing_key=kor.signing_public_key.to_text(),
        encryption_key=kor.encryption_public_key.to_text(),
        actor=None,
    )
    jpn_log = NoteVerifier(ledger_origin("JPN"), config.signing_public_key)
    try:
        with TestClient(create_app(node, fed, deliver=False)) as client:

            def signed(path: str, **params: Any) -> Any:
                request = client.build_request("GET", path, params=params or None)
                sign_request(request, b"", party="KOR", key=kor_key)
                return request

            assert client.get("/federation/v1/checkpoint").status_code == 401
            request = signed("/federation/v1/checkpoint")
            first = client.send(request)
            assert first.status_code == 200, first.text
            opened = open_checkpoint(first.text, jpn_log).checkpoint
            assert (opened.size, opened.root_hash) == Ledger(node.store).head()
            assert client.send(request).status_code == 409  # a replay
            # Unchanged log: the same note. A grown log: a fresh checkpoint of it.
            assert client.send(signed("/federation/v1/checkpoint")).text == first.text
            Ledger(node.store).append("registry-change", {"test": 1}, at)
            grown = open_checkpoint(
                client.send(signed("/federation/v1/checkpoint")).text, jpn_log
            ).checkpoint
            assert grown.size == opened.size + 1
            proof = client.send(
                signed("/federation/v1/consistency", old=opened.size, new=grown.size)
            ).json()
            path = _proof_path(proof, opened.size, grown.size)
            merkle.verify_consistency(
                opened.size, grown.size, opened.root_hash, grown.root_hash, path
            )
            # A key that is not pinned is refused.
            stranger = client.build_request("GET", "/federation/v1/checkpoint")
            sign_request(stranger, b"", party="USA", key=SigningPrivateKey.generate())
            assert client.send(stranger).status_code == 401
    finally:
        node.store.dispose()
