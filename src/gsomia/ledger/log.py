"""The persistent, append-only ledger of a node: entries, the stored tree, signed checkpoints.

An entry is a record (a JSON object), its kind (``decision``, ``share.sent``, ...) and its
instant. The record is kept as its RFC 8785 canonical text, and the entry as the record's SHA-256
(the *digest*). The leaf of the RFC 9162 tree commits to the kind, the instant and the digest::

    leaf data  = "gsomia-ledger-entry/1\\n" kind "\\n" instant "\\n" hex(digest) "\\n"
    instant    = the UTC instant as YYYY-MM-DDTHH:MM:SS.ffffffZ

so a record can be proven included with its digest alone, and checked by anyone holding it.

Appends run in one transaction per batch (group commit): the head row is locked, the tree's
peaks are read (or taken from a cache keyed by the head's size *and* root, so a rolled-back or
concurrent append can never be mistaken for ours), the new leaves and the subtree hashes they
complete are computed in memory, and all rows go in with one ``executemany``. Proofs and roots
read the O(log n) stored subtree hashes they need in one indexed query (see
:mod:`gsomia.ledger.tables` for the layout). :meth:`Ledger.verify` recomputes everything from the
records and reports each disagreement with its table, row and entry index.

Call :func:`append_entries` with a session of your own to write entries in the same transaction
as the act they record.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from sqlalchemy import Connection, Dialect, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from gsomia.core.canonical import b64
from gsomia.core.errors import (
    CheckpointError,
    InvalidInstantError,
    InvalidRecordError,
    LedgerInconsistentError,
    LedgerRangeError,
    StorageError,
)
from gsomia.core.jcs import canonical_pair
from gsomia.crypto.keys import SigningPrivateKey
from gsomia.ledger import merkle
from gsomia.ledger.checkpoint import Checkpoint, NoteVerifier, SignedNote, open_checkpoint
from gsomia.ledger.merkle import HASH_SIZE, CompactRange, Subtree
from gsomia.ledger.tables import (
    LedgerCheckpointRow,
    LedgerCosignatureRow,
    LedgerEntryRow,
    LedgerHeadRow,
)
from gsomia.store.engine import Store

__all__ = [
    "LEAF_FORMAT",
    "MAX_RECORD_BYTES",
    "Appender",
    "ConsistencyProof",
    "Entry",
    "ExternalCheckpoint",
    "InclusionProof",
    "Ledger",
    "NewEntry",
    "Problem",
    "Report",
    "StoredCheckpoint",
    "StoredCosignature",
    "append_entries",
    "leaf_data",
]

LEAF_FORMAT = "gsomia-ledger-entry/1"
MAX_RECORD_BYTES = 1 << 20
BATCH_ROWS = 10_000  # rows per executemany: bounds memory for a huge append_many
VERIFY_CHUNK = 4096
HEAD_ID = 1

_KIND = re.compile(r"[a-z][a-z0-9]*(?:[._-][a-z0-9]+)*")
_sha256 = hashlib.sha256
_ENTRIES = LedgerEntryRow.__table__
_ENTRIES_NAME = LedgerEntryRow.__tablename__
_HEAD_NAME = LedgerHeadRow.__tablename__
_COSIGNATURES_NAME = LedgerCosignatureRow.__tablename__


# -- values -----------------------------------------------------------------------------------


def _instant_text(at: datetime) -> str:
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInstantError(f"a ledger entry needs an aware instant, not {at!r}")
    try:
        utc = at.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise InvalidInstantError(f"{at!r} is outside the years 1 to 9999 in UTC") from None
    # isoformat, not strftime: the year is always four digits
    return utc.isoformat(timespec="microseconds") + "Z"


def leaf_data(kind: str, at: datetime, digest: bytes) -> bytes:
    """The bytes an entry's leaf hashes (after the RFC 9162 0x00 prefix)."""
    return f"{LEAF_FORMAT}\n{kind}\n{_instant_text(at)}\n{digest.hex()}\n".encode("ascii")


def _check_kind(kind: str) -> str:
    if not isinstance(kind, str) or len(kind) > 64 or not _KIND.fullmatch(kind):
        raise InvalidRecordError(
            f"{kind!r} is not an entry kind (lowercase words joined by '.', '-' or '_')"
        )
    return kind


def _canonical(record: Mapping[str, Any]) -> tuple[str, bytes]:
    """The record's canonical text and bytes, or InvalidRecordError."""
    if type(record) is not dict and not isinstance(record, Mapping):
        raise InvalidRecordError(f"a ledger record is a JSON object, not {type(record).__name__}")
    try:
        text, raw = canonical_pair(record)
    except (TypeError, ValueError) as e:
        raise InvalidRecordError(f"the record cannot be canonicalised: {e}") from None
    if len(raw) > MAX_RECORD_BYTES:
        raise InvalidRecordError(f"a ledger record is at most {MAX_RECORD_BYTES} bytes")
    return text, raw


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry to append: its kind, its record (a JSON object) and its instant."""

    kind: str
    record: Mapping[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True)
class Entry:
    """An entry as stored: its index, kind, instant, digest and canonical record text."""

    index: int
    kind: str
    at: datetime
    digest: bytes
    record_json: str

    @property
    def record(self) -> Any:
        return json.loads(self.record_json)

    @property
    def leaf_hash(self) -> bytes:
        return merkle.leaf_hash(leaf_data(self.kind, self.at, self.digest))

    def record_matches(self) -> bool:
        return _sha256(self.record_json.encode("utf-8")).digest() == self.digest


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """Entry ``index`` is leaf ``index`` of the tree of ``size`` entries (RFC 9162 §2.1.3)."""

    index: int
    size: int
    leaf_hash: bytes
    path: tuple[bytes, ...]

    def root(self) -> bytes:
        return merkle.root_from_inclusion_proof(self.leaf_hash, self.index, self.size, self.path)

    def verify(self, root: bytes) -> None:
        merkle.verify_inclusion(self.leaf_hash, self.index, self.size, self.path, root)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "size": self.size,
            "leaf_hash": b64(self.leaf_hash),
            "path": [b64(h) for h in self.path],
        }


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """The tree of ``old_size`` entries is a prefix of the tree of ``new_size`` (§2.1.4)."""

    old_size: int
    new_size: int
    path: tuple[bytes, ...]

    def verify(self, old_root: bytes, new_root: bytes) -> None:
        merkle.verify_consistency(self.old_size, self.new_size, old_root, new_root, self.path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "old_size": self.old_size,
            "new_size": self.new_size,
            "path": [b64(h) for h in self.path],
        }


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A checkpoint this node signed, as kept in ``ledger_checkpoints``."""

    id: int
    origin: str
    size: int
    root_hash: bytes
    note: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "size": self.size,
            "root_hash": b64(self.root_hash),
            "created_at": self.created_at.isoformat(),
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class StoredCosignature:
    """A witness's cosignature of a checkpoint this node signed, as kept in
    ``ledger_cosignatures``: ``note`` carries the node's signature and the witness's."""

    id: int
    witness: str
    size: int
    root_hash: bytes
    note: str
    received_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "witness": self.witness,
            "size": self.size,
            "root_hash": b64(self.root_hash),
            "note": self.note,
            "received_at": self.received_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ExternalCheckpoint:
    """A signed checkpoint kept outside the database (a file, a peer's copy): ``source`` says where.

    The database cannot vouch for itself: a copy rolled back to an older state is consistent
    with itself. A checkpoint the node signed and left elsewhere is ahead of such a copy.
    """

    source: str
    note: str


@dataclass(frozen=True, slots=True)
class Problem:
    """One disagreement found by :meth:`Ledger.verify`: what, and exactly where."""

    check: str  # a stable slug: record-digest, entry-missing, subtree-hash, checkpoint-root, ...
    table: str  # the table (or, for an external checkpoint, its source)
    row: str | None  # the row's key, e.g. "idx=41"
    index: int | None  # the entry index concerned, if any
    message: str
    peer: str | None = None  # for a peer's cosignature: the witness
    size: int | None = None  # for a checkpoint or a cosignature: the tree size it signs

    def __str__(self) -> str:
        where = self.table + (f" [{self.row}]" if self.row else "")
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "table": self.table,
            "row": self.row,
            "index": self.index,
            "message": self.message,
            "peer": self.peer,
            "size": self.size,
        }


@dataclass(frozen=True, slots=True)
class Report:
    """What :meth:`Ledger.verify` checked, and every problem it found (up to a limit)."""

    size: int
    root_hash: bytes
    entries_checked: int
    checkpoints_checked: int
    external_checked: int
    problems: tuple[Problem, ...]
    problems_omitted: int = 0
    cosignatures_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        if self.problems:
            more = len(self.problems) + self.problems_omitted - 1
            suffix = f" (and {more} more problems)" if more else ""
            raise LedgerInconsistentError(f"{self.problems[0]}{suffix}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "size": self.size,
            "root_hash": b64(self.root_hash),
            "entries_checked": self.entries_checked,
            "checkpoints_checked": self.checkpoints_checked,
            "external_checked": self.external_checked,
            "cosignatures_checked": self.cosignatures_checked,
            "problems": [p.to_dict() for p in self.problems],
            "problems_omitted": self.problems_omitted,
        }


# -- the head and the stored tree: driver-level statements --------------------------------


@dataclass(frozen=True, slots=True)
class _Head:
    size: int
    root: bytes


class _Sql:
    """The hot statements, run on the driver's cursor inside SQLAlchemy's transaction.

    A proof is two small indexed reads. Through SQLAlchemy, building the execution context and
    processing the rows cost several times more than the reads, so these statements go to the
    DBAPI connection (for a write, the one SQLAlchemy holds: same transaction, same locks,
    same commit).
    Instants still go through the column type's own processors, so the stored form is exactly
    the ORM's.
    """

    __slots__ = ("bind_at", "for_update", "mark", "read_at", "sqlite")

    def __init__(self, dialect: Dialect) -> None:
        self.sqlite = dialect.name == "sqlite"
        self.mark = "?" if dialect.paramstyle == "qmark" else "%s"
        # PostgreSQL: lock the head row; SQLite's BEGIN IMMEDIATE has locked the database.
        self.for_update = "" if dialect.name == "sqlite" else " FOR UPDATE"
        impl = _ENTRIES.c.created_at.type.dialect_impl(dialect)
        self.bind_at: Callable[[datetime], Any] = impl.bind_processor(dialect) or _same
        self.read_at: Callable[[Any], Any] = impl.result_processor(dialect, None) or _same

    def head(self, db: Any, *, lock: bool = False) -> _Head:
        cursor = db.cursor()
        cursor.execute(
            f"SELECT size, root_hash FROM {_HEAD_NAME} WHERE id = {HEAD_ID}"
            + (self.for_update if lock else "")
        )
        row = cursor.fetchone()
        if row is None:
            raise LedgerInconsistentError("ledger_head: the head row is missing")
        return _Head(int(row[0]), bytes(row[1]))

    def set_head(self, db: Any, head: _Head) -> None:
        db.cursor().execute(
            f"UPDATE {_HEAD_NAME} SET size = {self.mark}, root_hash = {self.mark} "
            f"WHERE id = {HEAD_ID}",
            (head.size, head.root),
        )

    def insert(self, db: Any, rows: list[tuple[Any, ...]]) -> None:
        marks = ", ".join([self.mark] * 6)
        db.cursor().executemany(
            f"INSERT INTO {_ENTRIES_NAME} (idx, kind, created_at, digest, nodes, record) "
            f"VALUES ({marks})",
            rows,
        )

    def subtree_hashes(self, db: Any, subtrees: Iterable[Subtree]) -> dict[tuple[int, int], bytes]:
        """The stored hashes of ``subtrees`` by (level, index): one query, on their last leaves.

        Keyed by plain tuples: a proof looks up dozens, and a tuple of ints hashes in C.
        """
        wanted = {(s.level, s.index): s.end - 1 for s in subtrees}
        if not wanted:
            return {}
        indices = sorted(set(wanted.values()))
        cursor = db.cursor()
        cursor.execute(
            f"SELECT idx, kind, created_at, digest, nodes FROM {_ENTRIES_NAME} "
            f"WHERE idx IN ({', '.join([self.mark] * len(indices))})",
            tuple(indices),
        )
        rows = {int(r[0]): r for r in cursor.fetchall()}
        out: dict[tuple[int, int], bytes] = {}
        for key, last in wanted.items():
            row = rows.get(last)
            if row is None:
                raise LedgerInconsistentError(f"ledger_entries: no row for entry {last}")
            level = key[0]
            if level == 0:
                at = self.read_at(row[2])
                out[key] = merkle.leaf_hash(leaf_data(row[1], at, bytes(row[3])))
                continue
            hashed = bytes(row[4])[(level - 1) * HASH_SIZE : level * HASH_SIZE]
            if len(hashed) != HASH_SIZE:
                raise LedgerInconsistentError(
                    f"ledger_entries [idx={last}]: no stored hash for subtree level {level}"
                )
            out[key] = hashed
        return out

    def peaks(self, db: Any, size: int) -> CompactRange:
        subtrees = merkle.perfect_subtrees(0, size)
        hashes = self.subtree_hashes(db, subtrees)
        return CompactRange(size, _pick(hashes, subtrees))

    def ranges(
        self, db: Any, ranges: Sequence[tuple[int, int]], extra: Iterable[Subtree]
    ) -> tuple[list[bytes], dict[tuple[int, int], bytes]]:
        """The MTH of each range, from the stored perfect subtrees (one query for all)."""
        parts = [merkle.perfect_subtrees(a, b) for a, b in ranges]
        hashes = self.subtree_hashes(db, [*(s for p in parts for s in p), *extra])
        return [merkle.fold(_pick(hashes, p)) for p in parts], hashes


def _pick(hashes: dict[tuple[int, int], bytes], subtrees: Iterable[Subtree]) -> list[bytes]:
    return [hashes[s.level, s.index] for s in subtrees]


def _same(value: Any) -> Any:
    return value


def _dbapi(connection: Connection) -> Any:
    """The DBAPI connection under ``connection``: statements on it join its transaction."""
    return connection.connection.driver_connection


# -- appending --------------------------------------------------------------------------------


class _Cache:
    """The peaks of the last tree this process wrote, valid only for that exact (size, root)."""

    __slots__ = ("root", "tree")

    def __init__(self) -> None:
        self.tree: CompactRange | None = None
        self.root = b""

    def get(self, head: _Head) -> CompactRange | None:
        if self.tree is not None and self.tree.size == head.size and self.root == head.root:
            return self.tree.copy()
        return None

    def put(self, tree: CompactRange, root: bytes) -> None:
        self.tree, self.root = tree.copy(), root


def append_entries(session: Session, entries: Iterable[NewEntry]) -> range:
    """Append ``entries`` in ``session``'s transaction; the indices they got.

    The session must be a write transaction (``Store.write()``); nothing is committed here, so
    the entries become durable with whatever else the caller writes, or not at all.
    """
    connection = session.connection()
    return _append(_dbapi(connection), _sql_for(connection.dialect), entries, None)


_SQLS: dict[str, _Sql] = {}  # by dialect name: the statements depend on nothing else


def _sql_for(dialect: Dialect) -> _Sql:
    """The dialect's statements, built once (``append_entries`` runs for every act)."""
    found = _SQLS.get(dialect.name)
    if found is None:
        found = _SQLS[dialect.name] = _Sql(dialect)
    return found


class Appender:
    """Appends in transactions of the caller's own, on the driver's connection, for a frequent
    appender: it keeps the dialect's statements, and the peaks of the tree it last appended to
    (valid only for that exact size and root: an append by another writer, or one rolled back,
    is a miss, and the peaks are read again)."""

    def __init__(self, dialect: Dialect) -> None:
        self._sql = _sql_for(dialect)
        self._cache = _Cache()

    def append(self, db: Any, entries: Iterable[NewEntry]) -> range:
        """Append ``entries`` on ``db``, a DBAPI connection in a write transaction (as
        :func:`append_entries`: nothing is committed here); the indices they got."""
        return _append(db, self._sql, entries, self._cache)


def _append(db: Any, sql: _Sql, entries: Iterable[NewEntry], cache: _Cache | None) -> range:
    head = sql.head(db, lock=True)
    tree = cache.get(head) if cache is not None else None
    if tree is None:
        tree = sql.peaks(db, head.size)
        if tree.root() != head.root:
            raise LedgerInconsistentError(
                f"ledger_head: the stored root does not match the stored tree at size {head.size}"
            )
    source = iter(entries)
    sha256, hexlify, join, add_leaf = _sha256, binascii.hexlify, b"".join, tree.append
    while batch := list(islice(source, BATCH_ROWS)):
        rows = []
        # The leaf's fixed part and the bound instant, per (kind, instant): a batch of one
        # act's entries shares both. Kept per batch, so memory stays bounded.
        fixed: dict[tuple[str, datetime], tuple[bytes, Any]] = {}
        last_kind, last_at, prefix, bound_at = None, None, b"", None
        for e in batch:
            if e.kind is not last_kind or e.at is not last_at:  # same objects: same prefix
                key = (e.kind, e.at)
                known = fixed.get(key)
                if known is None:
                    known = fixed[key] = (
                        b"\x00" + leaf_data(_check_kind(e.kind), e.at, b"")[:-1],
                        sql.bind_at(e.at),
                    )
                last_kind, last_at, (prefix, bound_at) = e.kind, e.at, known
            text, raw = _canonical(e.record)
            digest = sha256(raw).digest()
            # = leaf_hash(leaf_data(kind, at, digest)), without rebuilding the fixed part
            leaf = sha256(prefix + hexlify(digest) + b"\n").digest()
            index = tree.size
            rows.append((index, e.kind, bound_at, digest, join(add_leaf(leaf)), text))
        sql.insert(db, rows)
    root = tree.root()
    sql.set_head(db, _Head(tree.size, root))
    if cache is not None:
        cache.put(tree, root)
    return range(head.size, tree.size)


# -- the ledger -------------------------------------------------------------------------------


class Ledger:
    """A node's ledger over its store.

    Writing: :meth:`append`, :meth:`append_many` (one transaction each), or
    :func:`append_entries` inside a transaction of your own. Reading: :meth:`size`,
    :meth:`entry`, :meth:`root`, :meth:`inclusion_proof`, :meth:`consistency_proof`.
    Checkpoints: :meth:`checkpoint` signs and keeps one. Auditing: :meth:`verify`.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._sql = _sql_for(store.engine.dialect)
        self._cache = _Cache()

    @contextmanager
    def _reading(self) -> Iterator[Any]:
        """A read-only transaction on a pooled DBAPI connection.

        Proofs are the ledger's hot read path: a pooled connection with one BEGIN costs a
        fraction of a Session. Nothing is written, so the transaction is rolled back.
        """
        with _storage_errors(self.store):
            db = self.store.engine.raw_connection()
            try:
                if self._sql.sqlite:
                    # The store's connections are in autocommit mode: BEGIN, so that every
                    # read of this proof sees one snapshot. (psycopg begins by itself.)
                    db.cursor().execute("BEGIN")
                yield db
            finally:
                try:
                    db.rollback()
                finally:
                    db.close()  # back to the pool

    # -- writing

    def append(self, kind: str, record: Mapping[str, Any], at: datetime) -> int:
        """Append one entry in a transaction of its own; its index, once durable."""
        return self.append_many([NewEntry(kind, record, at)]).start

    def append_many(self, entries: Iterable[NewEntry]) -> range:
        """Append entries in one transaction (group commit); their indices, once durable."""
        with _storage_errors(self.store), self.store.write() as session:
            return _append(_dbapi(session.connection()), self._sql, entries, self._cache)

    # -- reading

    def size(self) -> int:
        with self._reading() as db:
            return self._sql.head(db).size

    def head(self) -> tuple[int, bytes]:
        """The log's size and root hash, as the head row records them."""
        with self._reading() as db:
            head = self._sql.head(db)
        return head.size, head.root

    def entry(self, index: int) -> Entry:
        return self.entries(index, index + 1)[0]

    def entries(self, start: int, stop: int) -> list[Entry]:
        """Entries ``start`` to ``stop - 1``, in order."""
        with self.store.read() as session:
            size = self._sql.head(_dbapi(session.connection())).size
            if not 0 <= start < stop <= size:
                raise LedgerRangeError(f"no entries {start}..{stop - 1} in a log of {size}")
            rows = session.execute(
                select(LedgerEntryRow)
                .where(LedgerEntryRow.idx >= start, LedgerEntryRow.idx < stop)
                .order_by(LedgerEntryRow.idx)
            ).scalars()
            found = [Entry(r.idx, r.kind, r.created_at, bytes(r.digest), r.record) for r in rows]
        if [e.index for e in found] != list(range(start, stop)):
            raise LedgerInconsistentError(f"ledger_entries: entries {start}..{stop - 1} have gaps")
        return found

    def root(self, size: int | None = None) -> bytes:
        """The root hash of the tree of the first ``size`` entries (default: all)."""
        with self._reading() as db:
            head = self._sql.head(db)
            size = _size_within(size, head.size)
            if size == head.size:
                return head.root
            return self._sql.peaks(db, size).root()

    def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProof:
        """Proof that entry ``index`` is in the tree of ``size`` entries (default: all).

        The proof is checked against the root of the stored peaks before it is returned, so a
        tampered stored hash on its path is an error here, not a proof that fails elsewhere.
        """
        with self._reading() as db:
            size = _size_within(size, self._sql.head(db).size)
            if not 0 <= index < size:
                raise LedgerRangeError(f"no entry {index} in a tree of {size}")
            peaks = merkle.perfect_subtrees(0, size)
            leaf = Subtree(0, index)
            path, hashes = self._sql.ranges(
                db, merkle.inclusion_ranges(index, size), [*peaks, leaf]
            )
        proof = InclusionProof(index, size, hashes[0, index], tuple(path))
        _self_check(lambda: proof.verify(merkle.fold(_pick(hashes, peaks))), "inclusion")
        return proof

    def consistency_proof(self, old: int, new: int | None = None) -> ConsistencyProof:
        """Proof that the tree of ``old`` entries is a prefix of the tree of ``new`` entries."""
        with self._reading() as db:
            new = _size_within(new, self._sql.head(db).size)
            if not 0 <= old <= new:
                raise LedgerRangeError(f"no consistency proof from size {old} to size {new}")
            old_peaks = merkle.perfect_subtrees(0, old)
            new_peaks = merkle.perfect_subtrees(0, new)
            path, hashes = self._sql.ranges(
                db, merkle.consistency_ranges(old, new), [*old_peaks, *new_peaks]
            )
        proof = ConsistencyProof(old, new, tuple(path))
        _self_check(
            lambda: proof.verify(
                merkle.fold(_pick(hashes, old_peaks)),
                merkle.fold(_pick(hashes, new_peaks)),
            ),
            "consistency",
        )
        return proof

    # -- checkpoints

    def checkpoint(
        self,
        signer: SigningPrivateKey,
        origin: str,
        at: datetime,
        *,
        key_name: str | None = None,
        after: Checkpoint | None = None,
    ) -> StoredCheckpoint:
        """Sign a checkpoint of the whole log as ``key_name`` (default: the origin), keep it.

        Refused (:class:`LedgerInconsistentError`) unless the log extends the last checkpoint
        kept in the database and ``after`` (one kept elsewhere, e.g. a file): signing a log
        that does not would put the node's signature on a rollback or a rewritten history.
        """
        with self.store.write() as session:
            db = _dbapi(session.connection())
            head = self._sql.head(db, lock=True)
            last = session.execute(
                select(LedgerCheckpointRow).order_by(LedgerCheckpointRow.id.desc()).limit(1)
            ).scalar_one_or_none()
            earlier = [after] + (
                [Checkpoint(last.origin, last.size, last.root_hash)] if last else []
            )
            for previous in (p for p in earlier if p is not None):
                if previous.size > head.size:
                    raise LedgerInconsistentError(
                        f"a signed checkpoint of {previous.size} entries is ahead of the log "
                        f"({head.size}): entries were removed or the database was rolled back"
                    )
                root = head.root if previous.size == head.size else None
                if (root or self._sql.peaks(db, previous.size).root()) != previous.root_hash:
                    raise LedgerInconsistentError(
                        f"the log does not extend the signed checkpoint of {previous.size} "
                        "entries: its history was changed"
                    )
            note = Checkpoint(origin, head.size, head.root).sign(key_name or origin, signer)
            return _store_checkpoint(session, note, at)

    def checkpoints(self) -> list[StoredCheckpoint]:
        with self.store.read() as session:
            rows = session.execute(select(LedgerCheckpointRow).order_by(LedgerCheckpointRow.id))
            return [_stored(r) for r in rows.scalars()]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        with self.store.read() as session:
            row = session.execute(
                select(LedgerCheckpointRow).order_by(LedgerCheckpointRow.id.desc()).limit(1)
            ).scalar_one_or_none()
            return _stored(row) if row is not None else None

    # -- witnesses' cosignatures of this node's checkpoints

    def keep_cosignature(
        self,
        note: str | bytes,
        *,
        log_key: NoteVerifier,
        witness: str,
        witness_key: NoteVerifier,
        at: datetime,
    ) -> tuple[StoredCosignature, bool]:
        """Verify a witness's cosignature of one of this node's checkpoints and keep it.

        The note must be signed by ``log_key`` (this node) and cosigned by ``witness_key`` (the
        key pinned for ``witness``), and be a checkpoint kept in ``ledger_checkpoints``: this
        node signed it. Otherwise :class:`CheckpointError`. Only the two signatures are kept.
        Returns the kept cosignature and whether it is new (the same one sent again is not).
        """
        opened = open_checkpoint(
            note, log_key, cosigners=[witness_key], min_cosigners=1, origin=log_key.name
        )
        checkpoint = opened.checkpoint
        mine = {(log_key.name, log_key.key_id), (witness_key.name, witness_key.key_id)}
        kept = SignedNote(
            opened.note.text,
            tuple(s for s in opened.note.signatures if (s.name, s.key_id) in mine),
        ).to_text()
        same = (
            LedgerCosignatureRow.witness == witness,
            LedgerCosignatureRow.size == checkpoint.size,
            LedgerCosignatureRow.root_hash == checkpoint.root_hash,
        )
        try:
            with self.store.write() as session:
                signed = session.execute(
                    select(LedgerCheckpointRow.id)
                    .where(
                        LedgerCheckpointRow.origin == checkpoint.origin,
                        LedgerCheckpointRow.size == checkpoint.size,
                        LedgerCheckpointRow.root_hash == checkpoint.root_hash,
                    )
                    .limit(1)
                ).first()
                if signed is None:
                    raise CheckpointError(
                        f"a cosignature by {witness} of a checkpoint of size {checkpoint.size} "
                        "that this node did not sign"
                    )
                row = session.execute(
                    select(LedgerCosignatureRow).where(*same)
                ).scalar_one_or_none()
                if row is not None:
                    if row.note == kept:
                        return _cosignature(row), False
                    row.note, row.received_at = kept, at  # a witness whose key was re-pinned
                else:
                    row = LedgerCosignatureRow(
                        witness=witness,
                        size=checkpoint.size,
                        root_hash=checkpoint.root_hash,
                        note=kept,
                        received_at=at,
                    )
                    session.add(row)
                session.flush()
                return _cosignature(row), True
        except IntegrityError:
            # A concurrent twin of the same cosignature committed first.
            with self.store.read() as session:
                twin = session.execute(select(LedgerCosignatureRow).where(*same)).scalar_one()
                return _cosignature(twin), False

    def cosignatures(
        self, *, witness: str | None = None, limit: int | None = None, before: int | None = None
    ) -> list[StoredCosignature]:
        """Witnesses' cosignatures of this node's checkpoints, newest first (``id < before``)."""
        query = select(LedgerCosignatureRow).order_by(LedgerCosignatureRow.id.desc())
        if witness is not None:
            query = query.where(LedgerCosignatureRow.witness == witness)
        if before is not None:
            query = query.where(LedgerCosignatureRow.id < before)
        if limit is not None:
            query = query.limit(limit)
        with self.store.read() as session:
            return [_cosignature(r) for r in session.execute(query).scalars()]

    def cosignature_count(self, *, witness: str | None = None) -> int:
        query = select(func.count()).select_from(LedgerCosignatureRow)
        if witness is not None:
            query = query.where(LedgerCosignatureRow.witness == witness)
        with self.store.read() as session:
            return int(session.execute(query).scalar_one())

    # -- auditing

    def verify(
        self,
        log_key: NoteVerifier | None = None,
        *,
        external: Sequence[ExternalCheckpoint] = (),
        witnesses: Mapping[str, NoteVerifier] | None = None,
        progress: Callable[[int, int], None] | None = None,
        max_problems: int = 1000,
    ) -> Report:
        """Recompute the log from its records and report every disagreement.

        Checks: each record against its digest; that the entries run 0, 1, 2, ... without gaps;
        each stored subtree hash against the tree recomputed from the entries; the head row's
        size and root; each stored checkpoint's signature (with ``log_key``), its fields and its
        root at its size; and each ``external`` checkpoint likewise, which is what catches a
        database rolled back to an older copy (the checkpoint is then ahead of the log).

        Each witness's cosignature kept in ``ledger_cosignatures`` is checked the same way, and
        its witness's signature with the key ``witnesses`` gives for that party (the key pinned
        for the peer): a cosignature by a party not in ``witnesses`` is a problem too.
        """
        verifier = _Verifier(log_key, max_problems, dict(witnesses or {}))
        return verifier.run(self.store, external, progress)


@contextmanager
def _storage_errors(store: Store) -> Iterator[None]:
    """The driver's own operational errors (raised by the raw cursors) as StorageError."""
    driver = store.engine.dialect.loaded_dbapi
    try:
        yield
    except (OperationalError, driver.OperationalError) as e:
        raise StorageError(f"database unavailable: {getattr(e, 'orig', e)}") from e


def _size_within(size: int | None, current: int) -> int:
    if size is None:
        return current
    if not 0 <= size <= current:
        raise LedgerRangeError(f"no tree of size {size}: the log has {current} entries")
    return size


def _self_check(check: Callable[[], None], what: str) -> None:
    try:
        check()
    except merkle.InvalidProofError as e:
        raise LedgerInconsistentError(
            f"ledger_entries: the stored tree gives an {what} proof that does not verify ({e}); "
            "run `gsomia audit verify`"
        ) from None


def _store_checkpoint(session: Session, note: SignedNote, at: datetime) -> StoredCheckpoint:
    checkpoint = Checkpoint.from_body(note.text)
    row = LedgerCheckpointRow(
        origin=checkpoint.origin,
        size=checkpoint.size,
        root_hash=checkpoint.root_hash,
        note=note.to_text(),
        created_at=at,
    )
    session.add(row)
    session.flush()
    return _stored(row)


def _stored(row: LedgerCheckpointRow) -> StoredCheckpoint:
    return StoredCheckpoint(
        row.id, row.origin, int(row.size), bytes(row.root_hash), row.note, row.created_at
    )


def _cosignature(row: LedgerCosignatureRow) -> StoredCosignature:
    return StoredCosignature(
        row.id, row.witness, int(row.size), bytes(row.root_hash), row.note, row.received_at
    )


# -- verification -----------------------------------------------------------------------------


@dataclass
class _Verifier:
    log_key: NoteVerifier | None
    max_problems: int
    witnesses: dict[str, NoteVerifier] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    omitted: int = 0

    def add(
        self,
        check: str,
        table: str,
        row: str | None,
        index: int | None,
        msg: str,
        peer: str | None = None,
        size: int | None = None,
    ) -> None:
        if len(self.problems) < self.max_problems:
            self.problems.append(Problem(check, table, row, index, msg, peer, size))
        else:
            self.omitted += 1

    def run(
        self,
        store: Store,
        external: Sequence[ExternalCheckpoint],
        progress: Callable[[int, int], None] | None,
    ) -> Report:
        # One read transaction: every check sees the same snapshot of the database.
        with store.read() as session:
            head = session.execute(select(LedgerHeadRow)).scalars().all()
            checkpoints = [
                _stored(r)
                for r in session.execute(
                    select(LedgerCheckpointRow).order_by(LedgerCheckpointRow.id)
                ).scalars()
            ]
            notes = {
                c.id: self._open(c.note, "ledger_checkpoints", f"id={c.id}") for c in checkpoints
            }
            outside = [(x, self._open(x.note, x.source, None)) for x in external]
            cosignatures = [
                _cosignature(r)
                for r in session.execute(
                    select(LedgerCosignatureRow).order_by(LedgerCosignatureRow.id)
                ).scalars()
            ]
            cosigned = {c.id: self._open_cosignature(c) for c in cosignatures}
            signed = [*notes.values(), *(o for _, o in outside), *cosigned.values()]
            wanted = (
                {c.size for c in checkpoints}
                | {c.size for c in cosignatures}
                | {o.size for o in signed if o is not None}
            )
            total = head[0].size if len(head) == 1 else 0
            tree, roots, checked = self._entries(session, wanted, total, progress)
        self._head(head, tree)
        for c in checkpoints:
            self._checkpoint(c, notes[c.id], tree.size, roots)
        for x, note in outside:
            if note is not None:
                self._against_log(note, x.source, None, tree.size, roots)
        for cosignature in cosignatures:
            self._cosignature(cosignature, cosigned[cosignature.id], tree.size, roots)
        return Report(
            size=tree.size,
            root_hash=tree.root(),
            entries_checked=checked,
            checkpoints_checked=len(checkpoints),
            external_checked=len(external),
            problems=tuple(self.problems),
            problems_omitted=self.omitted,
            cosignatures_checked=len(cosignatures),
        )

    def _open(self, note: str, table: str, row: str | None) -> Checkpoint | None:
        try:
            if self.log_key is None:
                return Checkpoint.from_body(SignedNote.parse(note).text)
            return open_checkpoint(note, self.log_key).checkpoint
        except CheckpointError as e:
            self.add("checkpoint-signature", table, row, None, f"the signed note is refused: {e}")
            return None

    def _open_cosignature(self, c: StoredCosignature) -> Checkpoint | None:
        """The checkpoint of a witness's cosignature, if this node and the witness signed it."""
        where = f"the cosignature by {c.witness} of the checkpoint of size {c.size}"
        witness_key = self.witnesses.get(c.witness)
        try:
            signed = SignedNote.parse(c.note)
            checkpoint = Checkpoint.from_body(signed.text)
            if witness_key is None:
                raise CheckpointError(f"no key is pinned for {c.witness}")
            keys = [witness_key] if self.log_key is None else [self.log_key, witness_key]
            names = signed.signed_by(keys)  # a bad signature by either key raises
            if self.log_key is not None:
                if checkpoint.origin != self.log_key.name:
                    raise CheckpointError(f"it is a checkpoint of {checkpoint.origin!r}")
                if self.log_key.name not in names:
                    raise CheckpointError("it has no signature by this node's key")
            if witness_key.name not in names:
                raise CheckpointError(f"it has no signature by the key pinned for {c.witness}")
        except CheckpointError as e:
            self.add(
                "cosignature-signature",
                _COSIGNATURES_NAME,
                f"id={c.id}",
                None,
                f"{where} is refused: {e.message}",
                c.witness,
                c.size,
            )
            return None
        return checkpoint

    def _cosignature(
        self, c: StoredCosignature, note: Checkpoint | None, size: int, roots: dict[int, bytes]
    ) -> None:
        row = f"id={c.id}"
        where = f"the cosignature by {c.witness} of the checkpoint of size {c.size}"
        if note is not None and (note.size, note.root_hash) != (c.size, c.root_hash):
            self.add(
                "cosignature-fields",
                _COSIGNATURES_NAME,
                row,
                None,
                f"{where}: the size or root columns differ from the cosigned note "
                f"(size {note.size})",
                c.witness,
                c.size,
            )
        checkpoint = note or Checkpoint(
            self.log_key.name if self.log_key else "unknown", c.size, c.root_hash
        )
        if checkpoint.size > size:
            self.add(
                "cosignature-ahead",
                _COSIGNATURES_NAME,
                row,
                None,
                f"{where}: the cosigned checkpoint of {checkpoint.size} entries is ahead of the "
                f"log's {size}: entries were removed or the database was rolled back",
                c.witness,
                checkpoint.size,
            )
        elif roots.get(checkpoint.size) != checkpoint.root_hash:
            self.add(
                "cosignature-root",
                _COSIGNATURES_NAME,
                row,
                None,
                f"{where}: the cosigned root at size {checkpoint.size} differs from the root "
                "recomputed from the entries: the history was changed",
                c.witness,
                checkpoint.size,
            )

    def _entries(
        self,
        session: Session,
        wanted: set[int],
        total: int,
        progress: Callable[[int, int], None] | None,
    ) -> tuple[CompactRange, dict[int, bytes], int]:
        tree = CompactRange()
        roots: dict[int, bytes] = {}
        if 0 in wanted:
            roots[0] = tree.root()
        checked = 0
        gap = False  # after a missing entry, positions are unknown: the tree is not checked
        read_at = _sql_for(session.get_bind().dialect).read_at
        stored_at, instant = None, ""  # consecutive entries often share an instant
        for idx, kind, created_at, raw_digest, raw_nodes, record in _stream(session):
            checked += 1
            if progress is not None and checked % VERIFY_CHUNK == 0:
                progress(checked, max(total, checked))
            digest = bytes(raw_digest)
            if _sha256(record.encode()).digest() != digest:
                self.add(
                    "record-digest",
                    "ledger_entries",
                    f"idx={idx}",
                    idx,
                    f"the record of entry {idx} does not match its digest {digest.hex()[:16]}…",
                )
            if gap:
                continue
            if idx != tree.size:
                missing = f"{tree.size}" if idx == tree.size + 1 else f"{tree.size}..{idx - 1}"
                self.add(
                    "entry-missing",
                    "ledger_entries",
                    None,
                    tree.size,
                    f"entries {missing} are missing (the next row is idx={idx}); the tree "
                    "beyond is not checked",
                )
                gap = True
                continue
            if created_at != stored_at:
                stored_at, instant = created_at, _instant_text(read_at(created_at))
            leaf = _sha256(
                f"\x00{LEAF_FORMAT}\n{kind}\n{instant}\n{digest.hex()}\n".encode()
            ).digest()  # = leaf_hash(leaf_data(kind, at, digest)), instant formatted once
            completed = tree.append(leaf)
            if completed or raw_nodes:  # most even entries have neither: skip the call
                self._nodes(idx, bytes(raw_nodes), completed)
            if tree.size in wanted:
                roots[tree.size] = tree.root()
        if progress is not None:
            progress(checked, max(total, checked))
        return tree, roots, checked

    def _nodes(self, index: int, stored: bytes, completed: list[bytes]) -> None:
        if stored == b"".join(completed):
            return
        row = f"idx={index}"
        if len(stored) != HASH_SIZE * len(completed):
            self.add(
                "subtree-count",
                "ledger_entries",
                row,
                index,
                f"entry {index} completes {len(completed)} subtrees but its row holds "
                f"{len(stored) / HASH_SIZE:g} hashes",
            )
        for level, want in enumerate(completed, start=1):
            got = stored[(level - 1) * HASH_SIZE : level * HASH_SIZE]
            if got != want:
                s = Subtree(level, index >> level)
                self.add(
                    "subtree-hash",
                    "ledger_entries",
                    row,
                    index,
                    f"the stored hash of subtree level {level} index {s.index} (entries "
                    f"{s.start}..{s.end - 1}) does not match the entries",
                )

    def _head(self, head: Sequence[LedgerHeadRow], tree: CompactRange) -> None:
        if len(head) != 1 or head[0].id != HEAD_ID:
            self.add("head-missing", "ledger_head", None, None, "there is not exactly one head row")
            return
        h = head[0]
        if h.size != tree.size:
            self.add(
                "head-size",
                "ledger_head",
                f"id={h.id}",
                None,
                f"the head says {h.size} entries; the table holds {tree.size} in sequence",
            )
        elif bytes(h.root_hash) != tree.root():
            self.add(
                "head-root",
                "ledger_head",
                f"id={h.id}",
                None,
                "the head's root hash does not match the tree recomputed from the entries",
            )

    def _checkpoint(
        self, c: StoredCheckpoint, note: Checkpoint | None, size: int, roots: dict[int, bytes]
    ) -> None:
        row = f"id={c.id}"
        if note is not None and (note.origin, note.size, note.root_hash) != (
            c.origin,
            c.size,
            c.root_hash,
        ):
            self.add(
                "checkpoint-fields",
                "ledger_checkpoints",
                row,
                None,
                "the origin, size or root columns differ from the signed note",
            )
        self._against_log(
            note or Checkpoint(c.origin, c.size, c.root_hash),
            "ledger_checkpoints",
            row,
            size,
            roots,
        )

    def _against_log(
        self,
        checkpoint: Checkpoint,
        table: str,
        row: str | None,
        size: int,
        roots: dict[int, bytes],
    ) -> None:
        if checkpoint.size > size:
            self.add(
                "checkpoint-ahead",
                table,
                row,
                None,
                f"a signed checkpoint of {checkpoint.size} entries is ahead of the log's {size}: "
                "entries were removed or the database was rolled back",
            )
        elif roots.get(checkpoint.size) != checkpoint.root_hash:
            self.add(
                "checkpoint-root",
                table,
                row,
                None,
                f"the signed root at size {checkpoint.size} differs from the root recomputed from "
                "the entries: the history was changed",
            )


def _stream(session: Session) -> Iterator[tuple[Any, ...]]:
    """Every entry row in index order, read in chunks by primary key (keyset pagination).

    Rows are ``(idx, kind, created_at as stored, digest, nodes, record)``, read on the driver's
    cursor: verification reads every row, and SQLAlchemy's row processing would be most of it.
    """
    db = _dbapi(session.connection())
    mark = "?" if session.get_bind().dialect.paramstyle == "qmark" else "%s"
    query = (
        f"SELECT idx, kind, created_at, digest, nodes, record FROM {_ENTRIES_NAME} "
        f"WHERE idx > {mark} ORDER BY idx LIMIT {VERIFY_CHUNK}"
    )
    after = -1
    while True:
        cursor = db.cursor()
        cursor.execute(query, (after,))
        rows = cursor.fetchall()
        if not rows:
            return
        yield from rows
        after = rows[-1][0]
