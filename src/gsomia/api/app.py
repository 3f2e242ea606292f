"""The node's HTTP API: FastAPI under ``/api/v1``, OpenAPI at ``/openapi.json``.

Every error is RFC 9457 ``application/problem+json`` with a stable ``code`` (docs/errors.md);
every list is paginated with ``limit`` and an opaque ``cursor``; every endpoint but ``/health``
needs a bearer token. Handlers are plain ``def``: FastAPI runs them in its thread pool, and the
store serialises SQLite writers. The busiest ones (create an item, view one, read its content)
are ``async``: they queue their act for the node's group commit and await it, so a request costs
no thread-pool hop and concurrent requests share one transaction and one commit.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from gsomia import __version__
from gsomia.core.errors import GsomiaError, InputError, PayloadTooLargeError
from gsomia.core.labels import SecurityLabel
from gsomia.core.markings import MarkingForm, render
from gsomia.core.release import Person
from gsomia.core.time import parse_instant, zone
from gsomia.node.federation import Federation
from gsomia.node.link import LinkOptions
from gsomia.node.service import Caller, ItemSearch, LabelInput, Node
from gsomia.store.records import Derivation, Disposition, Item, Page, Role, User

log = logging.getLogger(__name__)

_T = TypeVar("_T")
PROBLEM = "application/problem+json"
PREFIX = "/api/v1"


# -- wire models (pydantic only here, at the boundary) ----------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelIn(_In):
    classification: str = Field(description="A level of the node's scheme: id, native or romanized")
    topics: list[str] = Field(min_length=1)
    rel_to: list[str] = []
    compartments: list[str] = []
    originator_consent_required: bool = True


class ItemIn(_In):
    title: str
    label: LabelIn
    payload: str = Field(description="The content, base64")


class DerivationIn(_In):
    kind: Derivation
    title: str
    payload: str = Field(description="The derived content, base64")
    note: str = ""


class ReclassificationIn(_In):
    classification: str
    reason: str


class DispositionIn(_In):
    disposition: Disposition
    note: str = ""


class ConsentIn(_In):
    originator: str
    reference: str = ""


class PersonIn(_In):
    clearance: str | None = None
    need_to_know: list[str] = []
    compartments: list[str] = []


class DecisionIn(_In):
    item_id: str
    recipient: str
    at: str | None = None
    person: PersonIn | None = None
    consents: list[str] = []


class UserIn(_In):
    name: str
    roles: list[Role] = Field(min_length=1)
    clearance: str | None = None
    need_to_know: list[str] = []
    compartments: list[str] = []


# -- problem+json ------------------------------------------------------------------------------


def problem(status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    body = {
        "type": f"https://gsomia.invalid/problems/{code}",
        "title": code.replace("-", " "),
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(GsomiaError)
    async def _gsomia(_request: Request, e: GsomiaError) -> JSONResponse:
        return problem(e.status, e.code, e.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, e: RequestValidationError) -> JSONResponse:
        errors = e.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return problem(422, "invalid-request", f"{where}: {first.get('msg')}{more}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, e: StarletteHTTPException) -> JSONResponse:
        code = {404: "not-found", 405: "method-not-allowed"}.get(e.status_code, "http-error")
        return problem(e.status_code, code, str(e.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, e: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return problem(500, "internal-error", "the node could not complete the request")


# -- rendering ---------------------------------------------------------------------------------


def _markings(node: Node, label_data: dict[str, Any]) -> dict[str, str]:
    label = SecurityLabel.from_dict(label_data)
    out: dict[str, str] = {}
    for form in (MarkingForm.NATIVE, MarkingForm.BANNER, MarkingForm.PORTION):
        try:
            out[form.value] = render(node.registry, label, form)
        except GsomiaError:
            continue  # a US form of a non-US label, say: not every form applies to every label
    return out


def _marking(node: Node, label_data: dict[str, Any], form: MarkingForm) -> str | None:
    """One form of ``_markings``, or None where it does not apply."""
    label = SecurityLabel.from_dict(label_data)
    try:
        return render(node.registry, label, form)
    except GsomiaError:
        return None


def _utc(at: datetime | None) -> str | None:
    """Stored instants are answered in one form, UTC, whether fresh or read back."""
    return at.astimezone(UTC).isoformat() if at is not None else None


def item_json(node: Node, item: Item) -> dict[str, Any]:
    level = node.registry.level_by_key(f"{item.label['policy']}:{item.label['classification']}")
    return {
        "id": item.id,
        "title": item.title,
        "label": item.label,
        "level": {"id": level.id, "native": level.native, "english": level.english},
        "markings": _markings(node, item.label),
        "size": item.size,
        "sha256": item.payload_sha256,
        "created_at": _utc(item.created_at),
        "created_by": item.created_by,
        "version": item.version,
        "status": item.status.value,
        "source_item_id": item.source_item_id,
        "derivation": item.derivation.value if item.derivation else None,
        "received_from": item.received_from,
        "received_under": item.received_under,
        "disposed_at": _utc(item.disposed_at),
        "disposed_by": item.disposed_by,
        "disposition_note": item.disposition_note,
    }


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "name": user.name,
        "roles": sorted(r.value for r in user.roles),
        "clearance": user.clearance,
        "need_to_know": sorted(user.need_to_know),
        "compartments": sorted(user.compartments),
        "created_at": _utc(user.created_at),
        "revoked_at": _utc(user.revoked_at),
    }


def page_json(page: Page[_T], render_row: Callable[[_T], dict[str, Any]]) -> dict[str, Any]:
    return {
        "items": [render_row(r) for r in page.rows],
        "total": page.total,
        "next_cursor": page.next_cursor,
    }


def _match_first(app: FastAPI, *endpoints: Callable[..., Any]) -> None:
    """Move the routes of ``endpoints`` to the front of the app's routes.

    Routes are matched in order, and every included router before a route costs a walk through
    its own routes on each request that passes it (about 0.2 ms with the four routers that a
    federated node includes). No included route has the method and path of these busiest ones,
    so what any request matches is unchanged; only the walk is skipped.
    """
    routes = app.router.routes
    first = [r for r in routes if getattr(r, "endpoint", None) in endpoints]
    routes[:] = first + [r for r in routes if not any(r is f for f in first)]


def _payload(text: str, node: Node) -> bytes:
    # Base64 of the limit is a third larger: refuse before decoding anything bigger.
    if len(text) > (node.max_payload_bytes * 4) // 3 + 8:
        raise PayloadTooLargeError(f"payload is over this node's limit of {node.max_payload_bytes}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InputError("payload is not valid base64") from e


def _instant(node: Node, text: str | None) -> datetime | None:
    if text is None:
        return None
    return parse_instant(text, zone(node.registry.party(node.party).timezone))


# -- the application -----------------------------------------------------------------------


class BodyLimit:
    """Refuse a request whose declared body is over the limit, before reading it.

    A plain ASGI middleware: Starlette's ``@app.middleware("http")`` form costs a task and a
    stream wrapper per request, on every request.
    """

    def __init__(self, app: Any, ceiling: int) -> None:
        self.app = app
        self.ceiling = ceiling  # base64 of the payload limit, plus the JSON around it

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for name, value in scope.get("headers", ()):
                if name == b"content-length" and value.isdigit() and int(value) > self.ceiling:
                    response = problem(
                        413, "payload-too-large", f"request body over {self.ceiling} bytes"
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


_bearer = HTTPBearer(auto_error=False)


def current_user(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    node: Node = request.app.state.node
    return node.authenticate(creds.credentials if creds else None)


Actor = Annotated[User, Depends(current_user)]


async def current_caller(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """As ``current_user``, for the group-committed routes: a token the node has authenticated
    before is answered from memory, on the event loop (the act checks the token again in its
    own transaction, and refuses it if it was revoked since); any other goes to the database."""
    node: Node = request.app.state.node
    token = creds.credentials if creds else None
    caller = node.cached_caller(token)
    if caller is None:
        caller = await run_in_threadpool(node.caller, token)
    return caller


Asker = Annotated[Caller, Depends(current_caller)]
Limit = Annotated[int, Query(ge=1, le=500)]


def create_app(
    node: Node,
    federation: Federation | None = None,
    *,
    deliver: bool = True,
    link: LinkOptions | None = None,
) -> FastAPI:
    """The node's app; with ``federation``, also the envelope intake, the delivery worker and
    the missile-warning link (``link`` sets its options)."""
    link_service = None
    if federation is not None:
        from gsomia.node.link import LinkService

        link_service = LinkService(federation, link)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        worker = None
        witnessing = None
        if federation is not None and deliver:
            from gsomia.node.delivery import DeliveryWorker

            worker = DeliveryWorker(federation)
            worker.start()
            from gsomia.ledger.schedule import start_witnessing

            witnessing = start_witnessing(federation, _app.state)  # every N s; 0 disables
        if link_service is not None:
            await link_service.start()
        try:
            yield
        finally:
            if link_service is not None:
                await link_service.stop()
            if worker is not None:
                worker.stop()
            if witnessing is not None:
                witnessing.stop()

    app = FastAPI(
        title=f"gsomia node ({node.party})",
        version=__version__,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.node = node
    app.state.federation = federation
    _install_problem_handlers(app)
    if federation is not None:
        from gsomia.api.federation import federation_router

        app.include_router(federation_router(federation))
        from gsomia.api.ledger import ledger_router

        app.include_router(ledger_router(federation))
        from gsomia.api.link import link_router

        assert link_service is not None
        app.include_router(link_router(link_service))
    app.state.link = link_service
    from gsomia.api import export

    # Export-control answers are for authenticated users only, like the rest of the API.
    app.include_router(export.router, dependencies=[Depends(current_user)])

    app.add_middleware(BodyLimit, ceiling=(node.max_payload_bytes * 4) // 3 + 64 * 1024)

    @app.get("/health", tags=["node"])
    def health() -> dict[str, str]:
        return {"status": "ok", "party": node.party}

    @app.get(f"{PREFIX}/node", tags=["node"])
    def about(actor: Actor) -> dict[str, Any]:
        return {
            "party": node.party,
            "scheme": node.scheme.id,
            "registry_hash": node.registry.content_hash,
            "now": node.now().isoformat(),
            "version": __version__,
            "max_payload_bytes": node.max_payload_bytes,
        }

    # -- agreements --

    @app.get(f"{PREFIX}/agreements", tags=["agreements"])
    def agreements(actor: Actor, at: str | None = None) -> dict[str, Any]:
        rows = []
        for inst in node.registry.instruments.values():
            instant = _instant(node, at) or node.now()
            rows.append(node.registry.history(inst.id).status(instant).to_dict())
        return {"items": rows, "total": len(rows), "next_cursor": None}

    @app.get(f"{PREFIX}/agreements/{{agreement_id}}", tags=["agreements"])
    def agreement(actor: Actor, agreement_id: str) -> dict[str, Any]:
        return node.registry.instrument(agreement_id).to_dict()

    @app.get(f"{PREFIX}/agreements/{{agreement_id}}/status", tags=["agreements"])
    def agreement_status(actor: Actor, agreement_id: str, at: str | None = None) -> dict[str, Any]:
        inst = node.registry.instrument(agreement_id)
        instant = parse_instant(at, zone(inst.timezone)) if at else node.now()
        return node.registry.history(inst.id).status(instant).to_dict()

    # -- items --

    @app.post(f"{PREFIX}/items", status_code=201, tags=["items"])
    async def create_item(caller: Asker, body: ItemIn) -> dict[str, Any]:
        label = LabelInput(
            classification=body.label.classification,
            topics=frozenset(body.label.topics),
            releasable_to=frozenset(body.label.rel_to),
            compartments=frozenset(body.label.compartments),
            originator_consent_required=body.label.originator_consent_required,
        )
        created = node.create_item_soon(
            caller, title=body.title, label=label, payload=_payload(body.payload, node)
        )
        return item_json(node, await asyncio.wrap_future(created))

    @app.get(f"{PREFIX}/items", tags=["items"])
    def list_items(
        actor: Actor,
        topic: str | None = None,
        originator: str | None = None,
        classification: str | None = None,
        status: Disposition | None = None,
        created_after: str | None = None,
        created_before: str | None = None,
        limit: Limit = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        query = ItemSearch(
            topic=topic,
            originator=originator,
            classification=classification,
            status=status,
            created_after=_instant(node, created_after),
            created_before=_instant(node, created_before),
            limit=limit,
            cursor=cursor,
        )
        return page_json(node.search(actor, query), lambda i: item_json(node, i))

    @app.get(f"{PREFIX}/items/{{item_id}}", tags=["items"])
    async def get_item(caller: Asker, item_id: str) -> dict[str, Any]:
        item = await asyncio.wrap_future(node.get_item_soon(caller, item_id))
        return item_json(node, item)

    @app.get(f"{PREFIX}/items/{{item_id}}/payload", tags=["items"])
    async def get_payload(caller: Asker, item_id: str) -> Response:
        item, data = await asyncio.wrap_future(node.read_payload_soon(caller, item_id))
        headers = {"X-Gsomia-Item": item.id, "X-Gsomia-Sha256": item.payload_sha256}
        portion = _marking(node, item.label, MarkingForm.PORTION)
        if portion is not None:
            headers["X-Gsomia-Marking"] = portion
        return Response(data, media_type="application/octet-stream", headers=headers)

    _match_first(app, create_item, get_item, get_payload)

    @app.post(f"{PREFIX}/items/{{item_id}}/derivations", status_code=201, tags=["items"])
    def derive(actor: Actor, item_id: str, body: DerivationIn) -> dict[str, Any]:
        item = node.derive(
            actor,
            item_id,
            kind=body.kind,
            title=body.title,
            payload=_payload(body.payload, node),
            note=body.note,
        )
        return item_json(node, item)

    @app.get(f"{PREFIX}/items/{{item_id}}/derivations", tags=["items"])
    def derivations(actor: Actor, item_id: str) -> dict[str, Any]:
        rows = [item_json(node, i) for i in node.derivations(actor, item_id)]
        return {"items": rows, "total": len(rows), "next_cursor": None}

    @app.post(f"{PREFIX}/items/{{item_id}}/reclassification", tags=["items"])
    def reclassify(actor: Actor, item_id: str, body: ReclassificationIn) -> dict[str, Any]:
        reclassify = federation.reclassify if federation is not None else node.reclassify
        item = reclassify(actor, item_id, classification=body.classification, reason=body.reason)
        return item_json(node, item)

    @app.post(f"{PREFIX}/items/{{item_id}}/disposition", tags=["items"])
    def dispose(actor: Actor, item_id: str, body: DispositionIn) -> dict[str, Any]:
        item = node.dispose(actor, item_id, disposition=body.disposition, note=body.note)
        return item_json(node, item)

    @app.get(f"{PREFIX}/items/{{item_id}}/history", tags=["items"])
    def history(actor: Actor, item_id: str) -> dict[str, Any]:
        rows = [
            {
                "version": c.version,
                "old_label": c.old_label,
                "new_label": c.new_label,
                "changed_at": c.changed_at.isoformat(),
                "changed_by": c.changed_by,
                "reason": c.reason,
            }
            for c in node.history(actor, item_id)
        ]
        return {"items": rows, "total": len(rows), "next_cursor": None}

    @app.post(f"{PREFIX}/items/{{item_id}}/consents", status_code=201, tags=["items"])
    def add_consent(actor: Actor, item_id: str, body: ConsentIn) -> dict[str, Any]:
        c = node.record_consent(
            actor, item_id, originator=body.originator, reference=body.reference
        )
        return {
            "id": c.id,
            "item_id": c.item_id,
            "originator": c.originator,
            "recorded_at": c.recorded_at.isoformat(),
            "recorded_by": c.recorded_by,
            "reference": c.reference,
        }

    @app.get(f"{PREFIX}/items/{{item_id}}/consents", tags=["items"])
    def list_consents(actor: Actor, item_id: str) -> dict[str, Any]:
        rows = [
            {
                "id": c.id,
                "originator": c.originator,
                "recorded_at": c.recorded_at.isoformat(),
                "recorded_by": c.recorded_by,
                "reference": c.reference,
            }
            for c in node.consents(actor, item_id)
        ]
        return {"items": rows, "total": len(rows), "next_cursor": None}

    # -- decisions (dry run) --

    @app.post(f"{PREFIX}/decisions", tags=["decisions"])
    def dry_run(actor: Actor, body: DecisionIn) -> dict[str, Any]:
        person = None
        if body.person is not None:
            recipient = node.registry.party(body.recipient).code
            clearance = body.person.clearance
            person = Person(
                clearance=node.registry.level(recipient, clearance).id if clearance else None,
                need_to_know=frozenset(node.registry.topic(t).id for t in body.person.need_to_know),
                compartments=frozenset(c.upper() for c in body.person.compartments),
            )
        decision = node.dry_run(
            actor,
            body.item_id,
            recipient=body.recipient,
            at=_instant(node, body.at),
            person=person,
            extra_consents=body.consents,
        )
        return decision.to_dict()

    # -- users --

    @app.get(f"{PREFIX}/users/me", tags=["users"])
    def me(actor: Actor) -> dict[str, Any]:
        return user_json(actor)

    @app.get(f"{PREFIX}/users", tags=["users"])
    def users(actor: Actor, limit: Limit = 50, cursor: str | None = None) -> dict[str, Any]:
        return page_json(node.list_users(actor, limit=limit, cursor=cursor), user_json)

    @app.post(f"{PREFIX}/users", status_code=201, tags=["users"])
    def add_user(actor: Actor, body: UserIn) -> dict[str, Any]:
        user, token = node.add_user(
            name=body.name,
            roles=body.roles,
            clearance=body.clearance,
            need_to_know=body.need_to_know,
            compartments=body.compartments,
            actor=actor,
        )
        return {"user": user_json(user), "token": token}

    @app.delete(f"{PREFIX}/users/{{user_id}}", tags=["users"])
    def revoke_user(actor: Actor, user_id: str) -> dict[str, Any]:
        return user_json(node.revoke_user(user_id, actor=actor))

    # -- the access register --

    @app.get(f"{PREFIX}/access-register", tags=["audit"])
    def access_register(
        actor: Actor,
        item_id: str | None = None,
        user_id: str | None = None,
        action: str | None = None,
        limit: Limit = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        page = node.access_register(
            actor, item_id=item_id, user_id=user_id, action=action, limit=limit, cursor=cursor
        )
        return page_json(
            page,
            lambda r: {
                "id": r.id,
                "item_id": r.item_id,
                "user_id": r.user_id,
                "action": r.action,
                "at": r.at.isoformat(),
                "detail": r.detail,
            },
        )

    return app
