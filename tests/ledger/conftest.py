"""Stores for the ledger's tests: SQLite always, PostgreSQL if ``GSOMIA_TEST_DATABASE_URL`` is set.

Each PostgreSQL test gets a schema of its own (``gsomia_ledger_<random>``), reached through
``options=-csearch_path=<schema>`` on the URL and dropped with CASCADE afterwards; ``public`` is
never touched.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from gsomia.crypto.keys import SigningPrivateKey
from gsomia.ledger.checkpoint import NoteVerifier
from gsomia.loader import load_registry
from gsomia.node.cluster import Cluster
from gsomia.store import schema
from gsomia.store.engine import Store, make_engine

DATABASE_URL = os.environ.get("GSOMIA_TEST_DATABASE_URL", "")
ORIGIN = "gsomia.invalid/JPN/ledger"
T0 = datetime(2019, 11, 22, 18, 0, tzinfo=UTC)

ENGINES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=pytest.mark.skipif(not DATABASE_URL, reason="GSOMIA_TEST_DATABASE_URL is not set"),
    ),
]
_SCHEMA = re.compile(r"gsomia_ledger_[0-9a-f]{16}")


@pytest.fixture(params=ENGINES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store at the head revision, on each engine."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'node.db'}")
        schema.upgrade(engine)
        try:
            yield Store(engine)
        finally:
            engine.dispose()
        return
    name = f"gsomia_ledger_{uuid.uuid4().hex[:16]}"
    assert _SCHEMA.fullmatch(name)  # the only kind of schema these tests create or drop
    admin = create_engine(DATABASE_URL, poolclass=NullPool)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{name}"'))
    scoped = make_url(DATABASE_URL).update_query_dict({"options": f"-csearch_path={name}"})
    engine = make_engine(scoped.render_as_string(hide_password=False))
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT current_schema()")).scalar_one() == name
        schema.upgrade(engine)
        yield Store(engine)
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def log_key() -> SigningPrivateKey:
    return SigningPrivateKey.generate()


@pytest.fixture(scope="session")
def log_verifier(log_key: SigningPrivateKey) -> NoteVerifier:
    return NoteVerifier(ORIGIN, log_key.public_key)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """JPN, KOR and USA as ``gsomia node serve`` processes, each pinning the others' keys."""
    made = Cluster(root=tmp_path / "cluster", registry=load_registry())
    try:
        made.create(now=datetime.now(UTC))
        made.start()
        yield made
    finally:
        made.stop()
