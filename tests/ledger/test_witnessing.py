"""Witnessing, continued (issue 6): cosignatures sent back and verified, witnesses comparing
notes (split views), and witnessing on a schedule.

Most tests run three nodes in this process: each node's application in a ``TestClient``, and
each node's outgoing requests routed by host name (``http://kor.invalid`` ...) to the others'
applications, so that a node can be shown one history while another node is shown another (two
KOR databases with KOR's keys). One slow test does the same with ``gsomia node serve`` processes.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from gsomia.api.app import create_app
from gsomia.cli.main import app as cli_app
from gsomia.core.errors import InvalidProofError, NodeConfigError
from gsomia.crypto.httpsig import sign_request
from gsomia.crypto.keys import SigningPrivateKey
from gsomia.ledger import merkle
from gsomia.ledger.checkpoint import Checkpoint, NoteSignature, SignedNote
from gsomia.ledger.log import Ledger, NewEntry
from gsomia.ledger.schedule import WitnessSchedule
from gsomia.ledger.witness import (
    COSIGNATURES_PATH,
    WitnessResult,
    cross_check,
    ledger_origin,
    witness_peers,
)
from gsomia.loader import load_registry
from gsomia.node.cluster import Cluster
from gsomia.node.config import (
    NodeConfig,
    init_node,
    load_config,
)
from gsomia.node.federation import Federation
from gsomia.node.service import Node, open_node

from .test_witness import db_rows, rewrite_log, witness

PARTIES = ("JPN", "KOR", "USA")
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
REGISTRY = load_registry()


def host(party: str) -> str:
    return f"{party.lower()}.invalid"


# -- three nodes in this process --------------------------------------------------------------


class Router(httpx.BaseTransport):
    """One node's view of the network: a host name to the application that answers it."""

    def __init__(self, routes: dict[str, TestClient]) -> None:
        self.routes = routes

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        app = self.routes.get(request.url.host)
        if app is None:
            raise httpx.ConnectError(f"no route to {request.url.host}", request=request)
        answer = app.send(request)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


@dataclass
class Member:
    party: str
    config: NodeConfig
    node: Node
    fed: Federation
    app: TestClient
    token: str
    routes: dict[str, TestClient] = field(default_factory=dict)

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.node.store)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=Router(self.routes))

    def witness(self, *parties: str) -> dict[str, WitnessResult]:
        with self.client() as client:
            results = witness_peers(self.fed, client=client, parties=list(parties) or None)
        return {r.peer: r for r in results}

    def grow(self, n: int, tag: str) -> None:
        self.ledger.append_many(NewEntry("decision", {"tag": tag, "n": i}, T0) for i in range(n))

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        connection = sqlite3.connect(self.config.data_dir / "node.db")
        try:
            rows = connection.execute(statement, params).fetchall()
            connection.commit()
            return rows
        finally:
            connection.close()


class Trio:
    """JPN, KOR and USA, each pinning the others; with ``twin``, a second KOR database (same
    keys, same start) that USA reaches instead of the first: KOR can show two histories."""

    def __init__(self, root: Path, *, twin: bool = False) -> None:
        self.members: dict[str, Member] = {}
        dirs = {p: root / p.lower() for p in PARTIES}
        configs = {p: init_node(d, p, REGISTRY, None, now=T0) for p, d in dirs.items()}
        for party, config in configs.items():
            node, fed = self._open(config)
            for other, theirs in configs.items():
                if other != party:
                    fed.add_peer(
                        other,
                        f"http://{host(other)}",
                        signing_key=theirs.signing_public_key.to_text(),
                        encryption_key=theirs.encryption_public_key.to_text(),
                        actor=None,
                    )
            node.store.dispose()
        if twin:
            shutil.copytree(dirs["KOR"], root / "kor-twin")
        for party, config in configs.items():
            self.members[party] = self._member(config)
        self.twin = self._member(load_config(root / "kor-twin")) if twin else None
        for party, member in self.members.items():
            member.routes.update({host(p): m.app for p, m in self.members.items()})
            if self.twin is not None and party == "USA":
                member.routes[host("KOR")] = self.twin.app

    @staticmethod
    def _open(config: NodeConfig) -> tuple[Node, Federation]:
        node = open_node(party=config.party, registry=REGISTRY, database_url=config.database_url)
        fed = Federation.keyed_by(node, config)
        return node, fed

    def _member(self, config: NodeConfig) -> Member:
        node, fed = self._open(config)
        _, token = node.add_user(name=f"auditor-{len(self.members)}", roles=["auditor"])
        app = TestClient(create_app(node, fed, deliver=False))
        app.__enter__()
        return Member(config.party, config, node, fed, app, token)

    def __getitem__(self, party: str) -> Member:
        return self.members[party]

    def close(self) -> None:
        for member in [*self.members.values(), *([self.twin] if self.twin else [])]:
            member.app.__exit__(None, None, None)
            member.node.store.dispose()


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[Trio]:
    made = Trio(tmp_path)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def split(tmp_path: Path) -> Iterator[Trio]:
    made = Trio(tmp_path, twin=True)
    try:
        yield made
    finally:
        made.close()


def verify(member: Member) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(
        cli_app,
        ["audit", "verify", "--data", str(member.config.data_dir), "--json"],
        env={"GSOMIA_KEY_PASSPHRASE": None},
    )
    return result.exit_code, json.loads(result.stdout)


def incidents(member: Member) -> list[tuple[Any, ...]]:
    return member.sql("SELECT reporter, originator, kind, description FROM incidents")


def entries(member: Member, kind: str) -> list[dict[str, Any]]:
    return [
        json.loads(r[0])
        for r in member.sql("SELECT record FROM ledger_entries WHERE kind = ?", kind)
    ]


# -- cosignatures go back to the logging node -------------------------------------------------


def test_witnesses_send_their_cosignatures_back_and_the_node_keeps_them(trio: Trio) -> None:
    kor = trio["KOR"]
    for party in ("JPN", "USA"):
        results = trio[party].witness("KOR")
        assert results["KOR"].status == "cosigned", results
        assert results["KOR"].cosignature_sent is True
    kept = kor.ledger.cosignatures()
    assert sorted(c.witness for c in kept) == ["JPN", "USA"]
    size, root = kor.ledger.head()
    for c in kept:
        note = SignedNote.parse(c.note)
        # the node's signature, then the witness's: nothing else
        assert [s.name for s in note.signatures] == [ledger_origin("KOR"), ledger_origin(c.witness)]
        assert (c.size, c.root_hash) == (size, root)
    # The same checkpoint cosigned again is not kept twice.
    assert trio["JPN"].witness("KOR")["KOR"].cosignature_sent is True
    assert len(kor.ledger.cosignatures()) == 2
    # KOR grew: the next cosignature is another row.
    kor.grow(3, "more")
    assert trio["JPN"].witness("KOR")["KOR"].size == kor.ledger.size()
    assert [c.witness for c in kor.ledger.cosignatures(witness="JPN")] == ["JPN", "JPN"]
    newest, older = kor.ledger.cosignatures(witness="JPN")
    assert (newest.size, older.size) == (kor.ledger.size(), size)
    assert older.root_hash == root

    # Users list them (paginated); peers fetch them with a signed request.
    headers = {"Authorization": f"Bearer {kor.token}"}
    page = kor.app.get("/api/v1/ledger/cosignatures/received", headers=headers, params={"limit": 2})
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["total"] == 3 and len(body["items"]) == 2 and body["next_cursor"]
    rest = kor.app.get(
        "/api/v1/ledger/cosignatures/received",
        headers=headers,
        params={"limit": 2, "cursor": body["next_cursor"]},
    ).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    ids = [i["id"] for i in body["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 3
    assert kor.app.get("/api/v1/ledger/cosignatures/received").status_code == 401
    request = kor.app.build_request("GET", COSIGNATURES_PATH, params={"witness": "USA"})
    sign_request(request, b"", party="USA", key=trio["USA"].fed.signing_key)
    fetched = kor.app.send(request)
    assert fetched.status_code == 200, fetched.text
    assert [i["witness"] for i in fetched.json()["items"]] == ["USA"]
    assert kor.app.get(COSIGNATURES_PATH).status_code == 401


def post_cosignature(
    kor: Member, note: str, *, party: str, key: SigningPrivateKey
) -> httpx.Response:
    body = note.encode()
    request = kor.app.build_request("POST", COSIGNATURES_PATH, content=body)
    sign_request(request, body, party=party, key=key)
    response: httpx.Response = kor.app.send(request)
    return response


def test_a_cosignature_is_kept_only_from_its_witness_over_a_checkpoint_the_node_signed(
    trio: Trio,
) -> None:
    kor, jpn, usa = trio["KOR"], trio["JPN"], trio["USA"]
    stored = kor.ledger.checkpoint(kor.fed.signing_key, ledger_origin("KOR"), T0)
    signed = SignedNote.parse(stored.note)
    by_jpn = signed.cosign(ledger_origin("JPN"), jpn.fed.signing_key).to_text()
    by_usa = signed.cosign(ledger_origin("USA"), usa.fed.signing_key).to_text()
    # unsigned request
    assert kor.app.post(COSIGNATURES_PATH, content=by_jpn.encode()).status_code == 401
    # JPN sends USA's cosignature: not JPN's
    refused = post_cosignature(kor, by_usa, party="JPN", key=jpn.fed.signing_key)
    assert refused.status_code == 409 and refused.json()["code"] == "invalid-checkpoint"
    # a cosignature by a key that is not the one pinned for JPN
    forged = signed.cosign(ledger_origin("JPN"), SigningPrivateKey.generate()).to_text()
    refused = post_cosignature(kor, forged, party="JPN", key=jpn.fed.signing_key)
    assert refused.status_code == 409, refused.text
    # a note KOR's key signed but that KOR never kept as a checkpoint
    size, _ = kor.ledger.head()
    other = Checkpoint(ledger_origin("KOR"), size, bytes(32)).sign(
        ledger_origin("KOR"), kor.fed.signing_key
    )
    stray = other.cosign(ledger_origin("JPN"), jpn.fed.signing_key).to_text()
    refused = post_cosignature(kor, stray, party="JPN", key=jpn.fed.signing_key)
    assert refused.status_code == 409 and "did not sign" in refused.json()["detail"]
    assert kor.ledger.cosignatures() == []
    # the real thing, and its replay
    body = by_jpn.encode()
    request = kor.app.build_request("POST", COSIGNATURES_PATH, content=body)
    sign_request(request, body, party="JPN", key=jpn.fed.signing_key)
    accepted = kor.app.send(request)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["new"] is True and accepted.json()["size"] == stored.size
    assert kor.app.send(request).status_code == 409  # replayed
    again = post_cosignature(kor, by_jpn, party="JPN", key=jpn.fed.signing_key)
    assert again.status_code == 200 and again.json()["new"] is False
    assert [c.witness for c in kor.ledger.cosignatures()] == ["JPN"]


# -- audit verify checks the peers' cosignatures ------------------------------------------------


def flip_signature(note: str, name: str) -> str:
    """``note`` with one bit of ``name``'s signature changed (the line still parses)."""
    signed = SignedNote.parse(note)
    changed = []
    for s in signed.signatures:
        if s.name == name:
            raw = bytearray(s.signature)
            raw[7] ^= 0x01
            s = NoteSignature(s.name, s.key_id, bytes(raw))
        changed.append(s)
    return SignedNote(signed.text, tuple(changed)).to_text()


@pytest.fixture
def cosigned_kor(trio: Trio) -> Member:
    for party in ("JPN", "USA"):
        assert trio[party].witness("KOR")["KOR"].cosignature_sent is True
    return trio["KOR"]


def cosignature_problems(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (p["check"], p["table"], p["row"], p["peer"], p["size"])
        for p in report["problems"]
        if p["table"] == "ledger_cosignatures"
    ]


def test_audit_verify_checks_the_peers_cosignatures(cosigned_kor: Member) -> None:
    code, report = verify(cosigned_kor)
    assert code == 0, report
    assert report["cosignatures_checked"] == 2


def test_a_tampered_cosignature_fails_verify_naming_the_peer_and_the_checkpoint(
    cosigned_kor: Member,
) -> None:
    kor = cosigned_kor
    ((row, note, size),) = kor.sql(
        "SELECT id, note, size FROM ledger_cosignatures WHERE witness = 'USA'"
    )
    kor.sql(
        "UPDATE ledger_cosignatures SET note = ? WHERE id = ?",
        flip_signature(note, ledger_origin("USA")),
        row,
    )
    code, report = verify(kor)
    assert code == 1
    assert cosignature_problems(report) == [
        ("cosignature-signature", "ledger_cosignatures", f"id={row}", "USA", size)
    ]
    (problem,) = [p for p in report["problems"] if p["table"] == "ledger_cosignatures"]
    assert f"the cosignature by USA of the checkpoint of size {size}" in problem["message"]
    assert "does not verify" in problem["message"]
    # Text output names it too.
    text = CliRunner().invoke(
        cli_app, ["audit", "verify", "--data", str(kor.config.data_dir)], env={}
    )
    assert text.exit_code == 1
    assert f"cosignature-signature: ledger_cosignatures [id={row}]" in text.stdout
    assert f"USA of the checkpoint of size {size}" in " ".join(text.stdout.split())


@pytest.mark.parametrize(
    ("change", "check"),
    [
        ("UPDATE ledger_cosignatures SET witness = 'GBR' WHERE witness = 'USA'", "signature"),
        ("UPDATE ledger_cosignatures SET size = size - 1 WHERE witness = 'USA'", "fields"),
        ("UPDATE ledger_cosignatures SET size = size + 100 WHERE witness = 'USA'", "fields"),
    ],
)
def test_a_changed_cosignature_row_fails_verify(
    cosigned_kor: Member, change: str, check: str
) -> None:
    cosigned_kor.sql(change)
    code, report = verify(cosigned_kor)
    assert code == 1
    found = cosignature_problems(report)
    assert found and all(p[1] == "ledger_cosignatures" for p in found)
    assert f"cosignature-{check}" in [p[0] for p in found]
    assert {p[3] for p in found} == ({"GBR"} if "GBR" in change else {"USA"})


def test_a_cosignature_ahead_of_a_rolled_back_log_fails_verify(
    cosigned_kor: Member,
) -> None:
    kor = cosigned_kor
    ((size,),) = kor.sql("SELECT size FROM ledger_cosignatures WHERE witness = 'JPN'")
    # the log rewound below the cosigned size (its checkpoints with it: only the peers' remain)
    kor.sql("DELETE FROM ledger_entries WHERE idx >= ?", size - 1)
    kor.sql("DELETE FROM ledger_checkpoints")
    kor.sql(
        "UPDATE ledger_head SET size = ?, root_hash = ?",
        size - 1,
        merkle.root_from_leaf_hashes([]),
    )
    code, report = verify(kor)
    assert code == 1
    found = {(p[0], p[3], p[4]) for p in cosignature_problems(report)}
    assert found == {("cosignature-ahead", "JPN", size), ("cosignature-ahead", "USA", size)}


def test_a_rewritten_history_fails_verify_on_the_peers_cosignatures(cosigned_kor: Member) -> None:
    kor = cosigned_kor
    rewrite_log(kor.config.data_dir, T0)  # a longer history, checkpoints deleted
    code, report = verify(kor)
    assert code == 1
    found = cosignature_problems(report)
    assert {(p[0], p[3]) for p in found} == {
        ("cosignature-root", "JPN"),
        ("cosignature-root", "USA"),
    }
    assert len(report["problems"]) == 2  # nothing else tells: the peers' cosignatures do
    assert all("history was changed" in p["message"] for p in report["problems"])


# -- comparing notes: split views ---------------------------------------------------------------


class Tree:
    def __init__(self, tag: str, size: int) -> None:
        self.hashes = [merkle.leaf_hash(f"{tag}-{i}".encode()) for i in range(size)]

    def checkpoint(self, size: int) -> Checkpoint:
        return Checkpoint("log", size, merkle.root_from_leaf_hashes(self.hashes[:size]))

    def proof(self, old: int, new: int) -> list[bytes]:
        return merkle.consistency_proof(
            old, new, lambda a, b: merkle.root_from_leaf_hashes(self.hashes[a:b])
        )


A = Tree("a", 30)
B = Tree("a", 10)
B.hashes += [merkle.leaf_hash(f"b-{i}".encode()) for i in range(10, 30)]  # forks after 10


@pytest.mark.parametrize(("mine", "theirs"), [(5, 9), (9, 5), (7, 7), (0, 12), (16, 17)])
def test_cross_check_accepts_two_checkpoints_of_one_history(mine: int, theirs: int) -> None:
    calls: list[tuple[int, int]] = []

    def fetch(old: int, new: int) -> list[bytes]:
        calls.append((old, new))
        return A.proof(old, new)

    assert cross_check(A.checkpoint(mine), A.checkpoint(theirs), fetch) is None
    low, high = sorted((mine, theirs))
    assert calls == ([] if low in (0, high) else [(low, high)])


@pytest.mark.parametrize(("mine", "theirs"), [(12, 20), (20, 12), (11, 30)])
def test_cross_check_catches_two_histories(mine: int, theirs: int) -> None:
    # whichever history the log proves from, the other checkpoint is not on it
    for proving in (A, B):
        detail = cross_check(A.checkpoint(mine), B.checkpoint(theirs), proving.proof)
        low, high = sorted((mine, theirs))
        assert detail is not None and f"size {high} does not extend size {low}" in detail


def test_cross_check_catches_two_roots_for_one_size_without_asking() -> None:
    def fetch(old: int, new: int) -> list[bytes]:
        raise AssertionError("no proof is needed")

    detail = cross_check(A.checkpoint(20), B.checkpoint(20), fetch)
    assert detail == "two different roots signed for size 20"
    assert cross_check(B.checkpoint(10), A.checkpoint(10), fetch) is None  # before the fork


def test_cross_check_errors_are_not_evidence() -> None:
    def down(old: int, new: int) -> list[bytes]:
        raise httpx.ConnectError("down")

    with pytest.raises(httpx.ConnectError):
        cross_check(A.checkpoint(12), B.checkpoint(20), down)

    def malformed(old: int, new: int) -> list[bytes]:
        raise InvalidProofError("not a proof")

    assert cross_check(A.checkpoint(12), A.checkpoint(20), malformed) is not None


@pytest.mark.parametrize("usa_extra", [3, 5], ids=["same-size", "other-size"])
def test_a_split_view_is_caught_by_comparing_notes(split: Trio, usa_extra: int) -> None:
    jpn, usa, kor, twin = split["JPN"], split["USA"], split["KOR"], split.twin
    assert twin is not None
    # KOR keeps two histories from here: one for JPN, one for USA.
    kor.grow(3, "shown-to-jpn")
    twin.grow(usa_extra, "shown-to-usa")
    assert usa.witness("KOR")["KOR"].status == "cosigned"
    # JPN has never seen KOR: its own view alone would be accepted.
    result = jpn.witness("KOR")["KOR"]
    assert result.status == "inconsistent", result
    assert result.seen_by == "USA" and result.compared == ("USA",)
    assert result.incident_id and result.cosignature_sent is None
    if usa_extra == 3:
        assert "two different roots signed for size" in result.detail
    else:
        assert "does not extend size" in result.detail
    assert [(r[0], r[1], r[2]) for r in incidents(jpn)] == [("KOR", "JPN", "compromise")]
    assert "different histories to different witnesses" in incidents(jpn)[0][3]
    (entry,) = entries(jpn, "witness.inconsistent")
    assert entry["kind"] == "split-view" and entry["seen_by"] == "USA"
    assert entry["incident_id"] == result.incident_id
    # both signed notes are the evidence: KOR's signature is on each
    assert ledger_origin("USA") in entry["their_note"]
    assert entry["conflicting_note"].startswith(ledger_origin("KOR") + "\n")
    assert entries(jpn, "witness.cosigned") == []  # not cosigned
    assert kor.ledger.cosignatures() == []
    # Seen again, after KOR's log grew for JPN: reported, recorded once.
    kor.grow(2, "shown-to-jpn")
    again = jpn.witness("KOR")["KOR"]
    assert again.status == "inconsistent" and again.incident_id == result.incident_id
    assert len(incidents(jpn)) == 1 and len(entries(jpn, "witness.inconsistent")) == 1
    # USA, comparing notes with JPN (which has cosigned nothing of KOR), has no evidence.
    assert usa.witness("KOR")["KOR"].status == "cosigned"


def test_an_honest_peer_passes_the_comparison(trio: Trio) -> None:
    jpn, usa, kor = trio["JPN"], trio["USA"], trio["KOR"]
    assert usa.witness("KOR")["KOR"].status == "cosigned"
    kor.grow(4, "more")
    result = jpn.witness("KOR")["KOR"]
    assert result.status == "cosigned", result
    assert result.compared == ("USA",)
    # USA is asked about KOR and JPN about USA: each compared with the one other witness
    usa_view = jpn.witness()["USA"]
    assert usa_view.status == "cosigned" and usa_view.compared == ()  # KOR cosigned no USA yet
    assert incidents(jpn) == []


def test_a_witness_that_cannot_be_asked_does_not_stop_the_cosignature(trio: Trio) -> None:
    jpn = trio["JPN"]
    del jpn.routes[host("USA")]
    result = jpn.witness("KOR")["KOR"]
    assert result.status == "cosigned" and result.compared == ()
    assert "could not compare notes with USA" in result.detail


def test_a_rewrite_seen_again_after_the_log_grew_is_recorded_once(trio: Trio) -> None:
    jpn, kor = trio["JPN"], trio["KOR"]
    assert jpn.witness("KOR")["KOR"].status == "cosigned"
    rewrite_log(kor.config.data_dir, T0)
    first = jpn.witness("KOR")["KOR"]
    assert first.status == "inconsistent"
    kor.grow(5, "forged-more")
    again = jpn.witness("KOR")["KOR"]
    assert again.status == "inconsistent" and again.incident_id == first.incident_id
    assert again.size != first.size
    assert len(incidents(jpn)) == 1


# -- witnessing on a schedule -------------------------------------------------------------------


def test_run_once_witnesses_every_peer(trio: Trio) -> None:
    jpn = trio["JPN"]
    schedule = WitnessSchedule(jpn.fed, 3600, transport=Router(jpn.routes))
    try:
        results = schedule.run_once()
        assert {r.peer: r.status for r in results} == {"KOR": "cosigned", "USA": "cosigned"}
        assert schedule.runs == 1 and schedule.ran.is_set()
        assert [c.witness for c in trio["KOR"].ledger.cosignatures()] == ["JPN"]
    finally:
        schedule.stop()


def test_the_schedule_runs_by_itself_and_stops(trio: Trio) -> None:
    jpn = trio["JPN"]
    schedule = WitnessSchedule(jpn.fed, 0.01, transport=Router(jpn.routes))
    schedule.start()
    try:
        assert schedule.ran.wait(timeout=60), "the scheduled run did not happen"
    finally:
        schedule.stop()
    assert not schedule._thread.is_alive()
    assert {r.status for r in schedule.last} == {"cosigned"}
    assert {c.witness for c in trio["USA"].ledger.cosignatures()} == {"JPN"}


def test_the_schedule_refuses_a_non_positive_interval(trio: Trio) -> None:
    with pytest.raises(ValueError, match="positive"):
        WitnessSchedule(trio["JPN"].fed, 0)


def test_the_application_runs_the_schedule_in_its_lifespan(trio: Trio) -> None:
    jpn = trio["JPN"]
    app = create_app(jpn.node, jpn.fed)
    app.state.witness_interval = 0.01
    app.state.witness_transport = Router(jpn.routes)
    with TestClient(app):
        schedule = app.state.witnessing
        assert isinstance(schedule, WitnessSchedule)
        assert schedule.ran.wait(timeout=60), "the lifespan did not start witnessing"
    assert not schedule._thread.is_alive()
    assert {r.peer for r in schedule.last} == {"KOR", "USA"}


def test_an_interval_of_zero_disables_the_schedule(trio: Trio) -> None:
    jpn = trio["JPN"]
    app = create_app(jpn.node, jpn.fed)
    app.state.witness_interval = 0
    with TestClient(app):
        assert app.state.witnessing is None


def test_the_interval_is_a_node_config_option(tmp_path: Path) -> None:
    config = init_node(tmp_path / "jpn", "JPN", REGISTRY, None, now=T0)
    assert config.witness_interval == 60 and load_config(config.data_dir).witness_interval == 60
    path = config.data_dir / "node.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text + "\n[ledger]\nwitness_interval = 0\n", encoding="utf-8")
    assert load_config(config.data_dir).witness_interval == 0
    path.write_text(text + "\n[ledger]\nwitness_interval = 2.5\n", encoding="utf-8")
    assert load_config(config.data_dir).witness_interval == 2.5
    path.write_text(text + "\n[ledger]\nwitness_interval = -1\n", encoding="utf-8")
    with pytest.raises(NodeConfigError, match="witness_interval"):
        load_config(config.data_dir)


# -- three node processes -----------------------------------------------------------------------


@pytest.mark.slow
def test_three_nodes_catch_a_split_view_by_comparing_notes(cluster: Cluster) -> None:
    """USA cosigns KOR's history; KOR then shows a rewritten one. JPN, which has never witnessed
    KOR, would accept it on its own, but USA's note contradicts it."""
    code, results = witness(cluster, "USA")
    assert code == 0 and results["KOR"]["status"] == "cosigned", results
    assert results["KOR"]["cosignature_sent"] is True
    usa_size = results["KOR"]["size"]
    kept = db_rows(cluster, "KOR", "SELECT witness, size FROM ledger_cosignatures")
    assert kept == [("USA", usa_size)]

    cluster.stop(["KOR"])
    rewrite_log(cluster.nodes["KOR"].data_dir, datetime.now(UTC) + timedelta(seconds=1))
    cluster.start(["KOR"])

    code, results = witness(cluster, "JPN")
    assert code == 1, results
    kor = results["KOR"]
    assert kor["status"] == "inconsistent" and kor["previous_size"] is None, kor
    assert kor["seen_by"] == "USA" and "split view" in kor["detail"]
    assert f"does not extend size {usa_size}" in kor["detail"]
    assert results["USA"]["status"] == "cosigned"
    assert [(r[0], r[1], r[2]) for r in db_rows(
        cluster, "JPN", "SELECT reporter, originator, kind FROM incidents"
    )] == [("KOR", "JPN", "compromise")]  # fmt: skip
    # KOR's own audit now fails on USA's cosignature of the history it replaced.
    result = CliRunner().invoke(
        cli_app,
        ["audit", "verify", "--data", str(cluster.nodes["KOR"].data_dir), "--json"],
        env={"GSOMIA_KEY_PASSPHRASE": None},
    )
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert [(p["check"], p["peer"], p["size"]) for p in report["problems"]] == [
        ("cosignature-root", "USA", usa_size)
    ]
