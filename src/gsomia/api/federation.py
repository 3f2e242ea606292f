"""Federation endpoints: the signed envelope intake, and the users' side of sharing."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gsomia.api.app import Actor, PersonIn, item_json
from gsomia.core.errors import (
    AuthenticationError,
    EnvelopeError,
    GsomiaError,
    InputError,
    PayloadTooLargeError,
)
from gsomia.core.release import Person
from gsomia.crypto.httpsig import VerifiedRequest, verify_request
from gsomia.node.federation import (
    BATCH_ENDPOINT,
    ENDPOINT,
    MAX_BATCH_ENVELOPES,
    MAX_ITEMS_PER_RELEASE,
    Federation,
)
from gsomia.store.federation import Peer, Share

_bearer = HTTPBearer(auto_error=False)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PeerIn(_In):
    party: str
    url: str
    signing_key: str
    encryption_key: str


class ShareIn(_In):
    recipient: str
    person: PersonIn | None = None


class ShareSetIn(_In):
    recipient: str
    items: list[str] = Field(min_length=1, max_length=MAX_ITEMS_PER_RELEASE)
    person: PersonIn | None = None

    @field_validator("items")
    @classmethod
    def _each_once(cls, items: list[str]) -> list[str]:
        twice = sorted(i for i, n in Counter(items).items() if n > 1)
        if twice:
            raise ValueError(f"{', '.join(twice)} listed more than once")
        return items


class ConsentAnswerIn(_In):
    reason: str = ""


class IncidentIn(_In):
    kind: str
    description: str
    follow_up_of: str | None = None


class NoticeIn(_In):
    kind: str
    note: str = ""


def peer_json(peer: Peer) -> dict[str, Any]:
    return {
        "party": peer.party,
        "url": peer.url,
        "signing_key": peer.signing_key,
        "encryption_key": peer.encryption_key,
        "added_at": peer.added_at.isoformat(),
        "removed_at": peer.removed_at.isoformat() if peer.removed_at else None,
    }


def _json(value: Any) -> bytes:
    """Receipts and batch answers are plain JSON already: encoded once, not walked again by
    FastAPI's encoder."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def federation_router(fed: Federation) -> APIRouter:
    router = APIRouter()
    node = fed.node

    def verified_body(
        url: str, headers: dict[str, str], body: bytes
    ) -> tuple[VerifiedRequest, Any]:
        """The request's verified signer and its parsed body; a refusal is recorded (with the
        nonce, so a refused request cannot be replayed) before it is raised."""
        verified = None
        try:
            verified = verify_request(
                method="POST", url=url, headers=headers, body=body, pinned=fed.pinned_signing_key
            )
            try:
                return verified, json.loads(body)
            except ValueError as e:
                raise EnvelopeError("the request body is not JSON") from e
        except GsomiaError as e:
            fed.record_refusal(verified, None, e)
            raise

    @router.post(ENDPOINT, tags=["federation"])
    async def envelopes(request: Request) -> Response:
        """Node-to-node intake: an RFC 9421-signed request carrying one envelope.

        Every refusal is recorded (with its nonce, so a refused request cannot be replayed)
        before its problem+json goes back.
        """
        body = await request.body()
        url, headers = str(request.url), dict(request.headers)

        def intake() -> bytes:
            # All of it in the thread pool: verification and key look-ups must not stall the
            # event loop that every other request shares.
            verified, envelope = verified_body(url, headers, body)
            return _json(fed.receive(verified.party, envelope, verified))

        return Response(await run_in_threadpool(intake), media_type="application/json")

    @router.post(BATCH_ENDPOINT, tags=["federation"])
    async def envelope_batch(request: Request) -> Response:
        """Node-to-node intake of several envelopes in one RFC 9421-signed request
        (``{"envelopes": [...]}``): one nonce and one transaction for all, and the answer
        ``{"results": [...]}`` holds, in order, ``{"receipt": ...}`` or ``{"problem": ...}`` for
        each envelope, exactly as it would have been answered alone."""
        body = await request.body()
        url, headers = str(request.url), dict(request.headers)

        def intake() -> bytes:
            verified, parsed = verified_body(url, headers, body)
            found = parsed.get("envelopes") if isinstance(parsed, dict) else None
            if not isinstance(found, list) or not found:
                error = EnvelopeError('a batch is {"envelopes": [one or more envelopes]}')
                fed.record_refusal(verified, None, error)
                raise error
            if len(found) > MAX_BATCH_ENVELOPES:
                too_many = PayloadTooLargeError(
                    f"a batch holds at most {MAX_BATCH_ENVELOPES} envelopes"
                )
                fed.record_refusal(verified, None, too_many)
                raise too_many
            return _json({"results": fed.receive_batch(verified.party, found, verified)})

        return Response(await run_in_threadpool(intake), media_type="application/json")

    # -- peers --

    @router.get("/api/v1/peers", tags=["federation"])
    def peers(actor: Actor) -> dict[str, Any]:
        rows = [peer_json(p) for p in fed.peers()]
        return {"items": rows, "total": len(rows), "next_cursor": None}

    @router.post("/api/v1/peers", status_code=201, tags=["federation"])
    def add_peer(actor: Actor, body: PeerIn) -> dict[str, Any]:
        peer = fed.add_peer(
            body.party,
            body.url,
            signing_key=body.signing_key,
            encryption_key=body.encryption_key,
            actor=actor,
        )
        return peer_json(peer)

    @router.delete("/api/v1/peers/{party}", tags=["federation"])
    def remove_peer(actor: Actor, party: str) -> dict[str, Any]:
        return peer_json(fed.remove_peer(party, actor))

    # -- shares --

    def person_for(given: PersonIn | None) -> Callable[[str], Person] | None:
        """The recipient-side person a decision is for, in the recipient's own terms."""
        if given is None:
            return None

        def person(recipient: str) -> Person:
            clearance = given.clearance
            return Person(
                clearance=node.registry.level(recipient, clearance).id if clearance else None,
                need_to_know=frozenset(node.registry.topic(t).id for t in given.need_to_know),
                compartments=frozenset(c.upper() for c in given.compartments),
            )

        return person

    def token_of(creds: HTTPAuthorizationCredentials | None) -> str:
        if creds is None or not creds.credentials:
            raise AuthenticationError("a bearer token is required")
        return creds.credentials

    @router.post("/api/v1/items/{item_id}/shares", status_code=201, tags=["federation"])
    async def share(
        item_id: str,
        body: ShareIn,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Response:
        """Share an item (group-committed: no thread of the pool is held while it waits; the
        bearer token is checked in the share's own transaction)."""
        future = fed.share_soon(token_of(creds), item_id, body.recipient, person_for(body.person))
        done: Share = await asyncio.wrap_future(future)
        return Response(_json(done.to_dict()), status_code=201, media_type="application/json")

    @router.post("/api/v1/shares", tags=["federation"])
    async def share_set(
        body: ShareSetIn,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Response:
        """Share a set of items with one recipient in one request: a result per item, in order,
        each its share (queued, awaiting consent or refused) or its problem. The token, the
        roles and the recipient are checked before anything is shared; if they fail, nothing
        is. The set is written in chunks, other shares committing between them."""
        outcomes: list[Share | GsomiaError] = []
        acts = fed.share_set(token_of(creds), body.items, body.recipient, person_for(body.person))
        for future in acts:
            try:
                done: list[Share | GsomiaError] = await asyncio.wrap_future(future)
                outcomes += done
            except GsomiaError as e:
                if not outcomes:
                    raise  # the first chunk: nothing was shared
                # The token revoked (or the store failing) part way: what was shared stays
                # shared, the rest is not, each item saying why.
                outcomes += [e] * (len(body.items) - len(outcomes))
                break
        results: list[dict[str, Any]] = []
        counts = dict.fromkeys(("queued", "awaiting-consent", "refused", "problem"), 0)
        for item_id, outcome in zip(body.items, outcomes, strict=True):
            if isinstance(outcome, GsomiaError):
                results.append({"item_id": item_id, "problem": outcome.to_problem()})
                counts["problem"] += 1
            else:
                results.append({"item_id": item_id, "share": outcome.to_dict()})
                counts[outcome.status] += 1
        recipient = node.registry.party(body.recipient).code
        answer = {"recipient": recipient, "results": results, "counts": counts}
        return Response(_json(answer), media_type="application/json")

    @router.get("/api/v1/shares", tags=["federation"])
    def shares(actor: Actor, item_id: str | None = None) -> dict[str, Any]:
        rows = [s.to_dict() for s in fed.shares(actor, item_id=item_id)]
        return {"items": rows, "total": len(rows), "next_cursor": None}

    @router.get("/api/v1/shares/{share_id}", tags=["federation"])
    def get_share(actor: Actor, share_id: str) -> dict[str, Any]:
        return fed.get_share(actor, share_id).to_dict()

    # -- consents asked of us as originator --

    @router.get("/api/v1/consent-requests", tags=["federation"])
    def consent_requests(actor: Actor, status: str | None = None) -> dict[str, Any]:
        rows = fed.consent_requests(actor, status=status)
        return {"items": rows, "total": len(rows), "next_cursor": None}

    @router.post("/api/v1/consent-requests/{request_id}/grant", tags=["federation"])
    def grant(actor: Actor, request_id: str, body: ConsentAnswerIn) -> dict[str, Any]:
        return fed.answer_consent(actor, request_id, grant=True, reason=body.reason)

    @router.post("/api/v1/consent-requests/{request_id}/refuse", tags=["federation"])
    def refuse(actor: Actor, request_id: str, body: ConsentAnswerIn) -> dict[str, Any]:
        return fed.answer_consent(actor, request_id, grant=False, reason=body.reason)

    # -- incidents and notices --

    @router.post("/api/v1/items/{item_id}/incidents", status_code=201, tags=["federation"])
    def incident(actor: Actor, item_id: str, body: IncidentIn) -> dict[str, Any]:
        return fed.report_incident(
            actor,
            item_id,
            kind=body.kind,
            description=body.description,
            follow_up_of=body.follow_up_of,
        )

    @router.get("/api/v1/incidents", tags=["federation"])
    def incidents(actor: Actor) -> dict[str, Any]:
        rows = fed.incidents(actor)
        return {"items": rows, "total": len(rows), "next_cursor": None}

    @router.post("/api/v1/items/{item_id}/notices", status_code=201, tags=["federation"])
    def notice(actor: Actor, item_id: str, body: NoticeIn) -> dict[str, Any]:
        if body.kind == "reclassify":
            raise InputError("a reclassification is POST /items/{id}/reclassification")
        item = node.get_item(actor, item_id)
        sent = fed.notify_holders(actor, item, kind=body.kind, note=body.note)
        if body.kind in ("destroy", "retract"):
            return {"item": item_json(node, item), "notices": sent}
        return {"notices": sent}

    @router.get("/api/v1/notices", tags=["federation"])
    def notices(actor: Actor) -> dict[str, Any]:
        rows = fed.notices(actor)
        return {"items": rows, "total": len(rows), "next_cursor": None}

    return router
