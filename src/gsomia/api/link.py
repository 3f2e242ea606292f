"""Link endpoints: the peers' stream, producers' ingest, consoles' subscriptions, statistics.

Peers: ``WS /federation/v1/link``, opened with an RFC 9421-signed upgrade request (pinned key,
nonce remembered); then signed frames of updates one way, acknowledgements and consent
questions the other.

Users (bearer token):

- ``POST /api/v1/link/updates``: one update (the wire form, plus an optional ``sensor`` object
  that stays on this node) or ``{"updates": [...]}``; answers once they are durable.
- ``WS /api/v1/link/ingest``: the same for high-rate producers: send an update or a list,
  receive ``{"t": "a", "k": [[track, seq], ...]}`` once durable, or ``{"t": "r", ...}``.
- ``GET /api/v1/link/stream``: Server-Sent Events: first the state of the active tracks (or,
  with ``Last-Event-ID`` or ``?after=``, every update after that journal position), then each
  update as it arrives, all filtered by the user's clearance, need-to-know and compartments.
- ``GET /api/v1/link/tracks``, ``/tracks/{id}``, ``/stats``, ``/peers``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from gsomia.api.app import Actor
from gsomia.core.errors import GsomiaError, InputError, RequestSignatureError
from gsomia.node.link import LINK_PATH, LinkService, frame_problem
from gsomia.node.service import ITEM_ROLES, _require
from gsomia.store.records import Role

KEEPALIVE_SECONDS = 15.0


class _ServerConn:
    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.lock = asyncio.Lock()

    async def send_json(self, data: dict[str, Any]) -> None:
        async with self.lock:
            await self.ws.send_text(json.dumps(data, separators=(",", ":")))


def _sse(event: dict[str, Any]) -> str:
    data = json.dumps(event, separators=(",", ":"))
    return f"id: {event['pos']}\nevent: {event['kind']}\ndata: {data}\n\n"


def link_router(link: LinkService) -> APIRouter:
    router = APIRouter()
    fed = link.federation
    node = link.node

    @router.websocket(LINK_PATH)
    async def peer_stream(ws: WebSocket) -> None:
        headers = dict(ws.headers)
        url = str(ws.url)

        def check() -> str:
            return fed.verified_request("GET", url, headers).party

        try:
            party = await asyncio.to_thread(check)
        except GsomiaError as e:
            await ws.close(code=1008, reason=str(e)[:120])
            return
        key = fed.pinned_signing_key(party)
        await ws.accept()
        conn = _ServerConn(ws)
        link.attach(party, conn)
        try:
            while True:
                msg = json.loads(await ws.receive_text())
                kind = msg.get("t")
                if kind == "b":
                    body = str(msg["body"])
                    try:
                        sig = base64.b64decode(str(msg["sig"]), validate=True)
                    except (binascii.Error, ValueError):
                        sig = b""
                    if key is None or not key.is_valid_signature(sig, body.encode()):
                        raise RequestSignatureError(f"a link frame from {party} is not signed")
                    link.receive(party, json.loads(body), conn)
                elif kind == "c":
                    link.consent_answer(int(msg.get("id", 0)), bool(msg.get("granted")))
        except WebSocketDisconnect:
            pass
        except (GsomiaError, ValueError, KeyError, TypeError) as e:
            # A peer that sends what it should not loses its stream; it re-sends on reconnect.
            with_code = e.code if isinstance(e, GsomiaError) else "invalid-frame"
            await ws.close(code=1008, reason=f"{with_code}: {e}"[:120])
        finally:
            link.detach(party, conn)

    @router.post("/api/v1/link/updates", status_code=202, tags=["link"])
    async def ingest(actor: Actor, request: Request) -> dict[str, Any]:
        _require(actor, *ITEM_ROLES)
        try:
            data = json.loads(await request.body())
        except ValueError as e:
            raise InputError("the request body is not JSON") from e
        updates = data.get("updates") if isinstance(data, dict) and "updates" in data else [data]
        if not isinstance(updates, list) or not all(isinstance(u, dict) for u in updates):
            raise InputError("give one update object or {'updates': [objects]}")
        positions = [await link.ingest(actor, u) for u in updates]
        return {"accepted": len(positions), "positions": positions}

    @router.websocket("/api/v1/link/ingest")
    async def ingest_stream(ws: WebSocket) -> None:
        auth = ws.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else None
        try:
            actor = await asyncio.to_thread(node.authenticate, token)
            _require(actor, *ITEM_ROLES)
        except GsomiaError as e:
            await ws.close(code=1008, reason=str(e)[:120])
            return
        await ws.accept()
        conn = _ServerConn(ws)
        inflight: set[asyncio.Future[None]] = set()

        async def acknowledge(keys: list[Any], futures: list[asyncio.Future[int]]) -> None:
            # One answer for what one message brought, in its order, once all of it is durable.
            acked: list[Any] = []
            for key, future in zip(keys, futures, strict=True):
                try:
                    await future
                    acked.append(key)
                except GsomiaError as e:
                    await conn.send_json({"t": "r", "k": key, "problem": frame_problem(e)})
            if acked:
                await conn.send_json({"t": "a", "k": acked})

        try:
            while True:
                data = json.loads(await ws.receive_text())
                updates = data if isinstance(data, list) else [data]
                keys: list[Any] = []
                futures: list[asyncio.Future[int]] = []
                for update in updates:
                    update = update if isinstance(update, dict) else {}
                    keys.append([update.get("track_id"), update.get("seq")])
                    futures.append(link.offer(actor, update))
                task = asyncio.ensure_future(acknowledge(keys, futures))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
        except (WebSocketDisconnect, ValueError):
            pass

    @router.get("/api/v1/link/stream", tags=["link"])
    async def stream(
        actor: Actor,
        after: Annotated[int | None, Query(ge=0)] = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> StreamingResponse:
        start = after
        if last_event_id:
            try:
                start = int(last_event_id)
            except ValueError:
                raise InputError(
                    f"Last-Event-ID must be a journal position, not {last_event_id!r}"
                ) from None

        async def events() -> AsyncIterator[str]:
            source = link.subscribe(actor, start)
            pending: asyncio.Task[Any] | None = None
            try:
                while True:
                    if pending is None:
                        pending = asyncio.ensure_future(source.__anext__())
                    done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE_SECONDS)
                    if not done:
                        yield ": keep-alive\n\n"
                        continue
                    try:
                        event = pending.result()
                    except StopAsyncIteration:
                        return
                    pending = None
                    yield _sse(event)
            finally:
                if pending is not None:
                    pending.cancel()
                await source.aclose()

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # The handlers that read the service's in-memory state are async: they run on the event
    # loop that owns it, never in a worker thread.
    @router.get("/api/v1/link/tracks", tags=["link"])
    async def tracks(actor: Actor) -> dict[str, Any]:
        rows = link.active_tracks(actor)
        return {"items": rows, "total": len(rows), "next_cursor": None}

    @router.get("/api/v1/link/tracks/{track_id}", tags=["link"])
    async def track(actor: Actor, track_id: str) -> dict[str, Any]:
        rows = await asyncio.to_thread(link.track_history, actor, track_id)
        return {"items": rows, "total": len(rows), "next_cursor": None}

    @router.get("/api/v1/link/stats", tags=["link"])
    async def stats(actor: Actor) -> dict[str, Any]:
        return {
            "party": link.party,
            "under": list(link.under),
            "consents": {"asked": link.consents_asked, "granted": link.consents_granted},
            **link.stats.summary(),
        }

    @router.get("/api/v1/link/peers", tags=["link"])
    async def peers(actor: Actor) -> dict[str, Any]:
        _require(actor, Role.ADMIN, Role.AUDITOR, *ITEM_ROLES)
        rows = link.peer_status()
        return {"items": rows, "total": len(rows), "next_cursor": None}

    return router
