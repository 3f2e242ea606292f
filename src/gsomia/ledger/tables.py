"""The ledger's tables, on the node's declarative ``Base`` (so Alembic sees and migrates them).

    ledger_entries      one row per entry, in log order: its record (canonical JSON), the
                        record's SHA-256, its kind and instant, and the hashes of the perfect
                        subtrees that this entry completes (the stored tree)
    ledger_head         one row: the log's size and root, the row an append locks
    ledger_checkpoints  every signed checkpoint the node issued, as the signed note
    ledger_cosignatures peers' cosignatures of those checkpoints, sent back by the witnesses:
                        one row per witness and checkpoint, the note with the node's signature
                        and the witness's (migration 0004)

The stored tree is laid out as in Go's tlog (golang.org/x/mod/sumdb/tlog): entry ``i`` completes
the perfect subtrees at levels 1..t, where t is the number of trailing one bits of ``i``, and
their hashes are kept in its row, lowest level first (``nodes``, 32 bytes each; empty for even
``i``). So the hash of ``Subtree(level, index)`` sits in the row of its last leaf,
``((index + 1) << level) - 1``, and any proof reads O(log n) rows by primary key, in one query.
Leaf hashes are not stored: they are recomputed from the row (kind, instant and digest).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gsomia.store.models import Base

# BIGINT on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" is the row id (a B-tree keyed by
# the integer itself), so appends go to the end of the table with no second index.
_Index = BigInteger().with_variant(Integer(), "sqlite")


class LedgerEntryRow(Base):
    __tablename__ = "ledger_entries"

    idx: Mapped[int] = mapped_column(_Index, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    # Before the record: a reader of the tree stops before the long column.
    nodes: Mapped[bytes] = mapped_column(LargeBinary)
    record: Mapped[str] = mapped_column(Text)


class LedgerHeadRow(Base):
    __tablename__ = "ledger_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LedgerCheckpointRow(Base):
    __tablename__ = "ledger_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    origin: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger, index=True)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class LedgerCosignatureRow(Base):
    """A witness's cosignature of one of this node's checkpoints, as the witness sent it back."""

    __tablename__ = "ledger_cosignatures"
    # One row per witness and checkpoint: a cosignature sent again replaces nothing new.
    __table_args__ = (UniqueConstraint("witness", "size", "root_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    witness: Mapped[str] = mapped_column(String(8))
    size: Mapped[int] = mapped_column(BigInteger)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)  # the node's signature, then the witness's
    received_at: Mapped[datetime]
