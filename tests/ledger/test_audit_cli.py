"""Tamper tests on a node's SQLite database, through ``gsomia audit``.

Each test builds a node (``node init`` files, ``open_node`` database), appends entries with
``Ledger``, signs checkpoints with ``gsomia audit checkpoint``, damages the database the way an
insider with file access could (raw SQL on the file, or the file swapped for an older copy),
and checks that ``gsomia audit verify`` exits non-zero and names the table, the row and the
entry concerned.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from gsomia.cli import main as cli_main
from gsomia.cli.audit import CHECKPOINT_FILE, audit_app, ledger_origin
from gsomia.ledger.log import Ledger, NewEntry
from gsomia.loader import load_registry
from gsomia.node.config import init_node
from gsomia.node.service import open_node

from .conftest import T0

ENTRIES = 40
OPENING = 1  # a node's first ledger entry is the registry it opened with ("registry-change")


def make_cli() -> typer.Typer:
    # The real root command and error handling, with the audit group added (main.py registers
    # it for the installed command).
    app = typer.Typer(cls=cli_main._ErrorsAsOneLine, pretty_exceptions_enable=False)
    app.callback()(cli_main.root)
    app.add_typer(audit_app, name="audit")
    return app


CLI = make_cli()


def run(*args: str) -> Any:
    return CliRunner().invoke(CLI, list(args), env={"GSOMIA_KEY_PASSPHRASE": "sesame"})


class NodeDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        registry = load_registry()
        self.config = init_node(path, "JPN", registry, "sesame", now=T0)
        self.db = path / "node.db"
        self._registry = registry

    def append(self, n: int, kind: str = "decision") -> None:
        node = open_node(
            party="JPN", registry=self._registry, database_url=self.config.database_url
        )
        try:
            ledger = Ledger(node.store)
            start = ledger.size()
            ledger.append_many(
                NewEntry(kind, {"n": i, "allowed": i % 2 == 0}, T0 + timedelta(minutes=i))
                for i in range(start, start + n)
            )
        finally:
            node.store.dispose()

    def checkpoint(self) -> dict[str, Any]:
        result = run("audit", "checkpoint", "--data", str(self.path), "--json")
        assert result.exit_code == 0, result.output
        out: dict[str, Any] = json.loads(result.stdout)
        return out

    def sql(self, statement: str, *params: Any) -> None:
        connection = sqlite3.connect(self.db)
        try:
            connection.execute(statement, params)
            connection.commit()
        finally:
            connection.close()

    def value(self, statement: str, *params: Any) -> Any:
        connection = sqlite3.connect(self.db)
        try:
            return connection.execute(statement, params).fetchone()[0]
        finally:
            connection.close()

    def verify(self, *extra: str) -> tuple[int, dict[str, Any], str]:
        result = run("audit", "verify", "--data", str(self.path), "--json", *extra)
        return result.exit_code, json.loads(result.stdout), result.stderr


@pytest.fixture
def node(tmp_path: Path) -> NodeDir:
    node = NodeDir(tmp_path / "jpn")
    node.append(ENTRIES - OPENING)  # the node's own opening entry makes ENTRIES in all
    node.checkpoint()
    return node


def problems(report: dict[str, Any]) -> list[tuple[str, str, str | None, int | None]]:
    return [(p["check"], p["table"], p["row"], p["index"]) for p in report["problems"]]


def test_a_clean_ledger_verifies(node: NodeDir) -> None:
    code, report, stderr = node.verify()
    assert code == 0, stderr
    assert report["ok"] and report["size"] == ENTRIES
    assert report["checkpoints_checked"] == 1 and report["external_checked"] == 1
    text = run("audit", "verify", "--data", str(node.path))
    assert text.exit_code == 0 and "OK" in text.stdout


def test_one_changed_byte_in_a_record(node: NodeDir) -> None:
    record = node.value("SELECT record FROM ledger_entries WHERE idx = 17")
    changed = record.replace('"allowed":false', '"allowed":falsf')
    assert len(changed) == len(record) and changed != record
    node.sql("UPDATE ledger_entries SET record = ? WHERE idx = 17", changed)
    code, report, stderr = node.verify()
    assert code == 1
    assert problems(report) == [("record-digest", "ledger_entries", "idx=17", 17)]
    assert "ledger_entries [idx=17]" in stderr and "[ledger-inconsistent]" in stderr
    text = run("audit", "verify", "--data", str(node.path))
    assert text.exit_code == 1
    assert "record-digest: ledger_entries [idx=17] entry 17" in text.stdout


@pytest.mark.parametrize(
    ("column", "index", "mutate", "history"),
    [
        ("kind", 9, lambda v: "decisioN", True),
        ("created_at", 9, lambda v: v.replace(":09:", ":19:"), True),
        ("digest", 9, lambda v: bytes([v[0] ^ 1]) + v[1:], True),
        ("kind", 22, lambda v: "share", True),
        # a stored hash is not history: the tree recomputed from the entries still matches
        ("nodes", 9, lambda v: v[:-1] + bytes([v[-1] ^ 0x80]), False),
    ],
)
def test_one_changed_value_in_any_column_of_an_entry(
    node: NodeDir, column: str, index: int, mutate: Callable[[Any], Any], history: bool
) -> None:
    before = node.value(f"SELECT {column} FROM ledger_entries WHERE idx = ?", index)
    node.sql(f"UPDATE ledger_entries SET {column} = ? WHERE idx = ?", mutate(before), index)
    code, report, _ = node.verify()
    assert code == 1
    found = problems(report)
    # The entry's own row, or the row that stores the first subtree over it, is named.
    assert any(t == "ledger_entries" and i in (index, index | 1) for _, t, _, i in found), found
    assert (("checkpoint-root", "ledger_checkpoints", "id=1", None) in found) is history


def test_a_changed_stored_subtree_hash(node: NodeDir) -> None:
    # Entry 31 completes subtrees at levels 1..5; its level-3 hash is bytes 64..95 of `nodes`.
    nodes = node.value("SELECT nodes FROM ledger_entries WHERE idx = 31")
    assert len(nodes) == 5 * 32
    changed = nodes[:70] + bytes([nodes[70] ^ 1]) + nodes[71:]
    node.sql("UPDATE ledger_entries SET nodes = ? WHERE idx = 31", changed)
    code, report, _ = node.verify()
    assert code == 1
    assert problems(report) == [("subtree-hash", "ledger_entries", "idx=31", 31)]
    assert "level 3 index 3 (entries 24..31)" in report["problems"][0]["message"]
    # Proofs through that subtree are refused rather than handed out.
    result = run("audit", "prove", "17", "--data", str(node.path))  # its path holds (3, 3)
    assert result.exit_code == 1 and "[ledger-inconsistent]" in result.stderr


def test_a_deleted_entry(node: NodeDir) -> None:
    node.sql("DELETE FROM ledger_entries WHERE idx = 12")
    code, report, _ = node.verify()
    assert code == 1
    found = problems(report)
    assert found[0] == ("entry-missing", "ledger_entries", None, 12)
    assert "entries 12 are missing" in report["problems"][0]["message"]
    assert ("head-size", "ledger_head", "id=1", None) in found


def test_the_last_entries_deleted_and_the_head_rewound(node: NodeDir) -> None:
    # A careful insider deletes the tail and fixes the head row to match: only the signed
    # checkpoint (in the database and in DIR) still shows what was there.
    node.sql("DELETE FROM ledger_entries WHERE idx >= 35")
    node.sql("UPDATE ledger_head SET size = 35")
    code, report, _ = node.verify()
    assert code == 1
    found = problems(report)
    assert ("checkpoint-ahead", "ledger_checkpoints", "id=1", None) in found
    assert ("checkpoint-ahead", str(node.path / CHECKPOINT_FILE), None, None) in found


def test_reordered_entries(node: NodeDir) -> None:
    # Swap entries 4 and 5 whole (every column but the index): each row is self-consistent.
    node.sql("UPDATE ledger_entries SET idx = -1 WHERE idx = 4")
    node.sql("UPDATE ledger_entries SET idx = 4 WHERE idx = 5")
    node.sql("UPDATE ledger_entries SET idx = 5 WHERE idx = -1")
    code, report, _ = node.verify()
    assert code == 1
    found = problems(report)
    assert found[0][:2] == ("subtree-count", "ledger_entries") or found[0][0] == "subtree-hash"
    assert {i for _, t, _, i in found if t == "ledger_entries"} >= {4, 5}
    assert ("checkpoint-root", "ledger_checkpoints", "id=1", None) in found


def test_a_changed_checkpoint_row(node: NodeDir) -> None:
    node.sql("UPDATE ledger_checkpoints SET size = 39 WHERE id = 1")
    code, report, _ = node.verify()
    assert code == 1
    assert ("checkpoint-fields", "ledger_checkpoints", "id=1", None) in problems(report)
    note = node.value("SELECT note FROM ledger_checkpoints WHERE id = 1")
    node.sql(
        "UPDATE ledger_checkpoints SET size = 40, note = ? WHERE id = 1",
        note.replace("40", "39", 1),
    )
    code, report, _ = node.verify()
    assert code == 1
    assert problems(report)[0][:3] == ("checkpoint-signature", "ledger_checkpoints", "id=1")


def test_the_database_rolled_back_to_an_older_copy(node: NodeDir, tmp_path: Path) -> None:
    old_copy = tmp_path / "old.db"
    _backup(node.db, old_copy)  # the state at 40 entries, checkpoint 1
    node.append(10)
    signed = node.checkpoint()
    assert signed["size"] == 50
    _restore(old_copy, node.db)
    code, report, stderr = node.verify()
    assert code == 1
    assert problems(report) == [("checkpoint-ahead", str(node.path / CHECKPOINT_FILE), None, None)]
    assert "rolled back" in report["problems"][0]["message"]
    assert "ledger-checkpoint.txt" in stderr
    # Signing now would put the node's name on the rollback: refused, and the file is kept.
    result = run("audit", "checkpoint", "--data", str(node.path))
    assert result.exit_code == 1 and "ahead of the log" in result.stderr
    assert "\n50\n" in (node.path / CHECKPOINT_FILE).read_text()


def test_a_rolled_back_database_that_grew_again(node: NodeDir, tmp_path: Path) -> None:
    old_copy = tmp_path / "old.db"
    _backup(node.db, old_copy)
    node.append(10)
    node.checkpoint()
    _restore(old_copy, node.db)
    node.append(12, kind="share")  # a different history, now longer than the signed one
    code, report, _ = node.verify()
    assert code == 1
    assert problems(report) == [("checkpoint-root", str(node.path / CHECKPOINT_FILE), None, None)]
    assert "history was changed" in report["problems"][0]["message"]


def test_a_checkpoint_given_on_the_command_line(node: NodeDir, tmp_path: Path) -> None:
    elsewhere = tmp_path / "kept-by-KOR.txt"
    shutil.copy(node.path / CHECKPOINT_FILE, elsewhere)
    (node.path / CHECKPOINT_FILE).unlink()
    node.sql("DELETE FROM ledger_entries WHERE idx >= 30")
    node.sql("DELETE FROM ledger_checkpoints")
    node.sql("UPDATE ledger_head SET size = 30")
    code, report, _ = node.verify()
    assert code == 1  # the head root no longer matches, but nothing says how far it went
    code, report, _ = node.verify("--checkpoint", str(elsewhere))
    assert ("checkpoint-ahead", str(elsewhere), None, None) in problems(report)


# -- prove and checkpoint ---------------------------------------------------------------------


def test_prove_prints_a_proof_that_verifies_against_the_signed_checkpoint(node: NodeDir) -> None:
    from gsomia.ledger import merkle
    from gsomia.ledger.checkpoint import NoteVerifier, open_checkpoint

    node.append(3)  # the log is now ahead of its checkpoint: the default is the signed size
    result = run("audit", "prove", "7", "--data", str(node.path), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["proof"]["size"] == ENTRIES and out["entry"]["index"] == 7
    assert out["entry"]["record"] == {"n": 7, "allowed": False}
    verifier = NoteVerifier(ledger_origin("JPN"), node.config.signing_public_key)
    signed = open_checkpoint(out["checkpoint"], verifier).checkpoint
    import base64

    merkle.verify_inclusion(
        base64.b64decode(out["proof"]["leaf_hash"]),
        7,
        signed.size,
        [base64.b64decode(h) for h in out["proof"]["path"]],
        signed.root_hash,
    )
    whole = json.loads(run("audit", "prove", "42", "--data", str(node.path), "--json").stdout)
    assert whole["proof"]["size"] == 43 and whole["checkpoint"] is None
    text = run("audit", "prove", "3", "--data", str(node.path), "--size", "20")
    assert text.exit_code == 0 and "tree size      20" in text.stdout
    missing = run("audit", "prove", "99", "--data", str(node.path))
    assert missing.exit_code == 2 and "[ledger-out-of-range]" in missing.stderr


def test_checkpoint_needs_the_right_passphrase(node: NodeDir) -> None:
    result = CliRunner().invoke(
        CLI, ["audit", "checkpoint", "--data", str(node.path)], env={"GSOMIA_KEY_PASSPHRASE": "x"}
    )
    assert result.exit_code == 2 and "[bad-key-passphrase]" in result.stderr


def test_checkpoint_prints_the_signed_note(node: NodeDir) -> None:
    node.append(2)
    result = run("audit", "checkpoint", "--data", str(node.path))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{ledger_origin('JPN')}\n42\n")
    assert (node.path / CHECKPOINT_FILE).read_text() == result.stdout


# -- helpers ----------------------------------------------------------------------------------


def _backup(db: Path, to: Path) -> None:
    """A consistent copy of a live WAL database (what a backup tool would have kept)."""
    source, target = sqlite3.connect(db), sqlite3.connect(to)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


def _restore(copy: Path, db: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copy(copy, db)
