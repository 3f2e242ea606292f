"""What the store hands out: frozen records, free of SQLAlchemy sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Role(StrEnum):
    OFFICER = "officer"  # creates and reads items, derives, asks for dry-run decisions
    RELEASE_AUTHORITY = "release-authority"  # an officer who also reclassifies and disposes
    AUDITOR = "auditor"  # reads the access register and the user list
    ADMIN = "admin"  # manages users


class Disposition(StrEnum):
    HELD = "held"
    RETURNED = "returned"
    DESTROYED = "destroyed"


class Derivation(StrEnum):
    COPY = "copy"
    EXTRACT = "extract"
    TRANSLATION = "translation"


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    roles: frozenset[Role]
    clearance: str | None  # a level id of the node's own scheme
    need_to_know: frozenset[str]
    compartments: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def has(self, *roles: Role) -> bool:
        return bool(self.roles & set(roles))


@dataclass(frozen=True, slots=True)
class Visibility:
    """What a user may see: items at or below a rank, within need-to-know and compartments."""

    max_rank: int
    need_to_know: frozenset[str]
    compartments: frozenset[str]


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    title: str
    label: dict[str, Any]  # SecurityLabel.to_dict(), as the node marks the item
    level_rank: int
    size: int
    payload_sha256: str
    created_at: datetime
    created_by: str | None
    version: int
    status: Disposition
    source_item_id: str | None = None
    derivation: Derivation | None = None
    received_from: str | None = None
    received_under: str | None = None
    origin_item_id: str | None = None  # the originator's id for the item (None: it is ours)
    disposed_at: datetime | None = None
    disposed_by: str | None = None
    disposition_note: str | None = None


@dataclass(frozen=True, slots=True)
class LabelChange:
    item_id: str
    version: int
    old_label: dict[str, Any]
    new_label: dict[str, Any]
    changed_at: datetime
    changed_by: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class AccessRecord:
    id: int
    item_id: str | None
    user_id: str | None
    action: str
    at: datetime
    detail: str


@dataclass(frozen=True, slots=True)
class Consent:
    id: str
    item_id: str | None
    originator: str
    recorded_at: datetime
    recorded_by: str | None
    reference: str


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    rows: tuple[T, ...]
    total: int
    next_cursor: str | None
