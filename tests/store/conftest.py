"""Engines for the store's contract suite: SQLite always, PostgreSQL when configured.

Every test that takes ``store`` (or ``blank_engine``) runs once per engine, with the engine's id in
the test name (``test_x[sqlite]``, ``test_x[postgresql]``). PostgreSQL runs only when
``GSOMIA_TEST_DATABASE_URL`` is set; each test then gets a schema of its own, created for it and
dropped with CASCADE afterwards, so tests never share state and ``public`` is never touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from tests.databases import ENGINES, engine_of

from gsomia.store import schema
from gsomia.store.engine import Store


@pytest.fixture(params=ENGINES)
def engine_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def blank_engine(engine_kind: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine over an empty database (no tables, no Alembic version)."""
    with engine_of(engine_kind, tmp_path) as engine:
        yield engine


@pytest.fixture
def store(blank_engine: Engine) -> Store:
    """A store over a database brought to the head revision."""
    schema.upgrade(blank_engine)
    return Store(blank_engine)
