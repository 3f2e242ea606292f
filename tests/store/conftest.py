"""Engines for the store's contract suite: SQLite always, PostgreSQL when configured.

Every test that takes ``store`` (or ``blank_engine``) runs once per engine, with the engine's id in
the test name (``test_x[sqlite]``, ``test_x[postgresql]``). PostgreSQL runs only when
``GSOMIA_TEST_DATABASE_URL`` is set; each test then gets a schema of its own, created for it and
dropped with CASCADE afterwards, so tests never share state and ``public`` is never touched.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.pool import NullPool

from gsomia.store import schema
from gsomia.store.engine import Store, make_engine

DATABASE_URL = os.environ.get("GSOMIA_TEST_DATABASE_URL", "")

ENGINES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=pytest.mark.skipif(not DATABASE_URL, reason="GSOMIA_TEST_DATABASE_URL is not set"),
    ),
]

_SCHEMA_NAME = re.compile(r"gsomia_t_[0-9a-f]{16}")


@contextmanager
def sqlite_engine(directory: Path) -> Iterator[Engine]:
    """A node engine over a fresh SQLite file in ``directory``."""
    engine = make_engine(f"sqlite:///{directory / 'node.db'}")
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def postgresql_engine(url: str) -> Iterator[Engine]:
    """A node engine whose every connection works in a schema of its own, dropped afterwards."""
    name = f"gsomia_t_{uuid.uuid4().hex[:16]}"
    assert _SCHEMA_NAME.fullmatch(name)  # the only kind of schema these tests create or drop
    admin = create_engine(url, poolclass=NullPool)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{name}"'))
    # options is a libpq connection parameter: SQLAlchemy hands URL query items to psycopg.
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={name}"})
    engine = make_engine(scoped.render_as_string(hide_password=False))
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT current_schema()")).scalar_one() == name
        yield engine
    finally:
        engine.dispose()  # close pooled sessions first, or DROP SCHEMA waits on their locks
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=ENGINES)
def engine_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def blank_engine(engine_kind: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine over an empty database (no tables, no Alembic version)."""
    if engine_kind == "sqlite":
        with sqlite_engine(tmp_path) as engine:
            yield engine
    else:
        with postgresql_engine(DATABASE_URL) as engine:
            yield engine


@pytest.fixture
def store(blank_engine: Engine) -> Store:
    """A store over a database brought to the head revision."""
    schema.upgrade(blank_engine)
    return Store(blank_engine)
