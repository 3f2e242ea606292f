"""A JPN node behind its HTTP API: in process on SQLite and (when configured) PostgreSQL, or
served by ``gsomia node serve`` over a real socket.

Every test that takes ``api`` or ``corpus`` runs once per engine (``[sqlite]``, ``[postgresql]``)
on a database of its own: a fresh SQLite file in ``tmp_path`` (copied from a migrated and seeded
template, which is much cheaper than migrating again), or a freshly created PostgreSQL schema
(``gsomia_api_<hex>``, reached through ``options=-csearch_path=...`` and dropped with CASCADE
afterwards; ``public`` is never touched). PostgreSQL runs only when ``GSOMIA_TEST_DATABASE_URL``
is set. ``unchanging_corpus`` is the one exception: a node shared by one module's tests of
requests that must change nothing, each of which checks that it did not.

The node's clock is fixed at 2019-11-22T12:00+09:00 (the day before the JPN–KOR GSOMIA would
have lapsed); a test may move it (``api.clock.at = ...``); nothing reads the real time.

Building the FastAPI application costs more than a test, so the in-process tests share one,
built by ``create_app`` over a ``NodeSlot`` that each test fills with its own node; a test in
test_api_users_audit.py and the socket tests run applications of their own.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from tests.databases import DATABASE_URL, ENGINES, postgresql_schema_url

from gsomia import load_registry
from gsomia.api.app import create_app
from gsomia.core.labels import SecurityLabel
from gsomia.core.registry import Registry
from gsomia.node.service import Node, open_node
from gsomia.store.records import AccessRecord, Role, User
from gsomia.store.repositories import AccessRegister, Items, Users

with warnings.catch_warnings():
    # Starlette would like httpx2; the in-process client is the same either way.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


JST = timezone(timedelta(hours=9))
NOON = datetime(2019, 11, 22, 12, 0, tzinfo=JST)
MAX_PAYLOAD = 4096  # small, so the size limits are cheap to reach
PREFIX = "/api/v1"
PROBLEM = "application/problem+json"
ALL_TOPICS = (
    "dprk-nuclear",
    "dprk-missile",
    "dprk-military",
    "prc-maritime",
    "russia-far-east",
    "other",
)


@dataclass(frozen=True)
class UserSpec:
    roles: tuple[str, ...]
    clearance: str | None = None
    need_to_know: tuple[str, ...] = ()
    compartments: tuple[str, ...] = ()


# Every role, and clearances, need-to-know and compartments that cut the corpus differently.
USERS: dict[str, UserSpec] = {
    "admin": UserSpec(("admin",)),
    "auditor": UserSpec(("auditor",), "極秘", ("dprk-missile",)),
    "officer": UserSpec(("officer",), "極秘", ("dprk-missile", "dprk-nuclear")),
    "officer_hi": UserSpec(("officer",), "秘", ("dprk-missile",)),
    "officer_blue": UserSpec(("officer",), "極秘", ("dprk-missile",), ("BLUE",)),
    "officer_nuclear": UserSpec(("officer",), "機密", ("dprk-nuclear",)),
    "officer_none": UserSpec(("officer",)),  # no clearance: nothing exists for them
    "ra": UserSpec(("release-authority",), "機密", ALL_TOPICS, ("BLUE", "RED")),
    "ra_low": UserSpec(("release-authority",), "極秘", ("dprk-missile",)),
}


@dataclass(frozen=True)
class ItemSpec:
    classification: str
    topics: tuple[str, ...]
    compartments: tuple[str, ...] = ()
    rel_to: tuple[str, ...] = ()
    originator: str = "JPN"  # KOR: received from Korea under the JPN-KOR GSOMIA


CORPUS: dict[str, ItemSpec] = {
    "hi_missile": ItemSpec("hi", ("dprk-missile",)),
    "gokuhi_missile": ItemSpec("gokuhi", ("dprk-missile",), rel_to=("KOR",)),
    "kimitsu_missile": ItemSpec("kimitsu", ("dprk-missile",), rel_to=("KOR",)),
    "gokuhi_nuclear": ItemSpec("gokuhi", ("dprk-nuclear",)),
    "gokuhi_both": ItemSpec("gokuhi", ("dprk-missile", "dprk-nuclear")),
    "gokuhi_blue": ItemSpec("gokuhi", ("dprk-missile",), ("BLUE",)),
    "tokutei_maritime": ItemSpec("tokutei-himitsu", ("prc-maritime",)),
    "kor_missile": ItemSpec("gokuhi", ("dprk-missile",), rel_to=("KOR", "USA"), originator="KOR"),
}

# Who sees what of the corpus, written out by hand (not computed by a second implementation).
VISIBLE: dict[str, set[str]] = {
    "auditor": {"hi_missile", "gokuhi_missile", "kor_missile"},
    "officer": {"hi_missile", "gokuhi_missile", "gokuhi_nuclear", "gokuhi_both", "kor_missile"},
    "officer_hi": {"hi_missile"},
    "officer_blue": {"hi_missile", "gokuhi_missile", "gokuhi_blue", "kor_missile"},
    "officer_nuclear": {"gokuhi_nuclear"},
    "officer_none": set(),
    "ra": set(CORPUS),
    "ra_low": {"hi_missile", "gokuhi_missile", "kor_missile"},
}


class Clock:
    """The node's clock: fixed, and moved only by the test."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def item_body(
    *,
    title: str = "launch report",
    classification: str = "極秘",
    topics: Sequence[str] = ("dprk-missile",),
    rel_to: Sequence[str] = (),
    compartments: Sequence[str] = (),
    payload: bytes = b"payload",
) -> dict[str, Any]:
    return {
        "title": title,
        "label": {
            "classification": classification,
            "topics": list(topics),
            "rel_to": list(rel_to),
            "compartments": list(compartments),
        },
        "payload": b64(payload),
    }


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """An RFC 9457 problem with the documented fields and this status and stable code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0].strip() == PROBLEM, response.headers
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "code"} <= set(body), body
    assert body["status"] == status
    assert body["code"] == code, body
    assert isinstance(body["type"], str) and body["type"].endswith(f"/{code}")
    assert body["type"].startswith(("https://", "about:"))
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in response.text
    if status == 401:
        assert response.headers.get("www-authenticate", "").lower().startswith("bearer")
    return body


@dataclass
class Api:
    """A node, an in-process client, its users (by key) and their tokens."""

    node: Node
    client: TestClient
    clock: Clock
    users: dict[str, User]
    tokens: dict[str, str]
    items: dict[str, str] = field(default_factory=dict)  # corpus key -> item id

    def headers(self, who: str | None) -> dict[str, str]:
        return {} if who is None else {"Authorization": f"Bearer {self.tokens[who]}"}

    def get(
        self, who: str | None, path: str, params: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        return self.client.get(PREFIX + path, headers=self.headers(who), params=params)

    def post(self, who: str | None, path: str, body: Any) -> httpx.Response:
        return self.client.post(PREFIX + path, headers=self.headers(who), json=body)

    def delete(self, who: str | None, path: str) -> httpx.Response:
        return self.client.delete(PREFIX + path, headers=self.headers(who))

    def create(self, who: str = "ra", **body: Any) -> dict[str, Any]:
        response = self.post(who, "/items", item_body(**body))
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def all_pages(
        self, who: str, path: str, params: Mapping[str, Any] | None = None, limit: int = 2
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """Every row of a paginated list, walked ``limit`` at a time; and each page's total."""
        rows: list[dict[str, Any]] = []
        totals: list[int] = []
        cursor: str | None = None
        for _ in range(1000):
            query = {**(params or {}), "limit": limit}
            if cursor is not None:
                query["cursor"] = cursor
            response = self.get(who, path, query)
            assert response.status_code == 200, response.text
            page = response.json()
            assert set(page) == {"items", "total", "next_cursor"}
            assert len(page["items"]) <= limit
            rows.extend(page["items"])
            totals.append(page["total"])
            cursor = page["next_cursor"]
            if cursor is None:
                return rows, totals
        raise AssertionError("pagination did not end")

    # Ground truth, straight from the store (not through the API under test).

    def item_count(self) -> int:
        with self.node.store.read() as s:
            return Items(s).count()

    def register(
        self, *, item_id: str | None = None, user: str | None = None, action: str | None = None
    ) -> list[AccessRecord]:
        user_id = self.users[user].id if user else None
        with self.node.store.read() as s:
            page = AccessRegister(s).list(
                item_id=item_id, user_id=user_id, action=action, limit=500
            )
        assert page.next_cursor is None
        return list(page.rows)

    def register_total(self) -> int:
        with self.node.store.read() as s:
            return AccessRegister(s).list(limit=1).total

    def key_of(self, item_id: str) -> str:
        return next(k for k, v in self.items.items() if v == item_id)


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_registry()


@pytest.fixture(scope="module", params=ENGINES)
def engine_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@contextmanager
def node_database(kind: str, directory: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'node.db'}"
    else:
        with postgresql_schema_url(DATABASE_URL, "gsomia_api") as (url, _name):
            yield url


def seed_users(node: Node) -> tuple[dict[str, User], dict[str, str]]:
    """Every user of ``USERS`` in one transaction (fast), with a token each."""
    users: dict[str, User] = {}
    tokens: dict[str, str] = {}
    with node.store.write() as s:
        repo = Users(s)
        for key, spec in USERS.items():
            token = secrets.token_urlsafe(32)
            users[key] = repo.add(
                name=key,
                roles={Role(r) for r in spec.roles},
                clearance=node.level(spec.clearance).id if spec.clearance else None,
                need_to_know=set(spec.need_to_know),
                compartments=set(spec.compartments),
                token=token,
                now=node.now(),
            )
            tokens[key] = token
    return users, tokens


def corpus_payload(key: str) -> bytes:
    return f"content of {key}".encode()


def seed_corpus(node: Node, creator: User) -> dict[str, str]:
    """The ``CORPUS`` items, in one transaction, as the store holds them after creation/receipt."""
    registry = node.registry
    ids: dict[str, str] = {}
    with node.store.write() as s:
        repo = Items(s)
        for key, spec in CORPUS.items():
            if spec.originator == "JPN":
                label = SecurityLabel(
                    originator="JPN",
                    policy="JPN",
                    classification=spec.classification,
                    releasable_to=frozenset({"JPN", *spec.rel_to}),
                    compartments=frozenset(spec.compartments),
                    topics=frozenset(spec.topics),
                    created=node.now(),
                )
                received: dict[str, str] = {}
            else:  # a Korean 군사II급비밀 item, as JPN marks it on receipt (極秘)
                label = SecurityLabel(
                    originator=spec.originator,
                    policy=spec.originator,
                    classification="gunsa-2",
                    releasable_to=frozenset({"JPN", *spec.rel_to}),
                    compartments=frozenset(spec.compartments),
                    topics=frozenset(spec.topics),
                    created=node.now(),
                ).remarked("JPN", spec.classification)
                received = {"received_from": "KOR", "received_under": "JPN-KOR-GSOMIA"}
            item = repo.add(
                title=f"corpus {key}",
                label=label.to_dict(),
                level_rank=registry.level_by_key(f"JPN:{spec.classification}").rank,
                payload=corpus_payload(key),
                created_by=creator.id,
                now=node.now(),
                **received,
            )
            ids[key] = item.id
    return ids


@dataclass(frozen=True)
class Seed:
    users: dict[str, User]
    tokens: dict[str, str]
    items: dict[str, str]


def seed(node: Node, *, with_corpus: bool) -> Seed:
    users, tokens = seed_users(node)
    items = seed_corpus(node, users["ra"]) if with_corpus else {}
    return Seed(users, tokens, items)


def open_jpn_node(registry: Registry, url: str, clock: Clock) -> Node:
    return open_node(
        party="JPN", registry=registry, database_url=url, clock=clock, max_payload_bytes=MAX_PAYLOAD
    )


@pytest.fixture(scope="session")
def sqlite_templates(
    tmp_path_factory: pytest.TempPathFactory, registry: Registry
) -> dict[bool, tuple[Path, Seed]]:
    """Migrated and seeded SQLite files (without and with the corpus), copied for each test:
    copying a file is much cheaper than migrating and seeding a database again."""
    templates: dict[bool, tuple[Path, Seed]] = {}
    for with_corpus in (False, True):
        path = tmp_path_factory.mktemp("template") / "node.db"
        node = open_jpn_node(registry, f"sqlite:///{path}", Clock(NOON))
        try:
            templates[with_corpus] = (path, seed(node, with_corpus=with_corpus))
        finally:
            node.store.dispose()  # the last connection out checkpoints the WAL into the file
        assert not path.with_name("node.db-wal").exists()
    return templates


class NodeSlot:
    """The node an application built once serves: each test puts its own fresh node here.

    ``create_app`` costs more than a whole test (FastAPI builds every route's models), so one
    application serves every in-process test; everything it does at request time goes through
    this slot to the test's node. Between tests the slot is empty, and any request fails.
    """

    def __init__(self, node: Node) -> None:
        self.node: Node | None = node

    def __getattr__(self, name: str) -> Any:
        node = self.__dict__.get("node")
        if node is None:
            raise RuntimeError("no node in the slot: a request outside a test")
        return getattr(node, name)


@pytest.fixture(scope="session")
def shared_client(
    tmp_path_factory: pytest.TempPathFactory,
    registry: Registry,
    sqlite_templates: dict[bool, tuple[Path, Seed]],
) -> Iterator[tuple[TestClient, NodeSlot]]:
    path = tmp_path_factory.mktemp("app") / "node.db"
    shutil.copyfile(sqlite_templates[False][0], path)
    first = open_jpn_node(registry, f"sqlite:///{path}", Clock(NOON))
    slot = NodeSlot(first)
    app = create_app(cast(Node, slot))
    slot.node = None
    first.store.dispose()
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, slot


@dataclass
class OpenNode:
    node: Node
    clock: Clock
    seeded: Seed


@contextmanager
def fresh_node(
    kind: str,
    directory: Path,
    registry: Registry,
    templates: dict[bool, tuple[Path, Seed]],
    *,
    with_corpus: bool,
) -> Iterator[OpenNode]:
    """A node on a database of its own, seeded; disposed of (and its schema dropped) after."""
    clock = Clock(NOON)
    with node_database(kind, directory) as url:
        if kind == "sqlite":
            template, seeded = templates[with_corpus]
            shutil.copyfile(template, directory / "node.db")
            node = open_jpn_node(registry, url, clock)
        else:
            node = open_jpn_node(registry, url, clock)
            seeded = seed(node, with_corpus=with_corpus)
        try:
            yield OpenNode(node, clock, seeded)
        finally:
            node.store.dispose()  # pooled connections first, or DROP SCHEMA waits on them


@contextmanager
def serving(opened: OpenNode, shared: tuple[TestClient, NodeSlot]) -> Iterator[Api]:
    """``opened`` behind the shared application for the length of one test."""
    client, slot = shared
    slot.node = opened.node
    try:
        yield Api(
            node=opened.node,
            client=client,
            clock=opened.clock,
            users=dict(opened.seeded.users),
            tokens=dict(opened.seeded.tokens),
            items=dict(opened.seeded.items),
        )
    finally:
        slot.node = None


@pytest.fixture
def api(
    engine_kind: str,
    tmp_path: Path,
    registry: Registry,
    sqlite_templates: dict[bool, tuple[Path, Seed]],
    shared_client: tuple[TestClient, NodeSlot],
) -> Iterator[Api]:
    """A fresh JPN node (every role, no items) and an in-process client."""
    with (
        fresh_node(engine_kind, tmp_path, registry, sqlite_templates, with_corpus=False) as opened,
        serving(opened, shared_client) as running,
    ):
        yield running


@pytest.fixture
def corpus(
    engine_kind: str,
    tmp_path: Path,
    registry: Registry,
    sqlite_templates: dict[bool, tuple[Path, Seed]],
    shared_client: tuple[TestClient, NodeSlot],
) -> Iterator[Api]:
    """A fresh JPN node with every role and the ``CORPUS`` items, and an in-process client."""
    with (
        fresh_node(engine_kind, tmp_path, registry, sqlite_templates, with_corpus=True) as opened,
        serving(opened, shared_client) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def module_corpus_node(
    engine_kind: str,
    tmp_path_factory: pytest.TempPathFactory,
    registry: Registry,
    sqlite_templates: dict[bool, tuple[Path, Seed]],
) -> Iterator[OpenNode]:
    directory = tmp_path_factory.mktemp("module-corpus")
    with fresh_node(engine_kind, directory, registry, sqlite_templates, with_corpus=True) as opened:
        yield opened


@pytest.fixture
def unchanging_corpus(
    module_corpus_node: OpenNode, shared_client: tuple[TestClient, NodeSlot]
) -> Iterator[Api]:
    """One corpus node shared by a module's tests, for requests that must change nothing: each
    test asserts it did not (an error path that wrote would then also show in later tests)."""
    with serving(module_corpus_node, shared_client) as running:
        yield running


# -- a node served over a real socket, by the gsomia command ------------------------------------

CLOCK_TEXT = "2019-11-22T12:00+09:00"


def gsomia_command() -> list[str]:
    """The installed ``gsomia`` script beside this interpreter (or the same entry point)."""
    script = Path(sys.executable).with_name("gsomia")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from gsomia.cli.main import run; run()"]


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "GSOMIA_KEY_PASSPHRASE"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def gsomia(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*gsomia_command(), *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def add_user_cli(data: Path, name: str, *options: str) -> str:
    """``gsomia users add NAME --json``: the new user's token."""
    out = json.loads(gsomia("users", "add", name, "--data", str(data), *options, "--json").stdout)
    assert out["name"] == name
    token: str = out["token"]
    return token


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def wait_until_healthy(served: Served, deadline_s: float = 90.0) -> None:
    """Poll ``/health`` until it answers, the server exits, or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    with httpx.Client(base_url=served.base_url, timeout=2.0) as client:
        while True:
            if served.process.poll() is not None:
                raise AssertionError(f"the node exited early:\n{served.log_text()}")
            try:
                if client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"no /health within {deadline_s}s:\n{served.log_text()}")
            with suppress(subprocess.TimeoutExpired):  # the pause between polls, cut short
                served.process.wait(timeout=0.05)  # if the server exits


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate (then kill) a server this test started, and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@contextmanager
def serve(data: Path, *extra: str, clock: str = CLOCK_TEXT) -> Iterator[Served]:
    """``gsomia node serve`` on a free port, healthy, and always stopped afterwards."""
    log = data.parent / f"serve-{uuid.uuid4().hex[:8]}.log"
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                *gsomia_command(),
                "node",
                "serve",
                "--data",
                str(data),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--clock",
                clock,
                *extra,
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=cli_env(),
        )
    served = Served(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_until_healthy(served)
        yield served
    finally:
        stop(process)
