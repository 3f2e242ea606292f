"""Federation endpoints: the signed envelope intake, and the users' side of sharing."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict

from gsomia.api.app import Actor, PersonIn, item_json
from gsomia.core.errors import EnvelopeError, GsomiaError, InputError
from gsomia.core.release import Person
from gsomia.crypto.httpsig import verify_request
from gsomia.node.federation import ENDPOINT, Federation
from gsomia.store.federation import Peer


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


def federation_router(fed: Federation) -> APIRouter:
    router = APIRouter()
    node = fed.node

    @router.post(ENDPOINT, tags=["federation"])
    async def envelopes(request: Request) -> dict[str, Any]:
        """Node-to-node intake: an RFC 9421-signed request carrying one envelope.

        Every refusal is recorded (with its nonce, so a refused request cannot be replayed)
        before its problem+json goes back.
        """
        body = await request.body()
        url, headers = str(request.url), dict(request.headers)

        def intake() -> dict[str, Any]:
            # All of it in the thread pool: verification and key look-ups must not stall the
            # event loop that every other request shares.
            verified = None
            envelope: Any = None
            try:
                verified = verify_request(
                    method="POST", url=url, headers=headers, body=body,
                    pinned=fed.pinned_signing_key,
                )  # fmt: skip
                try:
                    envelope = json.loads(body)
                except ValueError as e:
                    raise EnvelopeError("the request body is not JSON") from e
                return fed.receive(verified.party, envelope, verified)
            except GsomiaError as e:
                fed.record_refusal(verified, envelope, e)
                raise

        receipt: dict[str, Any] = await run_in_threadpool(intake)
        return receipt

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

    @router.post("/api/v1/items/{item_id}/shares", status_code=201, tags=["federation"])
    def share(actor: Actor, item_id: str, body: ShareIn) -> dict[str, Any]:
        person = None
        if body.person is not None:
            recipient = node.registry.party(body.recipient).code
            clearance = body.person.clearance
            person = Person(
                clearance=node.registry.level(recipient, clearance).id if clearance else None,
                need_to_know=frozenset(node.registry.topic(t).id for t in body.person.need_to_know),
                compartments=frozenset(c.upper() for c in body.person.compartments),
            )
        return fed.share(actor, item_id, body.recipient, person=person).to_dict()

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
