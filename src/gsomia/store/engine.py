"""Engines and transactions: SQLite with WAL and one writer, or PostgreSQL.

Every write runs in ``Store.write()``: on SQLite a ``BEGIN IMMEDIATE`` transaction behind a
process-wide lock (SQLite allows one writer; taking the write lock up front avoids deadlocking
upgrades from read to write), on PostgreSQL an ordinary transaction. Commit happens before the
context exits, so whatever a caller acknowledges afterwards is durable.

``GroupCommit`` runs the acts of many concurrent requests in one such transaction: one commit
(one ``fsync``) for the batch, and every act's result handed out only once the batch committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Generic, TypeVar

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
    def write_dbapi(self) -> Iterator[Any]:
        """As ``write()``, on a pooled DBAPI connection: for a hot path's driver-level statements.

        A Session's transaction costs several times a bare one; this is the same transaction
        (SQLite: ``BEGIN IMMEDIATE`` behind the writer lock), committed when the block ends.
        """
        errors = self.engine.dialect.loaded_dbapi.OperationalError
        try:
            with self._writer():
                db = self.engine.raw_connection()
                try:
                    if self.is_sqlite:
                        db.cursor().execute("BEGIN IMMEDIATE")  # psycopg begins by itself
                    try:
                        yield db
                        db.commit()
                    except BaseException:
                        db.rollback()
                        raise
                finally:
                    db.close()  # back to the pool
        except (OperationalError, errors) as e:
            raise StorageError(f"database unavailable: {getattr(e, 'orig', e)}") from e

    @contextmanager
    def _writer(self) -> Iterator[None]:
        if self._write_lock is None:
            yield
            return
        with self._write_lock:
            yield

    def dispose(self) -> None:
        self.engine.dispose()


J = TypeVar("J")

# One job's outcome in a batch: its result, or the exception it raised (then it wrote nothing).
Outcome = tuple[Any, Exception | None]


class GroupCommit(Generic[J]):
    """Group commit: the jobs of concurrent callers run in one write transaction, one commit.

    ``execute(db, jobs)`` runs a batch of jobs inside ``transaction()`` (by default
    ``Store.write_dbapi()``, so ``db`` is the DBAPI connection; ``Store.write`` gives a Session)
    and returns one outcome per job, in order: ``(result, None)``, or ``(None, error)`` for a
    job that raised. ``after(committed)``, if given, is called in the thread that wrote the
    batch, once its transaction has committed (True) or failed (False).
    A job that raises must have written nothing (jobs check first and write last), so the others
    still commit. Whatever ``execute`` leaves pending it writes before it returns; the batch then
    commits, and only then is any job's future resolved: a result handed out is durable. When
    the batch fails before its commit (nothing of it written), each of its jobs is run again
    alone, so that one bad job fails only itself. When the commit itself fails, every job of the
    batch fails with it (whether a server received the commit may be unknown, so nothing is
    tried twice); nothing of a failed transaction is ever acknowledged.

    ``submit`` (any thread) queues a job and returns its future; one writer thread, started on
    demand and ended after ``idle`` seconds without work, runs whatever has arrived while the
    previous batch ran (nothing waits for a batch to fill, so a lone request is not delayed).
    ``run`` runs one job in the calling thread, as a batch of its own. A job whose future was
    cancelled before its batch started is not run.
    """

    def __init__(
        self,
        store: Store,
        execute: Callable[[Any, Sequence[J]], list[Outcome]],
        *,
        name: str = "group-commit",
        max_batch: int = 64,
        idle: float = 2.0,
        transaction: Callable[[], AbstractContextManager[Any]] | None = None,
        after: Callable[[bool], None] | None = None,
    ) -> None:
        self.store = store
        self.execute = execute
        self.transaction = transaction  # None: the store's write_dbapi, looked up at each use
        self.after = after
        self.name = name
        self.max_batch = max_batch
        self.idle = idle
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._queue: list[tuple[J, Future[Any]]] = []
        self._writer: threading.Thread | None = None
        # Per thread (``run`` writes in its caller's): whether the last batch reached its commit.
        self._progress = threading.local()

    def run(self, job: J) -> Any:
        """Run ``job`` now, in this thread, in a transaction of its own; its result once durable."""
        ((result, error),) = self._committed([job])
        if error is not None:
            raise error
        return result

    def submit(self, job: J) -> Future[Any]:
        """Queue ``job`` for the writer; its future resolves once the job's batch committed."""
        future: Future[Any] = Future()
        with self._lock:
            self._queue.append((job, future))
            if self._writer is None:
                self._writer = threading.Thread(target=self._work, name=self.name, daemon=True)
                self._writer.start()
            else:
                self._ready.notify()
        return future

    def _work(self) -> None:
        try:
            while True:
                with self._lock:
                    while not self._queue:
                        if not self._ready.wait(self.idle) and not self._queue:
                            self._writer = None  # a later submit starts another
                            return
                    batch = self._queue[: self.max_batch]
                    del self._queue[: self.max_batch]
                self._settle(batch)
        except BaseException:
            with self._lock:
                self._writer = None
            raise

    def _settle(self, batch: list[tuple[J, Future[Any]]]) -> None:
        live = [(job, future) for job, future in batch if future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            outcomes = self._committed([job for job, _ in live])
        except Exception as e:
            if len(live) > 1 and not getattr(self._progress, "committing", False):
                for one in live:  # nothing of the batch was written: each job again, alone
                    self._settle_alone(*one)
            else:
                for _, future in live:
                    future.set_exception(e)
            return
        except BaseException as e:
            for _, future in live:
                future.set_exception(e)
            raise
        for (_, future), (result, error) in zip(live, outcomes, strict=True):
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    def _settle_alone(self, job: J, future: Future[Any]) -> None:
        try:
            future.set_result(self.run(job))
        except Exception as e:
            future.set_exception(e)

    def _committed(self, jobs: Sequence[J]) -> list[Outcome]:
        self._progress.committing = False
        try:
            with (self.transaction or self.store.write_dbapi)() as db:
                outcomes = self.execute(db, jobs)
                if len(outcomes) != len(jobs):  # before the commit: nothing of it is kept
                    raise RuntimeError(
                        f"{self.name}: {len(outcomes)} outcomes for {len(jobs)} jobs"
                    )
                self._progress.committing = True  # the block's end commits
        except BaseException:
            if self.after is not None:
                self.after(False)
            raise
        if self.after is not None:
            self.after(True)
        return outcomes
