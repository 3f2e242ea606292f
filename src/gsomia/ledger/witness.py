"""Witnessing: a node checks and cosigns its peers' ledger checkpoints.

For each peer, :func:`witness_peers` fetches the peer's latest signed checkpoint (a signed HTTP
GET of ``/federation/v1/checkpoint``), verifies the peer's signature with the key pinned for it,
and, if it cosigned an earlier checkpoint of that peer, fetches a consistency proof from that one
(``/federation/v1/consistency``) and verifies it. Only then does it cosign the checkpoint with its
own key, remember it (``node_meta``, key :data:`META_KEY`: per peer, the last cosigned size, root
and note) and append a ``witness.cosigned`` ledger entry, in one transaction.

Two checkpoints of one peer that cannot both be true (the same size with another root, a smaller
size, or a consistency proof that fails) mean a split view or a rewritten history: the run
reports it, records a ``compromise`` incident and a ``witness.inconsistent`` ledger entry (with
both signed notes as evidence; the same conflicting checkpoint seen again is reported but not
recorded twice), and keeps the last good checkpoint as the reference.

The verification itself (:func:`assess`) is pure: notes in, a verdict out.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from gsomia.core.errors import GsomiaError, InvalidProofError, PeerUnreachableError
from gsomia.crypto.httpsig import sign_request
from gsomia.ledger import merkle
from gsomia.ledger.checkpoint import NoteVerifier, VerifiedCheckpoint, open_checkpoint
from gsomia.ledger.log import NewEntry, append_entries
from gsomia.node.federation import Federation
from gsomia.store.federation import Incidents
from gsomia.store.repositories import NodeMeta

__all__ = [
    "CHECKPOINT_PATH",
    "CONFLICTS_KEY",
    "CONSISTENCY_PATH",
    "META_KEY",
    "Cosigned",
    "Verdict",
    "WitnessResult",
    "assess",
    "cosignatures",
    "ledger_origin",
    "witness_peers",
]

CHECKPOINT_PATH = "/federation/v1/checkpoint"
CONSISTENCY_PATH = "/federation/v1/consistency"
META_KEY = "ledger.witness.cosigned"
CONFLICTS_KEY = "ledger.witness.conflicts"  # per peer: the last conflicting checkpoint recorded

ProofFetcher = Callable[[int, int], Sequence[bytes]]


def ledger_origin(party: str) -> str:
    """The checkpoint origin (and key name) of a party's ledger."""
    return f"gsomia.invalid/{party}/ledger"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class Cosigned:
    """The last checkpoint of a peer this node cosigned."""

    peer: str
    size: int
    root_hash: bytes
    note: str  # with this node's cosignature
    at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "size": self.size,
            "root_hash": _b64(self.root_hash),
            "note": self.note,
            "cosigned_at": self.at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cosigned:
        return cls(
            str(data["peer"]),
            int(data["size"]),
            base64.b64decode(str(data["root_hash"])),
            str(data["note"]),
            str(data["cosigned_at"]),
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    """What :func:`assess` made of a peer's checkpoint: consistent with the last cosigned or not."""

    checkpoint: VerifiedCheckpoint
    consistent: bool
    detail: str


def assess(
    note: str | bytes,
    log_key: NoteVerifier,
    previous: Cosigned | None,
    fetch_proof: ProofFetcher,
) -> Verdict:
    """Verify a peer's checkpoint note and whether it extends the one last cosigned.

    A note that does not parse, names another log or is not signed by ``log_key`` raises
    :class:`CheckpointError` (not evidence against the peer: anyone can send garbage). A validly
    signed note that contradicts ``previous`` is an inconsistent verdict: the peer signed two
    histories. ``fetch_proof(old, new)`` gives the consistency proof's hashes; its
    :class:`InvalidProofError` (a malformed proof) counts against the peer, any other error
    propagates (a transport failure is not evidence).
    """
    opened = open_checkpoint(note, log_key, origin=log_key.name)
    new = opened.checkpoint
    if previous is None or previous.size == 0:
        first = "first checkpoint cosigned" if previous is None else "extends an empty log"
        return Verdict(opened, True, first)
    if new.size < previous.size:
        return Verdict(
            opened,
            False,
            f"checkpoint of {new.size} entries after a cosigned one of {previous.size}: "
            "the log shrank (rolled back or rewritten)",
        )
    if new.size == previous.size:
        if new.root_hash != previous.root_hash:
            return Verdict(
                opened,
                False,
                f"two different roots signed for size {new.size}: a split view or a rewritten "
                "history",
            )
        return Verdict(opened, True, "unchanged since the last cosignature")
    try:
        path = fetch_proof(previous.size, new.size)
        merkle.verify_consistency(previous.size, new.size, previous.root_hash, new.root_hash, path)
    except InvalidProofError as e:
        return Verdict(
            opened,
            False,
            f"size {new.size} does not extend the cosigned size {previous.size}: {e.message}",
        )
    return Verdict(opened, True, f"extends the cosigned size {previous.size}")


# -- remembered cosignatures ----------------------------------------------------------------------


def _load(meta: NodeMeta) -> dict[str, Cosigned]:
    text = meta.get(META_KEY)
    if not text:
        return {}
    return {p: Cosigned.from_dict(d) for p, d in json.loads(text).items()}


def cosignatures(fed: Federation) -> list[Cosigned]:
    """The last cosigned checkpoint of each peer, by party."""
    with fed.node.store.read() as s:
        held = _load(NodeMeta(s))
    return [held[p] for p in sorted(held)]


# -- the run --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WitnessResult:
    """One peer's outcome: ``cosigned``, ``inconsistent`` or ``error``."""

    peer: str
    status: str
    size: int | None
    root_hash: bytes | None
    previous_size: int | None
    detail: str
    incident_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "status": self.status,
            "size": self.size,
            "root_hash": _b64(self.root_hash) if self.root_hash is not None else None,
            "previous_size": self.previous_size,
            "detail": self.detail,
            "incident_id": self.incident_id,
        }


def _signed_get(fed: Federation, client: httpx.Client, url: str, **params: Any) -> httpx.Response:
    request = client.build_request("GET", url, params=params or None)
    sign_request(request, b"", party=fed.party, key=fed.signing_key)
    response = client.send(request)
    if response.status_code != 200:
        raise PeerUnreachableError(f"GET {url}: HTTP {response.status_code} {response.text[:200]}")
    return response


def _proof_path(body: Any, old: int, new: int) -> list[bytes]:
    if (
        not isinstance(body, dict)
        or body.get("old_size") != old
        or body.get("new_size") != new
        or not isinstance(body.get("path"), list)
    ):
        raise InvalidProofError(f"the peer's answer is not a consistency proof from {old} to {new}")
    try:
        return [base64.b64decode(str(h), validate=True) for h in body["path"]]
    except (binascii.Error, ValueError):
        raise InvalidProofError("a consistency proof hash is not base64") from None


def witness_peers(
    fed: Federation,
    *,
    client: httpx.Client | None = None,
    parties: Sequence[str] | None = None,
    timeout: float = 10.0,
) -> list[WitnessResult]:
    """Fetch, verify and cosign each active peer's latest checkpoint; report inconsistencies."""
    own = client or httpx.Client(timeout=timeout)
    try:
        peers = [p for p in fed.peers() if p.removed_at is None]
        if parties is not None:
            peers = [p for p in peers if p.party in parties]
        return [_witness(fed, own, p.party, p.url.rstrip("/")) for p in peers]
    finally:
        if client is None:
            own.close()


def _witness(fed: Federation, client: httpx.Client, party: str, base: str) -> WitnessResult:
    key = fed.pinned_signing_key(party)
    if key is None:
        return WitnessResult(party, "error", None, None, None, "no pinned key")
    log_key = NoteVerifier(ledger_origin(party), key)
    with fed.node.store.read() as s:
        previous = _load(NodeMeta(s)).get(party)
    previous_size = previous.size if previous else None

    def fetch_proof(old: int, new: int) -> list[bytes]:
        # A transport failure or an error status is an error of this run (nothing is recorded);
        # a proof that is malformed or does not verify is evidence against the peer.
        response = _signed_get(fed, client, base + CONSISTENCY_PATH, old=old, new=new)
        try:
            body = response.json()
        except ValueError:
            raise InvalidProofError("the peer's consistency proof is not JSON") from None
        return _proof_path(body, old, new)

    try:
        note = _signed_get(fed, client, base + CHECKPOINT_PATH).text
        verdict = assess(note, log_key, previous, fetch_proof)
    except (GsomiaError, httpx.HTTPError) as e:
        message = e.message if isinstance(e, GsomiaError) else f"{type(e).__name__}: {e}"
        return WitnessResult(party, "error", None, None, previous_size, message)
    checkpoint = verdict.checkpoint.checkpoint
    now = fed.node.now()
    if not verdict.consistent:
        return _inconsistent(fed, party, verdict, previous, now)
    cosigned = verdict.checkpoint.note.cosign(ledger_origin(fed.party), fed.signing_key)
    remembered = Cosigned(party, checkpoint.size, checkpoint.root_hash, cosigned.to_text(),
                          now.isoformat())  # fmt: skip
    with fed.node.store.write() as s:
        meta = NodeMeta(s)
        held = _load(meta)
        held[party] = remembered
        meta.set(META_KEY, json.dumps({p: c.to_dict() for p, c in held.items()}, sort_keys=True))
        record = {**remembered.to_dict(), "previous_size": previous_size}
        append_entries(s, [NewEntry("witness.cosigned", record, now)])
    return WitnessResult(
        party, "cosigned", checkpoint.size, checkpoint.root_hash, previous_size, verdict.detail
    )


def _inconsistent(
    fed: Federation, party: str, verdict: Verdict, previous: Cosigned | None, now: datetime
) -> WitnessResult:
    checkpoint = verdict.checkpoint.checkpoint
    description = (
        f"ledger of {party} is inconsistent with the checkpoint this node cosigned: "
        f"{verdict.detail}"
    )
    conflict = {"size": checkpoint.size, "root_hash": _b64(checkpoint.root_hash)}
    with fed.node.store.write() as s:
        meta = NodeMeta(s)
        known = json.loads(meta.get(CONFLICTS_KEY) or "{}")
        seen = known.get(party)
        if isinstance(seen, dict) and {k: seen.get(k) for k in conflict} == conflict:
            # The same conflicting checkpoint again: reported, but recorded only once.
            incident_id = str(seen.get("incident_id"))
            return WitnessResult(
                party, "inconsistent", checkpoint.size, checkpoint.root_hash,
                previous.size if previous else None, verdict.detail, incident_id,
            )  # fmt: skip
        row = Incidents(s).add(
            direction="local",
            origin_item_id="ledger",
            item_id=None,
            reporter=party,
            originator=fed.party,
            kind="compromise",
            description=description,
            created_at=now,
        )
        s.flush()
        record = {
            "peer": party,
            "incident_id": row.id,
            "detail": verdict.detail,
            "cosigned_note": previous.note if previous else None,
            "conflicting_note": verdict.checkpoint.text,
            "size": checkpoint.size,
            "root_hash": _b64(checkpoint.root_hash),
        }
        append_entries(s, [NewEntry("witness.inconsistent", record, now)])
        known[party] = {**conflict, "incident_id": row.id}
        meta.set(CONFLICTS_KEY, json.dumps(known, sort_keys=True))
        incident_id = row.id
    return WitnessResult(
        party,
        "inconsistent",
        checkpoint.size,
        checkpoint.root_hash,
        previous.size if previous else None,
        verdict.detail,
        incident_id,
    )
