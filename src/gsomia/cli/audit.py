"""``gsomia audit``: verify the node's ledger, prove an entry, sign a checkpoint, witness peers.

The node's checkpoints are signed with its Ed25519 signing key under the origin
``gsomia.invalid/<PARTY>/ledger`` (also the key name), kept in the database, and the latest one
is also written to ``DIR/ledger-checkpoint.txt``: a copy outside the database, so that a database
rolled back to an older file is caught by ``audit verify`` (the checkpoint is then ahead of the
log). Peers' copies serve the same purpose and better: each peer witnesses this node's
checkpoints (on a schedule, or by ``audit witness``), lists the last one it cosigned at its ``GET
/api/v1/ledger/cosignatures`` (pass it with ``--checkpoint``) and sends its cosignature back,
where it is kept in ``ledger_cosignatures`` and checked by ``audit verify`` with the key pinned
for that peer. ``audit witness`` does the same for this node's peers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gsomia.cli.common import console, err_console, now, print_json
from gsomia.cli.node import DATA, JSON, open_from_dir, passphrase_from
from gsomia.core.canonical import b64
from gsomia.core.errors import CheckpointError, InputError, LedgerInconsistentError
from gsomia.crypto.keys import InvalidPublicKeyError, SigningPublicKey
from gsomia.ledger.checkpoint import Checkpoint, NoteVerifier, ledger_origin, open_checkpoint
from gsomia.ledger.log import ExternalCheckpoint, Ledger, Report, StoredCheckpoint
from gsomia.node.config import NodeConfig, load_config, load_signing_key

audit_app = typer.Typer(
    help="The node's tamper-evident ledger: verify it, prove entries, sign checkpoints.",
    no_args_is_help=True,
)

CHECKPOINT_FILE = "ledger-checkpoint.txt"


def log_verifier(config: NodeConfig) -> NoteVerifier:
    return NoteVerifier(ledger_origin(config.party), config.signing_public_key)


def witness_verifiers(ledger: Ledger) -> dict[str, NoteVerifier]:
    """The key pinned for each peer (removed ones too: their cosignatures were made with it)."""
    from gsomia.store.federation import Peers

    with ledger.store.read() as s:
        peers = Peers(s).list()
    out: dict[str, NoteVerifier] = {}
    for p in peers:
        try:
            out[p.party] = NoteVerifier(
                ledger_origin(p.party), SigningPublicKey.from_text(p.signing_key)
            )
        except InvalidPublicKeyError:
            continue  # its cosignatures are reported as having no pinned key
    return out


@contextlib.contextmanager
def _ledger(ctx: typer.Context, data: Path) -> Iterator[Ledger]:
    """The node's ledger, its database closed when the command ends."""
    node = open_from_dir(ctx, data)
    try:
        yield Ledger(node.store)
    finally:
        node.store.dispose()


def _read_note(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the checkpoint: {e}") from None


# -- verify -----------------------------------------------------------------------------------


@audit_app.command("verify")
def verify_cmd(
    ctx: typer.Context,
    data: Path = DATA,
    checkpoint: list[Path] = typer.Option(
        [],
        "--checkpoint",
        metavar="FILE",
        help=f"A signed checkpoint of this node kept elsewhere (repeatable). "
        f"DIR/{CHECKPOINT_FILE} is always read when present.",
    ),
    json: bool = JSON,
) -> None:
    """Recompute the ledger from its records; report what is wrong and where (exit 1 if any).

    Also checks the peers' cosignatures of this node's checkpoints kept in the database: each
    must verify with the key pinned for its peer and be over a checkpoint this node signed whose
    root is the root recomputed at its size.
    """
    config = load_config(data)
    files = (
        [config.data_dir / CHECKPOINT_FILE] if (config.data_dir / CHECKPOINT_FILE).exists() else []
    )
    external = [ExternalCheckpoint(str(p), _read_note(p)) for p in [*files, *checkpoint]]
    with (
        _ledger(ctx, data) as ledger,
        Progress(
            TextColumn("verifying the ledger"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
            disable=json or not err_console.is_terminal,
        ) as progress,
    ):
        task = progress.add_task("verify", total=None)
        report = ledger.verify(
            log_verifier(config),
            external=external,
            witnesses=witness_verifiers(ledger),
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    if json:
        print_json(report.to_dict())
    else:
        _show(report, config)
    if not report.ok:
        count = len(report.problems) + report.problems_omitted
        raise LedgerInconsistentError(
            f"the ledger of {config.party} failed verification: {count} problem"
            f"{'s' if count != 1 else ''}, first: {report.problems[0]}"
        )


def _show(report: Report, config: NodeConfig) -> None:
    console.print(
        f"Ledger of {config.party}: {report.size} entries, root {b64(report.root_hash)}",
        soft_wrap=True,
    )
    console.print(
        f"  checked {report.entries_checked} entries, {report.checkpoints_checked} stored "
        f"checkpoints, {report.external_checked} kept elsewhere, "
        f"{report.cosignatures_checked} peers' cosignatures"
    )
    if report.ok:
        console.print("  OK: every record, subtree hash, checkpoint and cosignature agrees")
        return
    console.print(f"  FAILED: {len(report.problems) + report.problems_omitted} problems")
    for p in report.problems:
        where = p.table + (f" [{p.row}]" if p.row else "")
        index = f" entry {p.index}" if p.index is not None else ""
        console.print(f"  - {p.check}: {where}{index}: {p.message}", soft_wrap=True)
    if report.problems_omitted:
        console.print(f"  ... and {report.problems_omitted} more")


# -- prove ------------------------------------------------------------------------------------


@audit_app.command("prove")
def prove_cmd(
    ctx: typer.Context,
    entry: int = typer.Argument(..., min=0, metavar="ENTRY", help="The entry's index."),
    data: Path = DATA,
    size: int | None = typer.Option(
        None,
        "--size",
        min=1,
        help="The tree size to prove against. Default: the latest signed checkpoint that "
        "includes the entry, else the whole log.",
    ),
    json: bool = JSON,
) -> None:
    """An RFC 9162 inclusion proof of ENTRY, checked before it is printed."""
    config = load_config(data)
    with _ledger(ctx, data) as ledger:
        signed = _covering_checkpoint(ledger, entry, size)
        if size is None and signed is not None:
            size = signed.size
        proof = ledger.inclusion_proof(entry, size)
        root = ledger.root(proof.size)
        record = ledger.entry(entry)
    proof.verify(root)
    if signed is not None and signed.size == proof.size:
        # the proof must also verify against what the node signed, not only the stored root
        opened = open_checkpoint(signed.note, log_verifier(config)).checkpoint
        proof.verify(opened.root_hash)
    out: dict[str, Any] = {
        "entry": {
            "index": record.index,
            "kind": record.kind,
            "at": record.at.isoformat(),
            "digest": record.digest.hex(),
            "record": record.record,
        },
        "proof": proof.to_dict(),
        "root_hash": b64(root),
        "checkpoint": signed.note if signed is not None and signed.size == proof.size else None,
    }
    if json:
        print_json(out)
        return
    console.print(f"Entry {record.index} ({record.kind}, {record.at.isoformat()})", soft_wrap=True)
    console.print(f"  record digest  {record.digest.hex()}")
    console.print(f"  leaf hash      {b64(proof.leaf_hash)}")
    console.print(f"  tree size      {proof.size}")
    console.print(f"  root hash      {b64(root)}")
    for i, h in enumerate(proof.path):
        console.print(f"  path[{i:2}]       {b64(h)}")
    if out["checkpoint"]:
        console.print("Signed checkpoint of that tree:")
        console.print(out["checkpoint"], end="", soft_wrap=True)
    else:
        console.print("No signed checkpoint of that tree size yet (gsomia audit checkpoint).")


def _covering_checkpoint(ledger: Ledger, entry: int, size: int | None) -> StoredCheckpoint | None:
    """The latest checkpoint of ``size`` (or, without a size, the latest that holds ``entry``)."""
    for stored in reversed(ledger.checkpoints()):
        if (size is None and stored.size > entry) or stored.size == size:
            return stored
    return None


# -- checkpoint -------------------------------------------------------------------------------


@audit_app.command("checkpoint")
def checkpoint_cmd(ctx: typer.Context, data: Path = DATA, json: bool = JSON) -> None:
    """Sign a checkpoint of the whole ledger with the node's key; keep it and write it to DIR.

    The passphrase of an encrypted key is read from $GSOMIA_KEY_PASSPHRASE. A ledger that does
    not extend the last signed checkpoint (in the database or in DIR) is not signed.
    """
    config = load_config(data)
    passphrase, _ = passphrase_from(None, False, confirm=False)
    key = load_signing_key(config, passphrase)
    path = config.data_dir / CHECKPOINT_FILE
    previous = _previous(path, config) if path.exists() else None
    with _ledger(ctx, data) as ledger:
        stored = ledger.checkpoint(key, ledger_origin(config.party), now(), after=previous)
    _write_atomically(path, stored.note)
    if json:
        print_json({**stored.to_dict(), "file": str(path)})
        return
    console.print(stored.note, end="", soft_wrap=True)
    err_console.print(f"gsomia: checkpoint of {stored.size} entries written to {path}")


def _previous(path: Path, config: NodeConfig) -> Checkpoint:
    try:
        return open_checkpoint(_read_note(path), log_verifier(config)).checkpoint
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e.message}") from None


def _write_atomically(path: Path, text: str) -> None:
    """Write a new file beside ``path`` and rename it over: a crash leaves one whole note."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        temporary.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


# -- witness ----------------------------------------------------------------------------------


@audit_app.command("witness")
def witness_cmd(
    ctx: typer.Context,
    data: Path = DATA,
    peer: list[str] = typer.Option(
        [], "--peer", metavar="PARTY", help="Witness only this peer (repeatable). Default: all."
    ),
    json: bool = JSON,
) -> None:
    """Fetch, verify and cosign each peer's latest ledger checkpoint.

    A peer's checkpoint is cosigned only when its signature verifies with the pinned key, a
    consistency proof shows it extends the last one cosigned, and it is consistent with the
    checkpoints of that peer the other peers cosigned (notes compared); the cosignature is then
    sent back to the peer. A peer whose checkpoints contradict each other (a split view or a
    rewritten history) is reported and recorded as an incident: exit 1. A peer that could not
    be reached or answered badly: exit 2. The key's passphrase is read from
    $GSOMIA_KEY_PASSPHRASE.
    """
    from gsomia.ledger.witness import witness_peers
    from gsomia.node.config import PASSPHRASE_ENV
    from gsomia.node.federation import Federation

    config = load_config(data)
    node = open_from_dir(ctx, data)
    try:
        federation = Federation.keyed_by(node, config, os.environ.get(PASSPHRASE_ENV) or None)
        results = witness_peers(federation, parties=[p.upper() for p in peer] or None)
    finally:
        node.store.dispose()
    if json:
        print_json({"party": config.party, "results": [r.to_dict() for r in results]})
    else:
        table = Table("peer", "status", "size", "previous", "root hash", "compared", "detail")
        for r in results:
            table.add_row(
                r.peer,
                r.status,
                "" if r.size is None else str(r.size),
                "" if r.previous_size is None else str(r.previous_size),
                b64(r.root_hash)[:16] + "…" if r.root_hash is not None else "",
                ", ".join(r.compared),
                r.detail,
            )
        console.print(table)
    bad = [r for r in results if r.status == "inconsistent"]
    for r in bad:
        err_console.print(
            f"gsomia: INCONSISTENT ledger of {r.peer}: {r.detail} (incident {r.incident_id})",
            soft_wrap=True,
        )
    if bad:
        raise LedgerInconsistentError(
            f"{len(bad)} peer{'s' if len(bad) != 1 else ''} signed inconsistent checkpoints: "
            + ", ".join(r.peer for r in bad)
        )
    failed = [r for r in results if r.status == "error"]
    for r in failed:
        err_console.print(f"gsomia: could not witness {r.peer}: {r.detail}", soft_wrap=True)
    if failed:
        raise typer.Exit(2)
