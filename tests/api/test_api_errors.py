"""Every error path of the API answers RFC 9457 ``application/problem+json`` with the documented
fields and a stable code, and changes nothing.

The table's rows share one corpus node per engine: an error must leave the store as it was, and
every row checks that it did (items, users and access-register rows are counted before and
after), so a row that wrote would be caught here and would not go unnoticed in later rows.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, select

from gsomia.store.models import UserRow

from .conftest import MAX_PAYLOAD, PREFIX, Api, assert_problem, b64, item_body

UNKNOWN = "3f0c5a52-8a0e-4c47-9d51-3c3d1b6c0de1"  # an item id that no node handed out
NO_BODY = object()
# The API refuses a request body over the base64 of the payload limit plus room for the JSON.
BODY_CEILING = (MAX_PAYLOAD * 4) // 3 + 64 * 1024


def cursor(text: str) -> str:
    """A cursor in the node's encoding, but with content the node never handed out."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@dataclass(frozen=True)
class Case:
    who: str | None  # a user of conftest.USERS; None sends no Authorization header
    method: str
    path: str  # under /api/v1 unless it starts with "//"; {key} is a corpus item's id
    status: int
    code: str
    json: Any = NO_BODY
    content: bytes | None = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    xfail_on_postgresql: str | None = None  # a node bug seen on PostgreSQL only


def case(id: str, *args: Any, xfail: str | None = None, **kwargs: Any) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=f"node bug: {xfail}")] if xfail else []
    return pytest.param(Case(*args, **kwargs), id=id, marks=marks)


NUL_ON_POSTGRESQL = (
    "an id with a NUL character reaches PostgreSQL, which refuses NUL in text: a 500 "
    "(SQLite answers the 404)"
)


JSON = {"content-type": "application/json"}
ITEM = "/items/{gokuhi_missile}"

CASES = [
    # -- 401: no token, a bad token, another scheme ---------------------------------------------
    case("no-token-list", None, "GET", "/items", 401, "unauthenticated"),
    case("no-token-create", None, "POST", "/items", 401, "unauthenticated", json=item_body()),
    case("no-token-get", None, "GET", ITEM, 401, "unauthenticated"),
    case("no-token-payload", None, "GET", ITEM + "/payload", 401, "unauthenticated"),
    case("no-token-node", None, "GET", "/node", 401, "unauthenticated"),
    case("no-token-agreements", None, "GET", "/agreements", 401, "unauthenticated"),
    case("no-token-users", None, "GET", "/users", 401, "unauthenticated"),
    case("no-token-register", None, "GET", "/access-register", 401, "unauthenticated"),
    case(
        "bad-token",
        None,
        "GET",
        "/items",
        401,
        "unauthenticated",
        headers={"Authorization": "Bearer not-a-token-of-this-node"},
    ),
    case(
        "empty-bearer",
        None,
        "GET",
        "/users/me",
        401,
        "unauthenticated",
        headers={"Authorization": "Bearer "},
    ),
    case(
        "basic-auth",
        None,
        "GET",
        "/users/me",
        401,
        "unauthenticated",
        headers={"Authorization": "Basic dXNlcjpwYXNz"},
    ),
    # -- 403: the user's roles do not allow the act -----------------------------------------------
    case("admin-lists-items", "admin", "GET", "/items", 403, "forbidden"),
    case("admin-gets-item", "admin", "GET", ITEM, 403, "forbidden"),
    case("auditor-creates", "auditor", "POST", "/items", 403, "forbidden", json=item_body()),
    case("auditor-reads-payload", "auditor", "GET", ITEM + "/payload", 403, "forbidden"),
    case(
        "auditor-asks-decision",
        "auditor",
        "POST",
        "/decisions",
        403,
        "forbidden",
        json={"item_id": "{gokuhi_missile}", "recipient": "KOR"},
    ),
    case(
        "officer-reclassifies",
        "officer",
        "POST",
        ITEM + "/reclassification",
        403,
        "forbidden",
        json={"classification": "hi", "reason": "r"},
    ),
    case(
        "officer-disposes",
        "officer",
        "POST",
        ITEM + "/disposition",
        403,
        "forbidden",
        json={"disposition": "destroyed"},
    ),
    case("officer-reads-register", "officer", "GET", "/access-register", 403, "forbidden"),
    case("ra-reads-register", "ra", "GET", "/access-register", 403, "forbidden"),
    case("officer-lists-users", "officer", "GET", "/users", 403, "forbidden"),
    case(
        "auditor-adds-user",
        "auditor",
        "POST",
        "/users",
        403,
        "forbidden",
        json={"name": "mallory", "roles": ["admin"]},
    ),
    case("ra-revokes-user", "ra", "DELETE", "/users/officer", 403, "forbidden"),
    case(
        "revoke-unknown-user-nul",
        "admin",
        "DELETE",
        "/users/x%00y",
        400,
        "invalid-input",
    ),
    # -- 404: unknown items and routes -------------------------------------------------------------
    case("unknown-item", "officer", "GET", f"/items/{UNKNOWN}", 404, "item-not-found"),
    case(
        "unknown-item-nul-id",
        "officer",
        "GET",
        "/items/x%00y",
        404,
        "item-not-found",
    ),
    case("unknown-payload", "ra", "GET", f"/items/{UNKNOWN}/payload", 404, "item-not-found"),
    case("unknown-history", "ra", "GET", f"/items/{UNKNOWN}/history", 404, "item-not-found"),
    case("unknown-consents", "ra", "GET", f"/items/{UNKNOWN}/consents", 404, "item-not-found"),
    case(
        "unknown-derivations", "ra", "GET", f"/items/{UNKNOWN}/derivations", 404, "item-not-found"
    ),
    case(
        "unknown-derive",
        "ra",
        "POST",
        f"/items/{UNKNOWN}/derivations",
        404,
        "item-not-found",
        json={"kind": "copy", "title": "c", "payload": ""},
    ),
    case(
        "unknown-reclassify",
        "ra",
        "POST",
        f"/items/{UNKNOWN}/reclassification",
        404,
        "item-not-found",
        json={"classification": "hi", "reason": "r"},
    ),
    case(
        "unknown-dispose",
        "ra",
        "POST",
        f"/items/{UNKNOWN}/disposition",
        404,
        "item-not-found",
        json={"disposition": "destroyed"},
    ),
    case(
        "unknown-consent",
        "ra",
        "POST",
        f"/items/{UNKNOWN}/consents",
        404,
        "item-not-found",
        json={"originator": "KOR"},
    ),
    case(
        "unknown-decision",
        "officer",
        "POST",
        "/decisions",
        404,
        "item-not-found",
        json={"item_id": UNKNOWN, "recipient": "KOR"},
    ),
    case("unknown-route", "officer", "GET", "/no-such-thing", 404, "not-found"),
    case("unknown-version", "officer", "GET", "//api/v2/items", 404, "not-found"),
    case("unknown-route-no-token", None, "GET", "/no-such-thing", 404, "not-found"),
    case("wrong-method", "officer", "PUT", ITEM, 405, "method-not-allowed", json={}),
    # -- 422: malformed or ill-formed JSON, and query parameters out of range --------------------
    case("malformed-json", "officer", "POST", "/items", 422, "invalid-request", content=b"{"),
    case(
        "trailing-comma",
        "admin",
        "POST",
        "/users",
        422,
        "invalid-request",
        content=b'{"name": "x", "roles": ["officer"],}',
    ),
    case("not-json", "officer", "POST", "/decisions", 422, "invalid-request", content=b"KOR"),
    case("json-array", "officer", "POST", "/items", 422, "invalid-request", json=[]),
    case("no-body", "officer", "POST", "/items", 422, "invalid-request"),
    case(
        "missing-payload",
        "officer",
        "POST",
        "/items",
        422,
        "invalid-request",
        json={"title": "t", "label": {"classification": "hi", "topics": ["dprk-missile"]}},
    ),
    case(
        "unknown-field",
        "officer",
        "POST",
        "/items",
        422,
        "invalid-request",
        json={**item_body(), "owner": "me"},
    ),
    case(
        "no-topics",
        "officer",
        "POST",
        "/items",
        422,
        "invalid-request",
        json=item_body(topics=[]),
    ),
    case(
        "unknown-role",
        "admin",
        "POST",
        "/users",
        422,
        "invalid-request",
        json={"name": "x", "roles": ["king"]},
    ),
    case(
        "no-roles",
        "admin",
        "POST",
        "/users",
        422,
        "invalid-request",
        json={"name": "x", "roles": []},
    ),
    case(
        "unknown-status",
        "officer",
        "GET",
        "/items",
        422,
        "invalid-request",
        params={"status": "lost"},
    ),
    case("limit-0", "officer", "GET", "/items", 422, "invalid-request", params={"limit": 0}),
    case("limit-501", "officer", "GET", "/items", 422, "invalid-request", params={"limit": 501}),
    case(
        "limit-negative", "officer", "GET", "/items", 422, "invalid-request", params={"limit": -1}
    ),
    case("limit-word", "officer", "GET", "/items", 422, "invalid-request", params={"limit": "ten"}),
    case("users-limit-0", "admin", "GET", "/users", 422, "invalid-request", params={"limit": 0}),
    case(
        "register-limit-501",
        "auditor",
        "GET",
        "/access-register",
        422,
        "invalid-request",
        params={"limit": 501},
    ),
    # -- 404/400: names outside the registry (docs/errors.md: unknown-* are 404) ------------------
    case(
        "unknown-level",
        "officer",
        "POST",
        "/items",
        404,
        "unknown-level",
        json=item_body(classification="zettai-himitsu"),
    ),
    case(
        "unknown-topic",
        "officer",
        "POST",
        "/items",
        404,
        "unknown-topic",
        json=item_body(topics=["weather"]),
    ),
    case(
        "unknown-rel-to",
        "officer",
        "POST",
        "/items",
        404,
        "unknown-party",
        json=item_body(rel_to=["ATL"]),
    ),
    case(
        "search-unknown-level",
        "officer",
        "GET",
        "/items",
        404,
        "unknown-level",
        params={"classification": "zettai-himitsu"},
    ),
    case(
        "search-unknown-topic",
        "officer",
        "GET",
        "/items",
        404,
        "unknown-topic",
        params={"topic": "weather"},
    ),
    case(
        "search-unknown-originator",
        "officer",
        "GET",
        "/items",
        404,
        "unknown-party",
        params={"originator": "ATL"},
    ),
    case(
        "user-unknown-clearance",
        "admin",
        "POST",
        "/users",
        404,
        "unknown-level",
        json={"name": "x", "roles": ["officer"], "clearance": "zettai-himitsu"},
    ),
    case(
        "user-unknown-topic",
        "admin",
        "POST",
        "/users",
        404,
        "unknown-topic",
        json={"name": "x", "roles": ["officer"], "need_to_know": ["weather"]},
    ),
    case("unknown-agreement", "officer", "GET", "/agreements/NO-SUCH", 404, "unknown-instrument"),
    case(
        "unknown-agreement-status",
        "officer",
        "GET",
        "/agreements/NO-SUCH/status",
        404,
        "unknown-instrument",
    ),
    case(
        "bad-agreements-at",
        "officer",
        "GET",
        "/agreements",
        400,
        "invalid-instant",
        params={"at": "soon"},
    ),
    case(
        "bad-status-at",
        "officer",
        "GET",
        "/agreements/JPN-KOR-GSOMIA/status",
        400,
        "invalid-instant",
        params={"at": "2019-13-01"},
    ),
    case(
        "bad-created-after",
        "officer",
        "GET",
        "/items",
        400,
        "invalid-instant",
        params={"created_after": "yesterday"},
    ),
    # -- 400: bad input ----------------------------------------------------------------------------
    case(
        "bad-base64",
        "officer",
        "POST",
        "/items",
        400,
        "invalid-input",
        json={**item_body(), "payload": "not base64!"},
    ),
    case(
        "base64-with-space",
        "officer",
        "POST",
        "/items",
        400,
        "invalid-input",
        json={**item_body(), "payload": "YWJj ZGVm"},
    ),
    case(
        "base64-bad-padding",
        "officer",
        "POST",
        "/items",
        400,
        "invalid-input",
        json={**item_body(), "payload": "YWJjZ"},
    ),
    case(
        "derive-bad-base64",
        "officer",
        "POST",
        ITEM + "/derivations",
        400,
        "invalid-input",
        json={"kind": "copy", "title": "c", "payload": "%%%"},
    ),
    case(
        "empty-title", "officer", "POST", "/items", 400, "invalid-input", json=item_body(title="")
    ),
    case(
        "blank-user-name",
        "admin",
        "POST",
        "/users",
        400,
        "invalid-input",
        json={"name": "  ", "roles": ["officer"]},
    ),
    # -- 413: payloads over the node's limit, by Content-Length, base64 length, decoded size ----
    case(
        "body-over-content-length",
        "officer",
        "POST",
        "/items",
        413,
        "payload-too-large",
        content=b'{"title": "' + b"x" * BODY_CEILING + b'"}',
        headers=JSON,
    ),
    case(
        "base64-text-over-limit",
        "officer",
        "POST",
        "/items",
        413,
        "payload-too-large",
        json={**item_body(), "payload": "A" * (MAX_PAYLOAD * 2)},
    ),
    case(
        "decoded-over-limit",
        "officer",
        "POST",
        "/items",
        413,
        "payload-too-large",
        json=item_body(payload=b"x" * (MAX_PAYLOAD + 1)),
    ),
    case(
        "derivation-decoded-over-limit",
        "officer",
        "POST",
        ITEM + "/derivations",
        413,
        "payload-too-large",
        json={"kind": "copy", "title": "c", "payload": b64(b"x" * (MAX_PAYLOAD + 1))},
    ),
    # -- 400: cursors the node did not hand out ------------------------------------------------
    case(
        "cursor-junk", "officer", "GET", "/items", 400, "invalid-cursor", params={"cursor": "!!!"}
    ),
    case(
        "cursor-not-utf8",
        "officer",
        "GET",
        "/items",
        400,
        "invalid-cursor",
        params={"cursor": "abc"},
    ),
    case(
        "cursor-one-part",
        "officer",
        "GET",
        "/items",
        400,
        "invalid-cursor",
        params={"cursor": cursor("only")},
    ),
    case(
        "cursor-not-a-date",
        "officer",
        "GET",
        "/items",
        400,
        "invalid-cursor",
        params={"cursor": cursor("yesterday|x")},
    ),
    case(
        "cursor-naive-date",
        "officer",
        "GET",
        "/items",
        400,
        "invalid-cursor",
        params={"cursor": cursor("2019-11-22T03:00:00|x")},
    ),
    case(
        "register-cursor-junk",
        "auditor",
        "GET",
        "/access-register",
        400,
        "invalid-cursor",
        params={"cursor": cursor("x")},
    ),
    case(
        "register-cursor-unicode-digit",
        "auditor",
        "GET",
        "/access-register",
        400,
        "invalid-cursor",
        params={"cursor": cursor("²")},
    ),
    case(
        "users-cursor-not-utf8",
        "admin",
        "GET",
        "/users",
        400,
        "invalid-cursor",
        params={"cursor": "abc"},
    ),
    case(
        "users-cursor-junk",
        "admin",
        "GET",
        "/users",
        400,
        "invalid-cursor",
        params={"cursor": "!!!"},
    ),
    # -- 409: the act conflicts with the current state --------------------------------------------
    case(
        "reclassify-to-same-level",
        "ra",
        "POST",
        ITEM + "/reclassification",
        409,
        "conflict",
        json={"classification": "極秘", "reason": "r"},
    ),
    case("revoke-last-admin", "admin", "DELETE", "/users/admin", 409, "conflict"),
    case(
        "user-name-taken",
        "admin",
        "POST",
        "/users",
        409,
        "conflict",
        json={"name": "officer", "roles": ["officer"]},
    ),
    # -- 403 beyond roles: labels the user could not then see -------------------------------------
    case(
        "create-above-clearance",
        "officer",
        "POST",
        "/items",
        403,
        "forbidden",
        json=item_body(classification="機密"),
    ),
    case(
        "reclassify-not-originator",
        "ra",
        "POST",
        "/items/{kor_missile}/reclassification",
        403,
        "forbidden",
        json={"classification": "hi", "reason": "r"},
    ),
]


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids.get(value[1:-1], value)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _counts(api: Api) -> tuple[int, int, int]:
    with api.node.store.read() as s:
        users = s.scalar(select(func.count()).select_from(UserRow)) or 0
    return api.item_count(), api.register_total(), users


@pytest.mark.parametrize("c", CASES)
def test_every_error_is_a_problem_and_changes_nothing(
    unchanging_corpus: Api, c: Case, engine_kind: str, request: pytest.FixtureRequest
) -> None:
    if c.xfail_on_postgresql and engine_kind == "postgresql":
        request.applymarker(
            pytest.mark.xfail(strict=True, reason=f"node bug: {c.xfail_on_postgresql}")
        )
    api = unchanging_corpus
    path = c.path[1:] if c.path.startswith("//") else PREFIX + c.path
    path = path.format(**api.items)
    headers = {**api.headers(c.who), **c.headers}
    kwargs: dict[str, Any] = {"headers": headers, "params": c.params}
    if c.json is not NO_BODY:
        kwargs["json"] = _fill(c.json, api.items)
    elif c.content is not None:
        kwargs["content"] = c.content
        kwargs["headers"] = {**JSON, **headers}
    before = _counts(api)
    response = api.client.request(c.method, path, **kwargs)
    assert_problem(response, c.status, c.code)
    assert _counts(api) == before
