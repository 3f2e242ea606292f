"""The node's tables (SQLAlchemy 2 declarative). Alembic migrations are kept in step with these;
``alembic check`` in the test suite fails on any drift."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every engine.

    SQLite keeps no offset, so instants are stored as UTC and read back as UTC; a naive datetime
    is refused at the door rather than silently taken as local time.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[str]: JSON,
        dict[str, Any] | None: JSON,
    }


class NodeMetaRow(Base):
    __tablename__ = "node_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class UserRow(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    roles: Mapped[list[str]]
    clearance: Mapped[str | None] = mapped_column(String(64))
    need_to_know: Mapped[list[str]]
    compartments: Mapped[list[str]]
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class TokenRow(Base):
    __tablename__ = "tokens"
    # SHA-256 of a 256-bit random token: a slow password hash buys nothing for such secrets.
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class ItemRow(Base):
    __tablename__ = "items"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    originator: Mapped[str] = mapped_column(String(8), index=True)
    policy: Mapped[str] = mapped_column(String(16))
    classification: Mapped[str] = mapped_column(String(64))
    level_rank: Mapped[int] = mapped_column(Integer)
    label: Mapped[dict[str, Any]]
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="held")
    source_item_id: Mapped[str | None] = mapped_column(ForeignKey("items.id"))
    derivation: Mapped[str | None] = mapped_column(String(16))
    received_from: Mapped[str | None] = mapped_column(String(8))
    received_under: Mapped[str | None] = mapped_column(String(64))
    # The originator's own id for the item, so notices from the originator find every copy.
    origin_item_id: Mapped[str | None] = mapped_column(String(36), index=True)
    disposed_at: Mapped[datetime | None]
    disposed_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    disposition_note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_items_created_at_id", "created_at", "id"),)


class ItemTopicRow(Base):
    """One row per topic of an item, so need-to-know filters in SQL (lists and counts agree)."""

    __tablename__ = "item_topics"
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), primary_key=True)
    topic: Mapped[str] = mapped_column(String(64), primary_key=True)


class ItemCompartmentRow(Base):
    __tablename__ = "item_compartments"
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), primary_key=True)
    compartment: Mapped[str] = mapped_column(String(64), primary_key=True)


class LabelChangeRow(Base):
    __tablename__ = "label_changes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    old_label: Mapped[dict[str, Any]]
    new_label: Mapped[dict[str, Any]]
    changed_at: Mapped[datetime]
    changed_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(Text)


class AccessRow(Base):
    """The access register: every read of a classified item, and every act on one."""

    __tablename__ = "access_register"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str | None] = mapped_column(ForeignKey("items.id"), index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]
    detail: Mapped[str] = mapped_column(Text, default="")


class ConsentRow(Base):
    __tablename__ = "consents"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    item_id: Mapped[str | None] = mapped_column(ForeignKey("items.id"), index=True)
    originator: Mapped[str] = mapped_column(String(8))
    recorded_at: Mapped[datetime]
    recorded_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    reference: Mapped[str] = mapped_column(Text, default="")


# -- federation -------------------------------------------------------------------------------


class PeerRow(Base):
    """A partner node, its keys pinned out of band."""

    __tablename__ = "peers"
    party: Mapped[str] = mapped_column(String(8), primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    signing_key: Mapped[str] = mapped_column(String(100))
    encryption_key: Mapped[str] = mapped_column(String(100))
    added_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]


class ShareRow(Base):
    __tablename__ = "shares"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), index=True)
    requested_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    recipient: Mapped[str] = mapped_column(String(8))
    route: Mapped[list[str]]
    instruments: Mapped[list[str]]
    status: Mapped[str] = mapped_column(String(20), index=True)
    reasons: Mapped[list[str]]
    decision: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]  # the node's (legal) clock
    queued_real: Mapped[datetime]  # wall clock, for latency
    delivered_real: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    envelope_id: Mapped[str | None] = mapped_column(String(36), index=True)
    consent_request_id: Mapped[str | None] = mapped_column(String(36))
    relay_of: Mapped[str | None] = mapped_column(Text)  # JSON: the upstream sender and share
    receipt: Mapped[dict[str, Any] | None]


class OutboxRow(Base):
    """Sealed envelopes waiting to be delivered: written with the act that caused them."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    envelope_id: Mapped[str] = mapped_column(String(36), unique=True)
    share_id: Mapped[str | None] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(32))
    peer: Mapped[str] = mapped_column(String(8))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    response: Mapped[dict[str, Any] | None]

    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)


class InboxRow(Base):
    """Envelopes accepted, with the receipt given: a redelivery gets the same receipt."""

    __tablename__ = "inbox"
    envelope_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sender: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(32))
    digest: Mapped[str] = mapped_column(String(80))
    received_at: Mapped[datetime]
    receipt: Mapped[dict[str, Any]]
    item_id: Mapped[str | None] = mapped_column(String(36))


class NonceRow(Base):
    """Request nonces seen within the signature window (replay protection)."""

    __tablename__ = "seen_nonces"
    key_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(80), primary_key=True)
    seen_at: Mapped[datetime]


class ConsentRequestRow(Base):
    __tablename__ = "consent_requests"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    direction: Mapped[str] = mapped_column(
        String(8)
    )  # incoming (to us, the originator) or outgoing
    origin_item_id: Mapped[str] = mapped_column(String(36))
    item_id: Mapped[str | None] = mapped_column(String(36))  # our copy, if any
    requester: Mapped[str] = mapped_column(String(8))
    originator: Mapped[str] = mapped_column(String(8))
    recipient: Mapped[str] = mapped_column(String(8))
    share_id: Mapped[str | None] = mapped_column(String(36))
    title: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    answered_by: Mapped[str | None] = mapped_column(String(36))
    reason: Mapped[str] = mapped_column(Text, default="")


class IncidentRow(Base):
    """Loss or compromise reports (JPN-KOR GSOMIA Art. 17), sent and received."""

    __tablename__ = "incidents"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    direction: Mapped[str] = mapped_column(String(8))
    origin_item_id: Mapped[str] = mapped_column(String(36))
    item_id: Mapped[str | None] = mapped_column(String(36))
    reporter: Mapped[str] = mapped_column(String(8))
    originator: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text)
    follow_up_of: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime]
    reported_by: Mapped[str | None] = mapped_column(String(36))


class NoticeRow(Base):
    """An originator's reclassification, retraction or request to destroy, and its ack."""

    __tablename__ = "notices"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    direction: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(16))
    origin_item_id: Mapped[str] = mapped_column(String(36))
    holder: Mapped[str] = mapped_column(String(8))
    detail: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    ack: Mapped[dict[str, Any] | None]


from gsomia.ledger import tables as _ledger_tables  # noqa: E402,F401
from gsomia.store import link as _link_tables  # noqa: E402,F401
