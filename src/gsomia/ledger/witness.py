"""Witnessing: a node checks and cosigns its peers' ledger checkpoints.

For each peer, :func:`witness_peers` fetches the peer's latest signed checkpoint (a signed HTTP
GET of ``/federation/v1/checkpoint``), verifies the peer's signature with the key pinned for it,
and, if it cosigned an earlier checkpoint of that peer, fetches a consistency proof from that one
(``/federation/v1/consistency``) and verifies it. It then compares notes: it asks each of its
other peers for the latest checkpoint of that peer they cosigned (``GET
/federation/v1/witnessed/{party}``) and checks that it and the one it was shown are consistent
(the same root at the same size, else a consistency proof from the peer between the two). Only
then does it cosign the checkpoint with its own key, remember it (``node_meta``, key
:data:`META_KEY`: per peer, the last cosigned size, root and note) and append a
``witness.cosigned`` ledger entry, in one transaction; and it sends the cosignature back to the
peer (``POST /federation/v1/cosignatures``), which keeps it.

Two checkpoints of one peer that cannot both be true (the same size with another root, a smaller
size, or a consistency proof that fails) mean a split view or a rewritten history: the run
reports it, records a ``compromise`` incident and a ``witness.inconsistent`` ledger entry (with
both signed notes as evidence; the same conflict seen again is reported but not recorded twice),
and keeps the last good checkpoint as the reference. Whether the other checkpoint is the one this
node cosigned before (a rewritten history, or a split view across time) or one another witness
cosigned (a split view between witnesses), both carry the peer's own signature: the peer signed
two histories.

The verification itself (:func:`assess`, :func:`cross_check`) is pure: notes in, a verdict out.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import httpx

from gsomia.core.canonical import b64
from gsomia.core.errors import (
    GsomiaError,
    InvalidProofError,
    LedgerRangeError,
    PeerUnreachableError,
)
from gsomia.crypto.httpsig import sign_request
from gsomia.ledger import merkle
from gsomia.ledger.checkpoint import (
    Checkpoint,
    NoteVerifier,
    VerifiedCheckpoint,
    ledger_origin,
    open_checkpoint,
)
from gsomia.ledger.log import NewEntry, append_entries
from gsomia.node.federation import Federation
from gsomia.store.federation import Incidents
from gsomia.store.repositories import NodeMeta

__all__ = [
    "CHECKPOINT_PATH",
    "CONFLICTS_KEY",
    "CONSISTENCY_PATH",
    "COSIGNATURES_PATH",
    "META_KEY",
    "NOTE_MEDIA_TYPE",
    "WITNESSED_PATH",
    "Cosigned",
    "Verdict",
    "WitnessResult",
    "assess",
    "cosignatures",
    "cosigned_of",
    "cross_check",
    "ledger_origin",
    "witness_peers",
]

CHECKPOINT_PATH = "/federation/v1/checkpoint"
CONSISTENCY_PATH = "/federation/v1/consistency"
COSIGNATURES_PATH = "/federation/v1/cosignatures"  # POST: a witness's cosignature comes back
WITNESSED_PATH = "/federation/v1/witnessed"  # GET .../{party}: what this node cosigned of it
META_KEY = "ledger.witness.cosigned"
CONFLICTS_KEY = "ledger.witness.conflicts"  # per peer: the last conflicts recorded
KEPT_CONFLICTS = 16
NOTE_MEDIA_TYPE = "text/plain; charset=utf-8"
OUT_OF_RANGE = LedgerRangeError.code  # a peer's answer: it has no tree of that size

ProofFetcher = Callable[[int, int], Sequence[bytes]]


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
            "root_hash": b64(self.root_hash),
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


def cross_check(mine: Checkpoint, theirs: Checkpoint, fetch_proof: ProofFetcher) -> str | None:
    """Whether two checkpoints of one log can both be true; what is wrong if not, else None.

    ``mine`` is the checkpoint the log showed this node, ``theirs`` one another witness
    cosigned. The same size must have the same root; otherwise ``fetch_proof(smaller, larger)``
    (from the log) must prove the smaller a prefix of the larger. As in :func:`assess`, a
    malformed or failing proof (:class:`InvalidProofError`) counts against the log and any other
    error propagates.
    """
    if mine.size == theirs.size:
        if mine.root_hash != theirs.root_hash:
            return f"two different roots signed for size {mine.size}"
        return None
    old, new = (mine, theirs) if mine.size < theirs.size else (theirs, mine)
    if old.size == 0:
        return None
    try:
        path = fetch_proof(old.size, new.size)
        merkle.verify_consistency(old.size, new.size, old.root_hash, new.root_hash, path)
    except InvalidProofError as e:
        return f"size {new.size} does not extend size {old.size}: {e.message}"
    return None


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


def cosigned_of(fed: Federation, party: str) -> Cosigned | None:
    """The last checkpoint of ``party`` this node cosigned, if any."""
    with fed.node.store.read() as s:
        return _load(NodeMeta(s)).get(party)


# -- the run --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WitnessResult:
    """One peer's outcome: ``cosigned``, ``inconsistent`` or ``error``.

    ``compared`` names the other witnesses whose cosigned checkpoint of the peer was checked
    against this one, ``seen_by`` the one whose checkpoint contradicts it (a split view), and
    ``cosignature_sent`` whether the peer took the cosignature back (None: not cosigned).
    """

    peer: str
    status: str
    size: int | None
    root_hash: bytes | None
    previous_size: int | None
    detail: str
    incident_id: str | None = None
    compared: tuple[str, ...] = ()
    seen_by: str | None = None
    cosignature_sent: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "status": self.status,
            "size": self.size,
            "root_hash": b64(self.root_hash) if self.root_hash is not None else None,
            "previous_size": self.previous_size,
            "detail": self.detail,
            "incident_id": self.incident_id,
            "compared_with": list(self.compared),
            "seen_by": self.seen_by,
            "cosignature_sent": self.cosignature_sent,
        }


def _signed_get(fed: Federation, client: httpx.Client, url: str, **params: Any) -> httpx.Response:
    request = client.build_request("GET", url, params=params or None)
    sign_request(request, b"", party=fed.party, key=fed.signing_key)
    response = client.send(request)
    if response.status_code != 200:
        if _problem_code(response) == OUT_OF_RANGE:
            raise LedgerRangeError(f"GET {url}: {response.text[:200]}")
        raise PeerUnreachableError(f"GET {url}: HTTP {response.status_code} {response.text[:200]}")
    return response


def _problem_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body.get("code")) if isinstance(body, dict) else None


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
    """Fetch, verify and cosign each active peer's latest checkpoint; report inconsistencies.

    Every other active peer is asked for its cosigned checkpoint of each peer witnessed.
    """
    own = client or httpx.Client(timeout=timeout)
    try:
        active = [p for p in fed.peers() if p.removed_at is None]
        chosen = active if parties is None else [p for p in active if p.party in parties]
        bases = {p.party: p.url.rstrip("/") for p in active}
        return [_Witnessing(fed, own, p.party, bases).run() for p in chosen]
    finally:
        if client is None:
            own.close()


def _message(e: Exception) -> str:
    return e.message if isinstance(e, GsomiaError) else f"{type(e).__name__}: {e}"


class _Witnessing:
    """One peer witnessed: fetch, assess, compare notes, cosign, send the cosignature back."""

    def __init__(
        self, fed: Federation, client: httpx.Client, party: str, bases: dict[str, str]
    ) -> None:
        self.fed, self.client, self.party = fed, client, party
        self.base = bases[party]
        self.others = {p: b for p, b in bases.items() if p not in (party, fed.party)}

    def fetch_proof(self, old: int, new: int) -> list[bytes]:
        # A transport failure or an error status is an error of this run (nothing is recorded);
        # a proof that is malformed or does not verify is evidence against the peer, and so is
        # its answer that it has no tree of a size it signed a checkpoint of (both sizes asked
        # for are: its log shrank or forked).
        try:
            response = _signed_get(
                self.fed, self.client, self.base + CONSISTENCY_PATH, old=old, new=new
            )
        except LedgerRangeError:
            raise InvalidProofError(
                f"the peer answers that it has no tree of size {new} to prove from size {old}, "
                f"though it signed a checkpoint of size {new}"
            ) from None
        try:
            body = response.json()
        except ValueError:
            raise InvalidProofError("the peer's consistency proof is not JSON") from None
        return _proof_path(body, old, new)

    def run(self) -> WitnessResult:
        fed, party = self.fed, self.party
        key = fed.pinned_signing_key(party)
        if key is None:
            return WitnessResult(party, "error", None, None, None, "no pinned key")
        log_key = NoteVerifier(ledger_origin(party), key)
        previous = cosigned_of(fed, party)
        previous_size = previous.size if previous else None
        try:
            note = _signed_get(fed, self.client, self.base + CHECKPOINT_PATH).text
            verdict = assess(note, log_key, previous, self.fetch_proof)
        except (GsomiaError, httpx.HTTPError) as e:
            return WitnessResult(party, "error", None, None, previous_size, _message(e))
        checkpoint = verdict.checkpoint.checkpoint
        now = fed.node.now()
        if not verdict.consistent:
            return _inconsistent(
                fed,
                party,
                verdict.checkpoint,
                verdict.detail,
                f"ledger of {party} is inconsistent with the checkpoint this node cosigned: "
                f"{verdict.detail}",
                {"cosigned_note": previous.note if previous else None},
                {
                    "against_size": previous_size,
                    "against_root_hash": b64(previous.root_hash) if previous else None,
                },
                previous_size,
                now,
            )
        compared: list[str] = []
        remarks: list[str] = []
        for other, base in sorted(self.others.items()):
            try:
                theirs = self.their_checkpoint(other, base, log_key)
            except (GsomiaError, httpx.HTTPError) as e:
                remarks.append(f"could not compare notes with {other}: {_message(e)}")
                continue
            if theirs is None:
                continue  # it has not cosigned this peer yet
            try:
                conflict = cross_check(checkpoint, theirs.checkpoint, self.fetch_proof)
            except (GsomiaError, httpx.HTTPError) as e:
                # The peer could not prove two of its own checkpoints consistent: not cosigned.
                detail = f"comparing notes with {other}: {_message(e)}"
                return WitnessResult(
                    party, "error", checkpoint.size, checkpoint.root_hash, previous_size, detail,
                    compared=(*compared, other),
                )  # fmt: skip
            compared.append(other)
            if conflict is not None:
                return self.split_view(verdict, other, theirs, conflict, compared, previous_size)
        return self.cosign(verdict, previous_size, compared, remarks, now)

    def their_checkpoint(
        self, other: str, base: str, log_key: NoteVerifier
    ) -> VerifiedCheckpoint | None:
        """The latest checkpoint of the peer that ``other`` cosigned, checked (None: none)."""
        other_key = self.fed.pinned_signing_key(other)
        if other_key is None:
            raise PeerUnreachableError(f"no key is pinned for {other}")
        response = _signed_get(self.fed, self.client, f"{base}{WITNESSED_PATH}/{self.party}")
        try:
            body = response.json()
        except ValueError:
            raise PeerUnreachableError(f"{other}'s answer is not JSON") from None
        held = body.get("cosigned", False) if isinstance(body, dict) else False
        if held is None:
            return None
        if not isinstance(held, dict) or not isinstance(held.get("note"), str):
            raise PeerUnreachableError(f"{other}'s answer is not a cosigned checkpoint")
        witness = NoteVerifier(ledger_origin(other), other_key)
        # The peer's own signature is the evidence; the other witness's says it vouches for it.
        return open_checkpoint(
            held["note"], log_key, cosigners=[witness], min_cosigners=1, origin=log_key.name
        )

    def split_view(
        self,
        verdict: Verdict,
        other: str,
        theirs: VerifiedCheckpoint,
        conflict: str,
        compared: list[str],
        previous_size: int | None,
    ) -> WitnessResult:
        party, mine = self.party, verdict.checkpoint.checkpoint
        detail = (
            f"split view: the checkpoint of size {mine.size} it showed this node and the one of "
            f"size {theirs.checkpoint.size} {other} cosigned: {conflict}"
        )
        result = _inconsistent(
            self.fed,
            party,
            verdict.checkpoint,
            detail,
            f"ledger of {party} shows different histories to different witnesses: {detail}",
            {"kind": "split-view", "seen_by": other, "their_note": theirs.text},
            {"split_view_with": other},
            previous_size,
            self.fed.node.now(),
        )
        return replace(result, compared=tuple(compared), seen_by=other)

    def cosign(
        self,
        verdict: Verdict,
        previous_size: int | None,
        compared: list[str],
        remarks: list[str],
        now: datetime,
    ) -> WitnessResult:
        fed, party = self.fed, self.party
        checkpoint = verdict.checkpoint.checkpoint
        cosigned = verdict.checkpoint.note.cosign(ledger_origin(fed.party), fed.signing_key)
        remembered = Cosigned(party, checkpoint.size, checkpoint.root_hash, cosigned.to_text(),
                              now.isoformat())  # fmt: skip
        with fed.node.store.write() as s:
            meta = NodeMeta(s)
            held = _load(meta)
            newer = held.get(party)
            if newer is None or newer.size <= checkpoint.size:  # a concurrent run cosigned later
                held[party] = remembered
                meta.set(META_KEY, json.dumps({p: c.to_dict() for p, c in held.items()},
                                              sort_keys=True))  # fmt: skip
            record = {**remembered.to_dict(), "previous_size": previous_size}
            append_entries(s, [NewEntry("witness.cosigned", record, now)])
        refused = self.send_back(remembered.note)
        if refused is not None:
            remarks.append(f"the cosignature was not taken back: {refused}")
        detail = "; ".join([verdict.detail, *remarks])
        return WitnessResult(
            party, "cosigned", checkpoint.size, checkpoint.root_hash, previous_size, detail,
            compared=tuple(compared), cosignature_sent=refused is None,
        )  # fmt: skip

    def send_back(self, note: str) -> str | None:
        """POST the cosigned note to the peer; None once it has kept it, else why not."""
        body = note.encode("utf-8")
        request = self.client.build_request(
            "POST",
            self.base + COSIGNATURES_PATH,
            content=body,
            headers={"content-type": NOTE_MEDIA_TYPE},
        )
        sign_request(request, body, party=self.fed.party, key=self.fed.signing_key)
        try:
            response = self.client.send(request)
        except httpx.HTTPError as e:
            return _message(e)
        if response.status_code != 200:
            return f"HTTP {response.status_code} {response.text[:200]}"
        return None


def _conflicts(known: dict[str, Any], party: str) -> list[dict[str, Any]]:
    seen = known.get(party)
    if isinstance(seen, dict):  # as kept before split views were compared: one per peer
        return [seen]
    return [c for c in seen if isinstance(c, dict)] if isinstance(seen, list) else []


def _inconsistent(
    fed: Federation,
    party: str,
    shown: VerifiedCheckpoint,
    detail: str,
    description: str,
    evidence: dict[str, Any],
    conflict: dict[str, Any],
    previous_size: int | None,
    now: datetime,
) -> WitnessResult:
    """Report (and, the first time, record) a checkpoint of ``party`` that contradicts another.

    ``evidence`` goes into the ledger entry beside the conflicting note. ``conflict`` names
    what it contradicts (the checkpoint this node cosigned, or the witness that was shown
    another history): the same conflict seen again is reported with its first incident but not
    recorded again, even when the peer's log has grown since (each run would otherwise record
    a new incident while the peer stays forked).
    """
    checkpoint = shown.checkpoint

    def result(incident_id: str) -> WitnessResult:
        return WitnessResult(
            party, "inconsistent", checkpoint.size, checkpoint.root_hash, previous_size, detail,
            incident_id,
        )  # fmt: skip

    with fed.node.store.write() as s:
        meta = NodeMeta(s)
        known = json.loads(meta.get(CONFLICTS_KEY) or "{}")
        recorded = _conflicts(known, party)
        for seen in recorded:
            if {k: v for k, v in seen.items() if k != "incident_id"} == conflict:
                # The same conflict again: reported, but recorded only once.
                return result(str(seen.get("incident_id")))
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
            "detail": detail,
            **evidence,
            "conflicting_note": shown.text,
            "size": checkpoint.size,
            "root_hash": b64(checkpoint.root_hash),
        }
        append_entries(s, [NewEntry("witness.inconsistent", record, now)])
        known[party] = [*recorded, {**conflict, "incident_id": row.id}][-KEPT_CONFLICTS:]
        meta.set(CONFLICTS_KEY, json.dumps(known, sort_keys=True))
        incident_id = row.id
    return result(incident_id)
