"""The databases the tests run on: SQLite always, PostgreSQL when ``GSOMIA_TEST_DATABASE_URL`` is
set (``.ci/run`` sets it and requires it).

A PostgreSQL test works in a schema of its own (``<prefix>_<16 hex digits>``), reached through
``options=-csearch_path=<schema>`` on the URL (a libpq connection parameter: SQLAlchemy hands URL
query items to psycopg) and dropped with CASCADE afterwards; ``public`` is never touched.
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

from gsomia.store.engine import make_engine

DATABASE_URL = os.environ.get("GSOMIA_TEST_DATABASE_URL", "")

ENGINES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=pytest.mark.skipif(not DATABASE_URL, reason="GSOMIA_TEST_DATABASE_URL is not set"),
    ),
]

_SCHEMA_NAME = re.compile(r"gsomia_[a-z]+_[0-9a-f]{16}")


@contextmanager
def postgresql_schema_url(url: str, prefix: str = "gsomia_t") -> Iterator[tuple[str, str]]:
    """A URL whose connections work in a new schema of their own, and the schema's name; the
    schema is dropped after (dispose of engines on the URL first, or the drop waits on their
    locks)."""
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    assert _SCHEMA_NAME.fullmatch(name)  # the only kind of schema these tests create or drop
    admin = create_engine(url, poolclass=NullPool)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{name}"'))
        scoped = make_url(url).update_query_dict({"options": f"-csearch_path={name}"})
        try:
            yield scoped.render_as_string(hide_password=False), name
        finally:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    finally:
        admin.dispose()


@contextmanager
def sqlite_engine(directory: Path) -> Iterator[Engine]:
    """A node engine over a fresh SQLite file in ``directory``."""
    engine = make_engine(f"sqlite:///{directory / 'node.db'}")
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def postgresql_engine(url: str, prefix: str = "gsomia_t") -> Iterator[Engine]:
    """A node engine whose every connection works in a schema of its own, dropped afterwards."""
    with postgresql_schema_url(url, prefix) as (scoped, name):
        engine = make_engine(scoped)
        try:
            with engine.connect() as connection:
                assert connection.execute(text("SELECT current_schema()")).scalar_one() == name
            yield engine
        finally:
            engine.dispose()  # close pooled sessions first, or DROP SCHEMA waits on their locks


@contextmanager
def engine_of(kind: str, directory: Path, prefix: str = "gsomia_t") -> Iterator[Engine]:
    """A blank node engine of ``kind`` (``sqlite`` in ``directory``, or ``postgresql``)."""
    if kind == "sqlite":
        with sqlite_engine(directory) as engine:
            yield engine
    else:
        with postgresql_engine(DATABASE_URL, prefix) as engine:
            yield engine
