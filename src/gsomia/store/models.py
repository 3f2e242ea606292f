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
