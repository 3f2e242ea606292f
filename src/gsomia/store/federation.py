"""Repositories for federation: peers, shares, the outbox, the inbox, nonces, consents asked and
given, incidents and notices. Same rules as :mod:`gsomia.store.repositories`: one session, frozen
records out."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gsomia.core.errors import ConflictError, InputError, ReplayError
from gsomia.store.models import (
    ConsentRequestRow,
    InboxRow,
    IncidentRow,
    NonceRow,
    NoticeRow,
    OutboxRow,
    PeerRow,
    ShareRow,
)


@dataclass(frozen=True, slots=True)
class Peer:
    party: str
    url: str
    signing_key: str
    encryption_key: str
    added_at: datetime
    removed_at: datetime | None


@dataclass(frozen=True, slots=True)
class Share:
    id: str
    item_id: str
    requested_by: str | None
    recipient: str
    route: tuple[str, ...]
    instruments: tuple[str, ...]
    status: str
    reasons: tuple[str, ...]
    decision: dict[str, Any]
    created_at: datetime
    queued_real: datetime
    delivered_real: datetime | None
    last_error: str | None
    envelope_id: str | None
    consent_request_id: str | None
    relay_of: str | None
    receipt: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        latency = None
        if self.delivered_real is not None:
            latency = (self.delivered_real - self.queued_real).total_seconds() * 1000
        return {
            "id": self.id,
            "item_id": self.item_id,
            "requested_by": self.requested_by,
            "from": self.route[0] if self.route else None,
            "to": self.recipient,
            "route": list(self.route),
            "instruments": list(self.instruments),
            "instrument": self.instruments[0] if self.instruments else None,
            "status": self.status,
            "reasons": list(self.reasons),
            "created_at": self.created_at.isoformat(),
            "latency_ms": round(latency, 2) if latency is not None else None,
            "last_error": self.last_error,
            "envelope_id": self.envelope_id,
            "consent_request_id": self.consent_request_id,
            "relay_of": self.relay_of,
            "receipt": self.receipt,
        }


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    envelope_id: str
    share_id: str | None
    kind: str
    peer: str
    body: bytes
    attempts: int
    created_at: datetime


def _peer(row: PeerRow) -> Peer:
    return Peer(
        row.party, row.url, row.signing_key, row.encryption_key, row.added_at, row.removed_at
    )


def _share(row: ShareRow) -> Share:
    return Share(
        id=row.id,
        item_id=row.item_id,
        requested_by=row.requested_by,
        recipient=row.recipient,
        route=tuple(row.route),
        instruments=tuple(row.instruments),
        status=row.status,
        reasons=tuple(row.reasons),
        decision=dict(row.decision),
        created_at=row.created_at,
        queued_real=row.queued_real,
        delivered_real=row.delivered_real,
        last_error=row.last_error,
        envelope_id=row.envelope_id,
        consent_request_id=row.consent_request_id,
        relay_of=row.relay_of,
        receipt=dict(row.receipt) if row.receipt else None,
    )


class Peers:
    def __init__(self, session: Session) -> None:
        self.s = session

    def add(
        self, *, party: str, url: str, signing_key: str, encryption_key: str, now: datetime
    ) -> Peer:
        row = self.s.get(PeerRow, party)
        if row is not None and row.removed_at is None:
            raise ConflictError(f"{party} is already a peer; remove it first to re-pin its keys")
        if row is None:
            row = PeerRow(party=party)
            self.s.add(row)
        row.url, row.signing_key, row.encryption_key = url.rstrip("/"), signing_key, encryption_key
        row.added_at, row.removed_at = now, None
        return _peer(row)

    def get(self, party: str) -> Peer | None:
        row = self.s.get(PeerRow, party)
        return _peer(row) if row is not None and row.removed_at is None else None

    def list(self) -> list[Peer]:
        return [_peer(r) for r in self.s.scalars(select(PeerRow).order_by(PeerRow.party))]

    def remove(self, party: str, now: datetime) -> Peer:
        row = self.s.get(PeerRow, party)
        if row is None or row.removed_at is not None:
            raise InputError(f"{party} is not a peer")
        row.removed_at = now
        return _peer(row)


class Shares:
    def __init__(self, session: Session) -> None:
        self.s = session

    def add(self, **fields: Any) -> Share:
        fields.setdefault("id", str(uuid.uuid4()))
        row = ShareRow(**fields)
        self.s.add(row)
        self.s.flush()
        return _share(row)

    def get(self, share_id: str) -> Share | None:
        row = self.s.get(ShareRow, share_id)
        return _share(row) if row else None

    def update(self, share_id: str, **fields: Any) -> Share:
        row = self.s.get(ShareRow, share_id)
        if row is None:
            raise InputError(f"no share {share_id}")
        for key, value in fields.items():
            setattr(row, key, value)
        return _share(row)

    def list(self, *, item_id: str | None = None, limit: int = 100) -> list[Share]:
        query = select(ShareRow).order_by(ShareRow.queued_real, ShareRow.id).limit(limit)
        if item_id is not None:
            query = query.where(ShareRow.item_id == item_id)
        return [_share(r) for r in self.s.scalars(query)]

    def delivered_for_item(self, item_id: str) -> builtins.list[Share]:
        rows = self.s.scalars(
            select(ShareRow).where(
                ShareRow.item_id == item_id, ShareRow.status.in_(("delivered", "relayed"))
            )
        )
        return [_share(r) for r in rows]


class Outbox:
    def __init__(self, session: Session) -> None:
        self.s = session

    def put(
        self,
        *,
        envelope_id: str,
        share_id: str | None,
        kind: str,
        peer: str,
        body: bytes,
        now: datetime,
    ) -> None:
        self.s.add(
            OutboxRow(
                envelope_id=envelope_id,
                share_id=share_id,
                kind=kind,
                peer=peer,
                body=body,
                created_at=now,
                next_attempt_at=now,
                attempts=0,
                status="pending",
            )
        )

    def claim(
        self,
        *,
        now: datetime,
        lease: timedelta | None,
        limit: int,
        skip_locked: bool,
        exclude: Iterable[int] = (),
    ) -> list[OutboxEntry]:
        """Due entries, leased to this worker: another worker (or a restart) retries them only
        after the lease ends, so delivery is at least once and never stalls on a crash."""
        query = (
            select(OutboxRow)
            .where(
                OutboxRow.status == "pending",
                OutboxRow.next_attempt_at <= now,
                or_(OutboxRow.lease_until.is_(None), OutboxRow.lease_until <= now),
            )
            .order_by(OutboxRow.id)
            .limit(limit)
        )
        excluded = list(exclude)
        if excluded:
            query = query.where(OutboxRow.id.not_in(excluded))
        if skip_locked:
            query = query.with_for_update(skip_locked=True)
        rows = list(self.s.scalars(query))
        if lease is not None:  # None: the caller tracks what it holds (one process, SQLite)
            for row in rows:
                row.lease_until = now + lease
        return [
            OutboxEntry(
                r.id, r.envelope_id, r.share_id, r.kind, r.peer, r.body, r.attempts, r.created_at
            )
            for r in rows
        ]

    def delivered(self, entry_id: int, *, now: datetime, response: dict[str, Any]) -> None:
        row = self.s.get(OutboxRow, entry_id)
        assert row is not None
        row.status, row.delivered_at, row.response, row.lease_until = (
            "delivered",
            now,
            response,
            None,
        )

    def refused(
        self, entry_id: int, *, now: datetime, error: str, response: dict[str, Any]
    ) -> None:
        row = self.s.get(OutboxRow, entry_id)
        assert row is not None
        row.status, row.last_error, row.response, row.lease_until = "refused", error, response, None
        row.delivered_at = now

    def retry(self, entry_id: int, *, at: datetime, error: str, give_up: bool) -> None:
        row = self.s.get(OutboxRow, entry_id)
        assert row is not None
        row.attempts += 1
        row.last_error = error
        row.lease_until = None
        row.next_attempt_at = at
        if give_up:
            row.status = "failed"

    def next_due(self) -> datetime | None:
        """When the next pending entry may be claimed: a leased one only when its lease ends."""
        due = case(
            (
                and_(
                    OutboxRow.lease_until.is_not(None),
                    OutboxRow.lease_until > OutboxRow.next_attempt_at,
                ),
                OutboxRow.lease_until,
            ),
            else_=OutboxRow.next_attempt_at,
        )
        found: Any = self.s.scalar(select(func.min(due)).where(OutboxRow.status == "pending"))
        if found is None:
            return None
        if isinstance(found, str):  # SQLite returns the MIN of a CASE as stored text
            found = datetime.fromisoformat(found)
        instant: datetime = found if found.tzinfo else found.replace(tzinfo=UTC)
        return instant


class Inbox:
    def __init__(self, session: Session) -> None:
        self.s = session

    def get(self, envelope_id: str) -> InboxRow | None:
        return self.s.get(InboxRow, envelope_id)

    def put(self, **fields: Any) -> None:
        self.s.add(InboxRow(**fields))


class Nonces:
    def __init__(self, session: Session) -> None:
        self.s = session

    def prune(self, before: datetime) -> None:
        self.s.execute(delete(NonceRow).where(NonceRow.seen_at < before))

    def seen(self, key_id: str, nonce: str) -> bool:
        return self.s.get(NonceRow, (key_id, nonce)) is not None

    def remember(self, key_id: str, nonce: str, now: datetime, window: timedelta) -> None:
        """Record a request nonce; a nonce seen before is a replay."""
        if self.s.get(NonceRow, (key_id, nonce)) is not None:
            raise ReplayError("this request was seen before")
        self.s.add(NonceRow(key_id=key_id, nonce=nonce, seen_at=now))
        try:
            self.s.flush()
        except IntegrityError as e:  # a concurrent twin of the same request
            raise ReplayError("this request was seen before") from e


class ConsentRequests:
    def __init__(self, session: Session) -> None:
        self.s = session

    def add(self, **fields: Any) -> ConsentRequestRow:
        fields.setdefault("id", str(uuid.uuid4()))
        row = ConsentRequestRow(**fields)
        self.s.add(row)
        return row

    def get(self, request_id: str) -> ConsentRequestRow | None:
        return self.s.get(ConsentRequestRow, request_id)

    def list(
        self, *, direction: str | None = None, status: str | None = None
    ) -> list[ConsentRequestRow]:
        conditions = []
        if direction is not None:
            conditions.append(ConsentRequestRow.direction == direction)
        if status is not None:
            conditions.append(ConsentRequestRow.status == status)
        query = (
            select(ConsentRequestRow).where(and_(*conditions))
            if conditions
            else select(ConsentRequestRow)
        )
        return list(self.s.scalars(query.order_by(ConsentRequestRow.created_at)))


class Incidents:
    def __init__(self, session: Session) -> None:
        self.s = session

    def add(self, **fields: Any) -> IncidentRow:
        fields.setdefault("id", str(uuid.uuid4()))
        row = IncidentRow(**fields)
        self.s.add(row)
        return row

    def get(self, incident_id: str) -> IncidentRow | None:
        return self.s.get(IncidentRow, incident_id)

    def list(self) -> list[IncidentRow]:
        return list(self.s.scalars(select(IncidentRow).order_by(IncidentRow.created_at)))


class Notices:
    def __init__(self, session: Session) -> None:
        self.s = session

    def add(self, **fields: Any) -> NoticeRow:
        fields.setdefault("id", str(uuid.uuid4()))
        row = NoticeRow(**fields)
        self.s.add(row)
        return row

    def get(self, notice_id: str) -> NoticeRow | None:
        return self.s.get(NoticeRow, notice_id)

    def list(self) -> list[NoticeRow]:
        return list(self.s.scalars(select(NoticeRow).order_by(NoticeRow.created_at)))
