"""Stores for the ledger's tests: SQLite always, PostgreSQL if ``GSOMIA_TEST_DATABASE_URL`` is set.

Each PostgreSQL test gets a schema of its own (``gsomia_ledger_<random>``), reached through
``options=-csearch_path=<schema>`` on the URL and dropped with CASCADE afterwards; ``public`` is
never touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.databases import ENGINES, engine_of

from gsomia.crypto.keys import SigningPrivateKey
from gsomia.ledger.checkpoint import NoteVerifier
from gsomia.loader import load_registry
from gsomia.node.cluster import Cluster
from gsomia.store import schema
from gsomia.store.engine import Store

ORIGIN = "gsomia.invalid/JPN/ledger"
T0 = datetime(2019, 11, 22, 18, 0, tzinfo=UTC)


@pytest.fixture(params=ENGINES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store at the head revision, on each engine."""
    with engine_of(request.param, tmp_path, prefix="gsomia_ledger") as engine:
        schema.upgrade(engine)
        yield Store(engine)


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
