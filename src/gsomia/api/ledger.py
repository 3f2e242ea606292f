"""Ledger endpoints: checkpoints, proofs and cosignatures, for users and for peers.

Users (bearer token): ``GET /api/v1/ledger/checkpoint``, ``/proofs/inclusion/{index}?size=``,
``/proofs/consistency?old=&new=``, ``/cosignatures`` (the peers' checkpoints this node last
cosigned) and ``/cosignatures/received`` (the witnesses' cosignatures of this node's checkpoints).

Peers (an RFC 9421 request signature by a pinned key, as the envelope intake; the nonce is
remembered so that a request cannot be replayed): ``GET /federation/v1/checkpoint`` (the latest
signed checkpoint, a fresh one signed first if the log grew), ``GET
/federation/v1/consistency?old=&new=``, ``POST /federation/v1/cosignatures`` (a witness sends
back its cosignature of one of this node's checkpoints: kept if it verifies with the witness's
pinned key and the checkpoint is one this node signed), ``GET /federation/v1/cosignatures`` (the
cosignatures kept) and ``GET /federation/v1/witnessed/{party}`` (the latest checkpoint of
``party`` this node cosigned, so that witnesses can compare notes).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse

from gsomia.api.app import Actor
from gsomia.core.canonical import b64
from gsomia.core.errors import InputError
from gsomia.crypto.httpsig import VerifiedRequest
from gsomia.ledger.checkpoint import NoteVerifier
from gsomia.ledger.log import Ledger, StoredCheckpoint
from gsomia.ledger.witness import (
    CHECKPOINT_PATH,
    CONSISTENCY_PATH,
    COSIGNATURES_PATH,
    NOTE_MEDIA_TYPE,
    WITNESSED_PATH,
    cosignatures,
    cosigned_of,
    ledger_origin,
)
from gsomia.node.federation import Federation
from gsomia.node.service import _require
from gsomia.store.records import Role

Size = Annotated[int, Query(ge=0)]
Limit = Annotated[int, Query(ge=1, le=500)]


def ledger_router(fed: Federation) -> APIRouter:
    router = APIRouter()
    ledger = Ledger(fed.node.store)
    origin = ledger_origin(fed.party)

    def fresh_checkpoint() -> StoredCheckpoint:
        """The latest signed checkpoint, after signing one of the whole log if it grew."""
        latest = ledger.latest_checkpoint()
        size, root = ledger.head()
        if latest is not None and latest.size == size and latest.root_hash == root:
            return latest
        return ledger.checkpoint(fed.signing_key, origin, fed.node.now())

    def peer_only(request: Request, body: bytes = b"") -> VerifiedRequest:
        return fed.verified_request(request.method, str(request.url), dict(request.headers), body)

    def received(witness: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
        """A page of the witnesses' cosignatures of this node's checkpoints, newest first."""
        before = None
        if cursor is not None:
            if not cursor.isdigit():
                raise InputError("cursor: not a cursor of this list")
            before = int(cursor)
        rows = ledger.cosignatures(witness=witness, limit=limit, before=before)
        return {
            "items": [r.to_dict() for r in rows],
            "total": ledger.cosignature_count(witness=witness),
            "next_cursor": str(rows[-1].id) if len(rows) == limit else None,
        }

    # -- for users

    @router.get("/api/v1/ledger/checkpoint", tags=["ledger"])
    def checkpoint(actor: Actor) -> dict[str, Any]:
        """The latest checkpoint this node signed (null if it has signed none)."""
        _require(actor, Role.AUDITOR, Role.ADMIN, Role.RELEASE_AUTHORITY)
        size, _ = ledger.head()
        latest = ledger.latest_checkpoint()
        return {
            "log_size": size,
            "checkpoint": latest.to_dict() if latest is not None else None,
        }

    @router.get("/api/v1/ledger/proofs/inclusion/{index}", tags=["ledger"])
    def inclusion(actor: Actor, index: int, size: Size | None = None) -> dict[str, Any]:
        _require(actor, Role.AUDITOR, Role.ADMIN, Role.RELEASE_AUTHORITY)
        proof = ledger.inclusion_proof(index, size)
        return {**proof.to_dict(), "root_hash": b64(ledger.root(proof.size))}

    @router.get("/api/v1/ledger/proofs/consistency", tags=["ledger"])
    def consistency(actor: Actor, old: Size, new: Size | None = None) -> dict[str, Any]:
        _require(actor, Role.AUDITOR, Role.ADMIN, Role.RELEASE_AUTHORITY)
        return ledger.consistency_proof(old, new).to_dict()

    @router.get("/api/v1/ledger/cosignatures", tags=["ledger"])
    def held(actor: Actor) -> dict[str, Any]:
        """The peers' checkpoints this node last cosigned, with its cosignature."""
        _require(actor, Role.AUDITOR, Role.ADMIN, Role.RELEASE_AUTHORITY)
        rows = [c.to_dict() for c in cosignatures(fed)]
        return {"items": rows, "total": len(rows), "next_cursor": None}

    @router.get("/api/v1/ledger/cosignatures/received", tags=["ledger"])
    def received_by_users(
        actor: Actor, witness: str | None = None, limit: Limit = 100, cursor: str | None = None
    ) -> dict[str, Any]:
        """The witnesses' cosignatures of this node's checkpoints, as they sent them back."""
        _require(actor, Role.AUDITOR, Role.ADMIN, Role.RELEASE_AUTHORITY)
        return received(witness, limit, cursor)

    # -- for peers

    @router.get(CHECKPOINT_PATH, tags=["federation"], response_class=PlainTextResponse)
    async def peer_checkpoint(request: Request) -> PlainTextResponse:
        def answer() -> str:
            peer_only(request)
            return fresh_checkpoint().note

        note = await run_in_threadpool(answer)
        return PlainTextResponse(note, media_type=NOTE_MEDIA_TYPE)

    @router.get(CONSISTENCY_PATH, tags=["federation"])
    async def peer_consistency(request: Request, old: Size, new: Size) -> dict[str, Any]:
        def answer() -> dict[str, Any]:
            peer_only(request)
            return ledger.consistency_proof(old, new).to_dict()

        proof: dict[str, Any] = await run_in_threadpool(answer)
        return proof

    @router.post(COSIGNATURES_PATH, tags=["federation"])
    async def peer_cosignature(request: Request) -> dict[str, Any]:
        """A witness's cosignature of one of this node's checkpoints (the note, as text)."""
        body = await request.body()

        def answer() -> dict[str, Any]:
            witness = peer_only(request, body).party
            key = fed.pinned_signing_key(witness)
            if key is None:  # removed since the request was verified
                raise InputError(f"{witness} is no longer a peer")
            kept, new = ledger.keep_cosignature(
                body,
                log_key=NoteVerifier(origin, fed.signing_key.public_key),
                witness=witness,
                witness_key=NoteVerifier(ledger_origin(witness), key),
                at=fed.node.now(),
            )
            return {**kept.to_dict(), "new": new}

        kept: dict[str, Any] = await run_in_threadpool(answer)
        return kept

    @router.get(COSIGNATURES_PATH, tags=["federation"])
    async def peer_cosignatures(
        request: Request, witness: str | None = None, limit: Limit = 100, cursor: str | None = None
    ) -> dict[str, Any]:
        def answer() -> dict[str, Any]:
            peer_only(request)
            return received(witness, limit, cursor)

        page: dict[str, Any] = await run_in_threadpool(answer)
        return page

    @router.get(WITNESSED_PATH + "/{party}", tags=["federation"])
    async def peer_witnessed(request: Request, party: str) -> dict[str, Any]:
        """The latest checkpoint of ``party`` this node cosigned (null if none)."""

        def answer() -> dict[str, Any]:
            peer_only(request)
            held = cosigned_of(fed, party.upper())
            return {"peer": party.upper(), "cosigned": held.to_dict() if held else None}

        found: dict[str, Any] = await run_in_threadpool(answer)
        return found

    return router
