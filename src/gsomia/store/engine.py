"""Engines and transactions: SQLite with WAL and one writer, or PostgreSQL.

Every write runs in ``Store.write()``: on SQLite a ``BEGIN IMMEDIATE`` transaction behind a
process-wide lock (SQLite allows one writer; taking the write lock up front avoids deadlocking
upgrades from read to write), on PostgreSQL an ordinary transaction. Commit happens before the
context exits, so whatever a caller acknowledges afterwards is durable.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from gsomia.core.errors import StorageError


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``)."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        _sqlite_discipline(engine)
        return engine
    if url.startswith("postgresql") and "+psycopg" not in url.split("://", 1)[0]:
        url = url.replace("postgresql", "postgresql+psycopg", 1)  # psycopg 3, not psycopg2
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _sqlite_discipline(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module, so that BEGIN is ours to issue.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # FULL: a commit is on disk before it returns, so an acknowledged write survives a crash
        # of the machine, not only of the process.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get("gsomia_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except OperationalError as e:
        raise StorageError(f"database unavailable: {e.orig}") from e


class Store:
    """Sessions for reading and writing, with the engine's write discipline."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._write_lock = threading.Lock() if self.is_sqlite else None

    @classmethod
    def from_url(cls, url: str) -> Store:
        return cls(make_engine(url))

    @contextmanager
    def read(self) -> Iterator[Session]:
        with _translated(), self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction, committed when the block ends without an exception."""
        with _translated(), self._writer(), self._sessions() as session:
            # Procuring the connection with this option makes the SQLite "begin" hook issue
            # BEGIN IMMEDIATE (PostgreSQL ignores it).
            session.connection(execution_options={"gsomia_write": True})
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def _writer(self) -> Iterator[None]:
        if self._write_lock is None:
            yield
            return
        with self._write_lock:
            yield

    def dispose(self) -> None:
        self.engine.dispose()
