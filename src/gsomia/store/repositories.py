"""Repositories: intention-revealing operations over one session, returning frozen records.

Visibility is applied in SQL (clearance rank, need-to-know, compartments), so that a list, a
search and a count all agree on what a user may know exists: an item outside a user's access is
not filtered out after paging, it is never selected.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    exists,
    false,
    func,
    insert,
    not_,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session

from gsomia.core.errors import ConflictError, InputError, InvalidCursorError
from gsomia.ledger.log import NewEntry, append_entries
from gsomia.store.models import (
    AccessRow,
    ConsentRow,
    ItemCompartmentRow,
    ItemRow,
    ItemTopicRow,
    LabelChangeRow,
    NodeMetaRow,
    TokenRow,
    UserRow,
)
from gsomia.store.records import (
    AccessRecord,
    Consent,
    Derivation,
    Disposition,
    Item,
    LabelChange,
    Page,
    Role,
    User,
    Visibility,
)

MAX_PAGE = 500


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode("|".join(parts).encode()).decode().rstrip("=")


_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,512}")
_ITEM_ID = re.compile(r"[0-9A-Za-z-]{1,64}")


def _decode_cursor(cursor: str, parts: int) -> list[str]:
    # The decoder skips characters outside the alphabet: check first, or junk reads as a start.
    if not _CURSOR.fullmatch(cursor):
        raise InvalidCursorError("malformed page cursor")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        # Split from the left, at most parts-1 times: the last field (a user name) may hold "|".
        fields = base64.urlsafe_b64decode(padded.encode()).decode().split("|", parts - 1)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidCursorError("malformed page cursor") from e
    if len(fields) != parts:
        raise InvalidCursorError("malformed page cursor")
    return fields


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InputError(f"limit must be between 1 and {MAX_PAGE}")
    return limit


# -- users ------------------------------------------------------------------------------------


def _aware(at: datetime) -> datetime:
    """Core rows bypass the ORM's type processing on some drivers: make sure it is UTC-aware."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _user(row: UserRow) -> User:
    return User(
        id=row.id,
        name=row.name,
        roles=frozenset(Role(r) for r in row.roles),
        clearance=row.clearance,
        need_to_know=frozenset(row.need_to_know),
        compartments=frozenset(row.compartments),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


class Users:
    def __init__(self, session: Session) -> None:
        self.s = session

    def add(
        self,
        *,
        name: str,
        roles: Iterable[Role],
        clearance: str | None,
        need_to_know: Iterable[str],
        compartments: Iterable[str],
        token: str,
        now: datetime,
    ) -> User:
        if self.s.scalar(select(UserRow.id).where(UserRow.name == name)) is not None:
            raise ConflictError(f"a user named {name!r} already exists")
        row = UserRow(
            id=str(uuid.uuid4()),
            name=name,
            roles=sorted(Role(r).value for r in roles),
            clearance=clearance,
            need_to_know=sorted(set(need_to_know)),
            compartments=sorted(set(compartments)),
            created_at=now,
            revoked_at=None,
        )
        self.s.add(row)
        self.s.flush()
        self.s.add(TokenRow(token_hash=token_digest(token), user_id=row.id, created_at=now))
        return _user(row)

    def by_token(self, token: str) -> User | None:
        """The active user holding an active ``token``, or None."""
        # Core, not the ORM: this runs on every request, and a unit of work buys nothing here.
        row = self.s.execute(
            select(
                UserRow.id,
                UserRow.name,
                UserRow.roles,
                UserRow.clearance,
                UserRow.need_to_know,
                UserRow.compartments,
                UserRow.created_at,
            )
            .join(TokenRow, TokenRow.user_id == UserRow.id)
            .where(
                TokenRow.token_hash == token_digest(token),
                TokenRow.revoked_at.is_(None),
                UserRow.revoked_at.is_(None),
            )
        ).first()
        if row is None:
            return None
        return User(
            id=row.id,
            name=row.name,
            roles=frozenset(Role(r) for r in row.roles),
            clearance=row.clearance,
            need_to_know=frozenset(row.need_to_know),
            compartments=frozenset(row.compartments),
            created_at=_aware(row.created_at),
            revoked_at=None,
        )

    def get(self, user_id: str) -> User | None:
        row = self.s.get(UserRow, user_id)
        return _user(row) if row else None

    def by_name(self, name: str) -> User | None:
        row = self.s.scalar(select(UserRow).where(UserRow.name == name))
        return _user(row) if row else None

    def list(self, *, limit: int = 100, cursor: str | None = None) -> Page[User]:
        query = select(UserRow)
        total = self.s.scalar(select(func.count()).select_from(UserRow)) or 0
        if cursor:
            (after,) = _decode_cursor(cursor, 1)
            query = query.where(UserRow.name > after)
        rows = self.s.scalars(query.order_by(UserRow.name).limit(_limit(limit) + 1)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _encode_cursor(rows[-1].name) if more and rows else None
        return Page(tuple(_user(r) for r in rows), total, next_cursor)

    def add_token(self, user_id: str, token: str, now: datetime) -> None:
        self.s.add(TokenRow(token_hash=token_digest(token), user_id=user_id, created_at=now))

    def revoke(self, user_id: str, now: datetime) -> User | None:
        row = self.s.get(UserRow, user_id)
        if row is None:
            return None
        if row.revoked_at is None:
            row.revoked_at = now
        self.s.execute(
            update(TokenRow)
            .where(TokenRow.user_id == user_id, TokenRow.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return _user(row)

    def count_admins(self) -> int:
        rows = self.s.scalars(select(UserRow.roles).where(UserRow.revoked_at.is_(None))).all()
        return sum(1 for roles in rows if Role.ADMIN.value in roles)


# -- items ------------------------------------------------------------------------------------


def _item(row: ItemRow) -> Item:
    return Item(
        id=row.id,
        title=row.title,
        label=dict(row.label),
        level_rank=row.level_rank,
        size=row.size,
        payload_sha256=row.payload_sha256,
        created_at=row.created_at,
        created_by=row.created_by,
        version=row.version,
        status=Disposition(row.status),
        source_item_id=row.source_item_id,
        derivation=Derivation(row.derivation) if row.derivation else None,
        received_from=row.received_from,
        received_under=row.received_under,
        origin_item_id=row.origin_item_id,
        disposed_at=row.disposed_at,
        disposed_by=row.disposed_by,
        disposition_note=row.disposition_note,
    )


def visible(visibility: Visibility) -> ColumnElement[bool]:
    """The SQL condition for the items ``visibility`` allows (fail closed on empty sets)."""
    if visibility.max_rank <= 0:
        return false()  # no clearance: nothing exists
    topic_ok: ColumnElement[bool] = (
        ItemTopicRow.topic.not_in(sorted(visibility.need_to_know))
        if visibility.need_to_know
        else true()
    )
    compartment_ok: ColumnElement[bool] = (
        ItemCompartmentRow.compartment.not_in(sorted(visibility.compartments))
        if visibility.compartments
        else true()
    )
    return and_(
        ItemRow.level_rank <= visibility.max_rank,
        not_(exists().where(ItemTopicRow.item_id == ItemRow.id, topic_ok)),
        not_(exists().where(ItemCompartmentRow.item_id == ItemRow.id, compartment_ok)),
    )


class Items:
    def __init__(self, session: Session) -> None:
        self.s = session

    def add(
        self,
        *,
        title: str,
        label: dict[str, Any],
        level_rank: int,
        payload: bytes,
        created_by: str | None,
        now: datetime,
        source_item_id: str | None = None,
        derivation: Derivation | None = None,
        received_from: str | None = None,
        received_under: str | None = None,
        origin_item_id: str | None = None,
        item_id: str | None = None,
    ) -> Item:
        topics = sorted(set(label.get("topics", ())))
        compartments = sorted(set(label.get("compartments", ())))
        if not topics:
            raise InputError("an item needs at least one topic: need-to-know is decided on topics")
        if item_id is not None and not _ITEM_ID.fullmatch(item_id):
            raise InputError(f"an item id is 1 to 64 letters, digits and hyphens: {item_id[:64]!r}")
        row = ItemRow(
            id=item_id or str(uuid.uuid4()),
            title=title,
            originator=label["originator"],
            policy=label["policy"],
            classification=label["classification"],
            level_rank=level_rank,
            label=label,
            payload=payload,
            payload_sha256=hashlib.sha256(payload).hexdigest(),
            size=len(payload),
            created_at=now,
            created_by=created_by,
            version=1,
            status=Disposition.HELD.value,
            source_item_id=source_item_id,
            derivation=derivation.value if derivation else None,
            received_from=received_from,
            received_under=received_under,
            origin_item_id=origin_item_id,
        )
        self.s.add(row)
        self.s.flush()  # the parent row exists before its topic rows reference it
        # One executemany each, rather than an ORM object per row.
        self.s.execute(insert(ItemTopicRow), [{"item_id": row.id, "topic": t} for t in topics])
        if compartments:
            self.s.execute(
                insert(ItemCompartmentRow),
                [{"item_id": row.id, "compartment": c} for c in compartments],
            )
        return _item(row)

    def get(self, item_id: str, visibility: Visibility | None) -> Item | None:
        """The item, or None when it does not exist or ``visibility`` does not allow it."""
        query = select(ItemRow).where(ItemRow.id == item_id)
        if visibility is not None:
            query = query.where(visible(visibility))
        row = self.s.scalar(query)
        return _item(row) if row else None

    def get_with_payload(
        self, item_id: str, visibility: Visibility | None
    ) -> tuple[Item, bytes] | None:
        """The item and its content in one query (or None, as for ``get``)."""
        query = select(ItemRow).where(ItemRow.id == item_id)
        if visibility is not None:
            query = query.where(visible(visibility))
        row = self.s.scalar(query)
        return (_item(row), bytes(row.payload)) if row else None

    def payload(self, item_id: str) -> bytes:
        data = self.s.scalar(select(ItemRow.payload).where(ItemRow.id == item_id))
        if data is None:
            raise InputError(f"no item {item_id}")
        return bytes(data)

    def search(
        self,
        visibility: Visibility,
        *,
        topic: str | None = None,
        originator: str | None = None,
        classification: str | None = None,
        status: Disposition | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Item]:
        conditions: list[ColumnElement[bool]] = [visible(visibility)]
        if topic is not None:
            conditions.append(
                exists().where(ItemTopicRow.item_id == ItemRow.id, ItemTopicRow.topic == topic)
            )
        if originator is not None:
            conditions.append(ItemRow.originator == originator)
        if classification is not None:
            conditions.append(ItemRow.classification == classification)
        if status is not None:
            conditions.append(ItemRow.status == status.value)
        if created_after is not None:
            conditions.append(ItemRow.created_at >= created_after)
        if created_before is not None:
            conditions.append(ItemRow.created_at < created_before)
        total = self.s.scalar(select(func.count()).select_from(ItemRow).where(*conditions)) or 0
        query = select(ItemRow).where(*conditions)
        if cursor:
            at_text, after_id = _decode_cursor(cursor, 2)
            try:
                at = datetime.fromisoformat(at_text)
            except ValueError as e:
                raise InvalidCursorError("malformed page cursor") from e
            if at.tzinfo is None:
                raise InvalidCursorError("malformed page cursor")
            query = query.where(
                or_(ItemRow.created_at > at, and_(ItemRow.created_at == at, ItemRow.id > after_id))
            )
        rows = self.s.scalars(
            query.order_by(ItemRow.created_at, ItemRow.id).limit(_limit(limit) + 1)
        ).all()
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = (
            _encode_cursor(rows[-1].created_at.isoformat(), rows[-1].id) if more and rows else None
        )
        return Page(tuple(_item(r) for r in rows), total, next_cursor)

    def relabel(
        self,
        item_id: str,
        *,
        label: dict[str, Any],
        level_rank: int,
        changed_by: str | None,
        reason: str,
        now: datetime,
    ) -> Item:
        """A new label for the item (a reclassification); the old one is kept as history."""
        topics = sorted(set(label.get("topics", ())))
        compartments = sorted(set(label.get("compartments", ())))
        if not topics:
            # Fail closed: an item with no topic would be visible to anyone cleared to its level.
            raise InputError("an item needs at least one topic: need-to-know is decided on topics")
        row = self.s.get(ItemRow, item_id, with_for_update=True)
        if row is None:
            raise InputError(f"no item {item_id}")
        self.s.add(
            LabelChangeRow(
                item_id=item_id,
                version=row.version + 1,
                old_label=row.label,
                new_label=label,
                changed_at=now,
                changed_by=changed_by,
                reason=reason,
            )
        )
        row.label = label
        row.policy = label["policy"]
        row.classification = label["classification"]
        row.level_rank = level_rank
        row.version += 1
        self.s.query(ItemTopicRow).filter(ItemTopicRow.item_id == item_id).delete()
        self.s.query(ItemCompartmentRow).filter(ItemCompartmentRow.item_id == item_id).delete()
        self.s.flush()
        self.s.add_all(ItemTopicRow(item_id=item_id, topic=t) for t in topics)
        self.s.add_all(ItemCompartmentRow(item_id=item_id, compartment=c) for c in compartments)
        return _item(row)

    def history(self, item_id: str) -> list[LabelChange]:
        rows = self.s.scalars(
            select(LabelChangeRow)
            .where(LabelChangeRow.item_id == item_id)
            .order_by(LabelChangeRow.version)
        ).all()
        return [
            LabelChange(
                item_id=r.item_id,
                version=r.version,
                old_label=dict(r.old_label),
                new_label=dict(r.new_label),
                changed_at=r.changed_at,
                changed_by=r.changed_by,
                reason=r.reason,
            )
            for r in rows
        ]

    def dispose(
        self, item_id: str, *, status: Disposition, by: str | None, note: str, now: datetime
    ) -> Item:
        row = self.s.get(ItemRow, item_id, with_for_update=True)
        if row is None:
            raise InputError(f"no item {item_id}")
        if row.status != Disposition.HELD.value:
            raise ConflictError(f"item {item_id} was already {row.status}")
        row.status = status.value
        row.disposed_at = now
        row.disposed_by = by
        row.disposition_note = note
        if status is Disposition.DESTROYED:
            row.payload = b""  # destruction (Art. 13) leaves the record, not the content
        return _item(row)

    def derived_from(self, item_id: str, visibility: Visibility) -> list[Item]:
        rows = self.s.scalars(
            select(ItemRow)
            .where(ItemRow.source_item_id == item_id, visible(visibility))
            .order_by(ItemRow.created_at, ItemRow.id)
        ).all()
        return [_item(r) for r in rows]

    def count(self) -> int:
        return self.s.scalar(select(func.count()).select_from(ItemRow)) or 0

    def copies_of(self, origin_item_id: str) -> list[Item]:
        """Our items that are copies of the originator's item ``origin_item_id``."""
        rows = self.s.scalars(
            select(ItemRow).where(ItemRow.origin_item_id == origin_item_id).order_by(ItemRow.id)
        ).all()
        return [_item(r) for r in rows]


# -- the access register ----------------------------------------------------------------------


class AccessRegister:
    def __init__(self, session: Session) -> None:
        self.s = session

    def record(
        self,
        *,
        item_id: str | None,
        user_id: str | None,
        action: str,
        at: datetime,
        detail: str,
        evidence: dict[str, Any] | None = None,
    ) -> None:
        """Record an act, and append it to the node's ledger in the same transaction.

        Every act the node takes goes through here, so every act is a ledger entry: it commits
        with the act or not at all. ``evidence`` adds what the entry should prove beyond the
        register row (a decision's digest and registry hash, a receipt's digest, ...).
        """
        self.s.execute(
            insert(AccessRow).values(
                item_id=item_id, user_id=user_id, action=action, at=at, detail=detail
            )
        )
        record: dict[str, Any] = {
            "act": action,
            "item": item_id,
            "user": user_id,
            "detail": detail,
            "at": at.astimezone(UTC).isoformat(),
        }
        if evidence:
            record["evidence"] = evidence
        append_entries(self.s, [NewEntry(f"act.{action}", record, at)])

    def list(
        self,
        *,
        item_id: str | None = None,
        user_id: str | None = None,
        action: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[AccessRecord]:
        conditions: list[ColumnElement[bool]] = []
        if item_id is not None:
            conditions.append(AccessRow.item_id == item_id)
        if user_id is not None:
            conditions.append(AccessRow.user_id == user_id)
        if action is not None:
            conditions.append(AccessRow.action == action)
        total = self.s.scalar(select(func.count()).select_from(AccessRow).where(*conditions)) or 0
        query = select(AccessRow).where(*conditions)
        if cursor:
            (after,) = _decode_cursor(cursor, 1)
            if not (after.isascii() and after.isdigit() and len(after) <= 18):
                raise InvalidCursorError("malformed page cursor")
            query = query.where(AccessRow.id > int(after))
        rows = self.s.scalars(query.order_by(AccessRow.id).limit(_limit(limit) + 1)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(
            tuple(AccessRecord(r.id, r.item_id, r.user_id, r.action, r.at, r.detail) for r in rows),
            total,
            _encode_cursor(str(rows[-1].id)) if more and rows else None,
        )


# -- consents and node metadata ---------------------------------------------------------------


class Consents:
    def __init__(self, session: Session) -> None:
        self.s = session

    def add(
        self,
        *,
        item_id: str | None,
        originator: str,
        recorded_by: str | None,
        reference: str,
        now: datetime,
    ) -> Consent:
        row = ConsentRow(
            id=str(uuid.uuid4()),
            item_id=item_id,
            originator=originator,
            recorded_at=now,
            recorded_by=recorded_by,
            reference=reference,
        )
        self.s.add(row)
        return Consent(row.id, item_id, originator, now, recorded_by, reference)

    def for_item(self, item_id: str) -> list[Consent]:
        rows = self.s.scalars(
            select(ConsentRow).where(ConsentRow.item_id == item_id).order_by(ConsentRow.recorded_at)
        ).all()
        return [
            Consent(r.id, r.item_id, r.originator, r.recorded_at, r.recorded_by, r.reference)
            for r in rows
        ]


class NodeMeta:
    def __init__(self, session: Session) -> None:
        self.s = session

    def get(self, key: str) -> str | None:
        row = self.s.get(NodeMetaRow, key)
        return row.value if row else None

    def set(self, key: str, value: str) -> None:
        row = self.s.get(NodeMetaRow, key)
        if row is None:
            self.s.add(NodeMetaRow(key=key, value=value))
        else:
            row.value = value
