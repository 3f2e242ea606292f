"""The link journal: every track update a node accepted, in the order it accepted them.

A node writes each update it accepts (ingested from its own sensors' producers, or received from
a peer) to ``link_updates`` before it acknowledges it, so that an acknowledged update survives a
crash: the journal position ``pos`` is what subscribers resume from (the SSE ``Last-Event-ID``),
and ``link_cursors`` remembers, per peer, the position up to which the peer acknowledged what
this node forwarded to it, so that a restarted node re-sends the rest.

Writes are SQLAlchemy Core ``executemany`` batches: one transaction (one fsync) per batch of
updates, because the link runs at thousands of updates a second.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from gsomia.store.models import Base


class LinkUpdateRow(Base):
    __tablename__ = "link_updates"
    __table_args__ = (UniqueConstraint("track_id", "seq", name="uq_link_updates_track_seq"),)

    pos: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    track_id: Mapped[str] = mapped_column(String(128), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    originator: Mapped[str] = mapped_column(String(16))
    sender: Mapped[str] = mapped_column(String(16))  # the previous hop (the node itself if local)
    instrument: Mapped[str] = mapped_column(String(128))
    phase: Mapped[str] = mapped_column(String(16))
    # The label as this node marks it, and what visibility needs of it.
    label: Mapped[str] = mapped_column(Text)
    level_rank: Mapped[int] = mapped_column(Integer)
    topics: Mapped[str] = mapped_column(Text)  # JSON list
    compartments: Mapped[str] = mapped_column(Text)  # JSON list
    body: Mapped[str] = mapped_column(Text)  # the wire form (JSON): never holds sensor fields
    sensor: Mapped[str | None] = mapped_column(Text)  # originator-local sensor metadata (JSON)
    hops: Mapped[str] = mapped_column(Text)  # JSON: [{"p": party, "in": ns, "out": ns}]
    forward: Mapped[str] = mapped_column(Text)  # JSON: {next hop: [final recipients]}
    consents: Mapped[str] = mapped_column(Text)  # JSON list of parties whose consent is held
    received_at: Mapped[datetime]


class LinkCursorRow(Base):
    __tablename__ = "link_cursors"
    peer: Mapped[str] = mapped_column(String(16), primary_key=True)
    acked_pos: Mapped[int] = mapped_column(Integer)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One accepted update as the journal holds it."""

    pos: int
    track_id: str
    seq: int
    originator: str
    sender: str
    instrument: str
    phase: str
    label: dict[str, Any]
    level_rank: int
    topics: frozenset[str]
    compartments: frozenset[str]
    body: dict[str, Any]
    sensor: dict[str, Any] | None
    hops: list[dict[str, Any]]
    forward: dict[str, list[str]]
    consents: frozenset[str]
    received_at: datetime

    def to_row(self) -> dict[str, Any]:
        return {
            "pos": self.pos,
            "track_id": self.track_id,
            "seq": self.seq,
            "originator": self.originator,
            "sender": self.sender,
            "instrument": self.instrument,
            "phase": self.phase,
            "label": json.dumps(self.label, sort_keys=True),
            "level_rank": self.level_rank,
            "topics": json.dumps(sorted(self.topics)),
            "compartments": json.dumps(sorted(self.compartments)),
            "body": json.dumps(self.body, separators=(",", ":")),
            "sensor": json.dumps(self.sensor) if self.sensor is not None else None,
            "hops": json.dumps(self.hops, separators=(",", ":")),
            "forward": json.dumps(self.forward, sort_keys=True),
            "consents": json.dumps(sorted(self.consents)),
            "received_at": self.received_at,
        }


def _entry(row: Any) -> JournalEntry:
    return JournalEntry(
        pos=row.pos,
        track_id=row.track_id,
        seq=row.seq,
        originator=row.originator,
        sender=row.sender,
        instrument=row.instrument,
        phase=row.phase,
        label=json.loads(row.label),
        level_rank=row.level_rank,
        topics=frozenset(json.loads(row.topics)),
        compartments=frozenset(json.loads(row.compartments)),
        body=json.loads(row.body),
        sensor=json.loads(row.sensor) if row.sensor is not None else None,
        hops=json.loads(row.hops),
        forward=json.loads(row.forward),
        consents=frozenset(json.loads(row.consents)),
        received_at=row.received_at,
    )


_T = cast(Table, LinkUpdateRow.__table__)
_C = cast(Table, LinkCursorRow.__table__)


class LinkJournal:
    def __init__(self, session: Session) -> None:
        self.s = session

    def append(self, entries: Sequence[JournalEntry]) -> None:
        if entries:
            self.s.execute(insert(_T), [e.to_row() for e in entries])

    def last_pos(self) -> int:
        return int(self.s.execute(select(func.coalesce(func.max(_T.c.pos), 0))).scalar_one())

    def next_seqs(self) -> dict[str, int]:
        """Per track, the sequence number the journal expects next."""
        rows = self.s.execute(select(_T.c.track_id, func.max(_T.c.seq)).group_by(_T.c.track_id))
        return {track: int(seq) + 1 for track, seq in rows}

    def after(self, pos: int, *, limit: int = 10_000) -> list[JournalEntry]:
        rows = self.s.execute(select(_T).where(_T.c.pos > pos).order_by(_T.c.pos).limit(limit))
        return [_entry(r) for r in rows]

    def track(self, track_id: str) -> list[JournalEntry]:
        rows = self.s.execute(select(_T).where(_T.c.track_id == track_id).order_by(_T.c.seq))
        return [_entry(r) for r in rows]

    def cursors(self) -> dict[str, int]:
        return {peer: int(pos) for peer, pos in self.s.execute(select(_C.c.peer, _C.c.acked_pos))}

    def set_cursors(self, cursors: Iterable[tuple[str, int]]) -> None:
        known = self.cursors()
        for peer, pos in cursors:
            if peer in known:
                if pos > known[peer]:
                    self.s.execute(update(_C).where(_C.c.peer == peer).values(acked_pos=pos))
            else:
                self.s.execute(insert(_C).values(peer=peer, acked_pos=pos))
