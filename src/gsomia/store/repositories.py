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
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Dialect,
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
from gsomia.ledger.log import Appender, NewEntry, append_entries
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


def new_item_values(
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
) -> tuple[dict[str, Any], list[str], list[str]]:
    """A new item's column values, its topics and its compartments, checked (``InputError``)."""
    topics = sorted(set(label.get("topics", ())))
    compartments = sorted(set(label.get("compartments", ())))
    if not topics:
        raise InputError("an item needs at least one topic: need-to-know is decided on topics")
    if item_id is not None and not _ITEM_ID.fullmatch(item_id):
        raise InputError(f"an item id is 1 to 64 letters, digits and hyphens: {item_id[:64]!r}")
    values = {
        "id": item_id or str(uuid.uuid4()),
        "title": title,
        "originator": label["originator"],
        "policy": label["policy"],
        "classification": label["classification"],
        "level_rank": level_rank,
        "label": label,
        "payload": payload,
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "size": len(payload),
        "created_at": now,
        "created_by": created_by,
        "version": 1,
        "status": Disposition.HELD.value,
        "source_item_id": source_item_id,
        "derivation": derivation.value if derivation else None,
        "received_from": received_from,
        "received_under": received_under,
        "origin_item_id": origin_item_id,
        "disposed_at": None,
        "disposed_by": None,
        "disposition_note": None,
    }
    return values, topics, compartments


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
        values, topics, compartments = new_item_values(
            title=title,
            label=label,
            level_rank=level_rank,
            payload=payload,
            created_by=created_by,
            now=now,
            source_item_id=source_item_id,
            derivation=derivation,
            received_from=received_from,
            received_under=received_under,
            origin_item_id=origin_item_id,
            item_id=item_id,
        )
        row = ItemRow(**values)
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


def act_entry(
    item_id: str | None,
    user_id: str | None,
    action: str,
    at: datetime,
    detail: str,
    evidence: dict[str, Any] | None = None,
) -> NewEntry:
    """The ledger entry of an act recorded in the access register."""
    record: dict[str, Any] = {
        "act": action,
        "item": item_id,
        "user": user_id,
        "detail": detail,
        "at": at.astimezone(UTC).isoformat(),
    }
    if evidence:
        record["evidence"] = evidence
    return NewEntry(f"act.{action}", record, at)


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
        append_entries(self.s, [act_entry(item_id, user_id, action, at, detail, evidence)])

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


# -- the hot path: the node's most frequent acts, in group-commit batches ----------------------


def bind_processor(column: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """How ``dialect``'s driver is handed a value of ``column`` (None: as it is)."""
    processor: Callable[[Any], Any] | None = column.type.dialect_impl(dialect).bind_processor(
        dialect
    )
    return processor


def result_processor(column: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """How a value of ``column`` read from ``dialect``'s driver is made (None: as it is)."""
    processor: Callable[[Any], Any] | None = column.type.dialect_impl(dialect).result_processor(
        dialect, None
    )
    return processor


class Processors:
    """Column processors for rows of values in a fixed column order (only where a type has one)."""

    __slots__ = ("only",)

    def __init__(self, processors: Sequence[Callable[[Any], Any] | None]) -> None:
        self.only = [(i, p) for i, p in enumerate(processors) if p is not None]

    def __call__(self, values: Sequence[Any]) -> list[Any]:
        out = list(values)
        for i, p in self.only:
            if out[i] is not None:
                out[i] = p(out[i])
        return out


def item_of(v: dict[str, Any]) -> Item:
    """The item that an ``items`` row's column values, by name, describe."""
    derivation = v["derivation"]
    return Item(
        id=v["id"],
        title=v["title"],
        label=dict(v["label"]),
        level_rank=v["level_rank"],
        size=v["size"],
        payload_sha256=v["payload_sha256"],
        created_at=v["created_at"],
        created_by=v["created_by"],
        version=v["version"],
        status=Disposition(v["status"]),
        source_item_id=v["source_item_id"],
        derivation=Derivation(derivation) if derivation else None,
        received_from=v["received_from"],
        received_under=v["received_under"],
        origin_item_id=v["origin_item_id"],
        disposed_at=v["disposed_at"],
        disposed_by=v["disposed_by"],
        disposition_note=v["disposition_note"],
    )


class HotStatements:
    """The statements of the node's most frequent acts, as DBAPI text for one dialect.

    They run on the driver's connection inside SQLAlchemy's transaction (as the ledger's appends
    do): same transaction, same locks, same commit. Through the ORM, building a unit of work and
    an execution context per statement costs several times the statement itself. Values still
    go through each column type's own processors, so what is stored, and what is read back, is
    exactly what the ORM would store and read. The visibility conditions are those of
    :func:`visible`, written out.
    """

    def __init__(self, dialect: Dialect) -> None:
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self.mark = mark
        items = [c for c in ItemRow.__table__.columns if c.name != "payload"]
        payload = ItemRow.__table__.c.payload
        self._item_names = tuple(c.name for c in items)
        self._item_results = Processors([result_processor(c, dialect) for c in items])
        self._payload_result = result_processor(payload, dialect)
        self._selects: dict[tuple[bool, int, int], str] = {}
        every = list(ItemRow.__table__.columns)
        self._insert_names = tuple(c.name for c in every)
        self._insert_binds = Processors([bind_processor(c, dialect) for c in every])
        self.sqlite = dialect.name == "sqlite"
        self.insert_item = (
            f"INSERT INTO {ItemRow.__tablename__} ({', '.join(self._insert_names)})",
            len(every),
        )
        self.insert_topic = (f"INSERT INTO {ItemTopicRow.__tablename__} (item_id, topic)", 2)
        self.insert_compartment = (
            f"INSERT INTO {ItemCompartmentRow.__tablename__} (item_id, compartment)",
            2,
        )
        access = AccessRow.__table__.c
        self._access_binds = Processors(
            [
                bind_processor(c, dialect)
                for c in (access.item_id, access.user_id, access.action, access.at, access.detail)
            ]
        )
        self.insert_access = (
            f"INSERT INTO {AccessRow.__tablename__} (item_id, user_id, action, at, detail)",
            5,
        )
        users = UserRow.__table__.c
        self._user_columns = (
            users.id,
            users.name,
            users.roles,
            users.clearance,
            users.need_to_know,
            users.compartments,
            users.created_at,
        )
        self._user_results = Processors([result_processor(c, dialect) for c in self._user_columns])
        # The user last built from each token's row: the same row again is the same user.
        self._users: dict[str, tuple[tuple[Any, ...], User]] = {}

    # -- reading

    def item(
        self, db: Any, item_id: str, visibility: Visibility, *, with_payload: bool
    ) -> tuple[Item, bytes | None] | None:
        """The item (and its content), or None when it does not exist or is not visible."""
        if visibility.max_rank <= 0:
            return None  # no clearance: nothing exists
        topics = sorted(visibility.need_to_know)
        compartments = sorted(visibility.compartments)
        shape = (with_payload, len(topics), len(compartments))
        sql = self._selects.get(shape) or self._select(*shape)
        cursor = db.cursor()
        cursor.execute(sql, (item_id, visibility.max_rank, *topics, *compartments))
        row = cursor.fetchone()
        if row is None:
            return None
        n = len(self._item_names)
        values = dict(zip(self._item_names, self._item_results(row[:n]), strict=True))
        data = None
        if with_payload:
            raw = row[n]
            data = bytes(self._payload_result(raw) if self._payload_result else raw)
        return item_of(values), data

    def _select(self, with_payload: bool, topics: int, compartments: int) -> str:
        m = self.mark
        columns = ", ".join(f"i.{name}" for name in self._item_names)
        topic_ok = f" AND t.topic NOT IN ({', '.join([m] * topics)})" if topics else ""
        compartment_ok = (
            f" AND c.compartment NOT IN ({', '.join([m] * compartments)})" if compartments else ""
        )
        sql = (
            f"SELECT {columns}{', i.payload' if with_payload else ''} "
            f"FROM {ItemRow.__tablename__} i WHERE i.id = {m} AND i.level_rank <= {m} "
            f"AND NOT EXISTS (SELECT 1 FROM {ItemTopicRow.__tablename__} t "
            f"WHERE t.item_id = i.id{topic_ok}) "
            f"AND NOT EXISTS (SELECT 1 FROM {ItemCompartmentRow.__tablename__} c "
            f"WHERE c.item_id = i.id{compartment_ok})"
        )
        self._selects[with_payload, topics, compartments] = sql
        return sql

    def users_by_token(self, db: Any, token_hashes: Collection[str]) -> dict[str, User]:
        """The active users holding these active tokens (by the tokens' SHA-256), in one query."""
        if not token_hashes:
            return {}
        hashes = sorted(token_hashes)
        columns = ", ".join(f"u.{c.name}" for c in self._user_columns)
        cursor = db.cursor()
        cursor.execute(
            f"SELECT t.token_hash, {columns} FROM {TokenRow.__tablename__} t "
            f"JOIN {UserRow.__tablename__} u ON u.id = t.user_id "
            f"WHERE t.token_hash IN ({', '.join([self.mark] * len(hashes))}) "
            "AND t.revoked_at IS NULL AND u.revoked_at IS NULL",
            tuple(hashes),
        )
        out: dict[str, User] = {}
        for row in cursor.fetchall():
            token_hash, raw = row[0], tuple(row[1:])
            known = self._users.get(token_hash)
            if known is not None and known[0] == raw:
                out[token_hash] = known[1]
                continue
            uid, name, roles, clearance, need_to_know, compartments, created_at = (
                self._user_results(raw)
            )
            user = User(
                id=uid,
                name=name,
                roles=frozenset(Role(r) for r in roles),
                clearance=clearance,
                need_to_know=frozenset(need_to_know),
                compartments=frozenset(compartments),
                created_at=_aware(created_at),
                revoked_at=None,
            )
            if len(self._users) >= 4096:
                self._users.clear()
            self._users[token_hash] = (raw, user)
            out[token_hash] = user
        return out

    # -- writing

    def insert(
        self, cursor: Any, statement: tuple[str, int], rows: Sequence[Sequence[Any]]
    ) -> None:
        """``INSERT ... (columns)`` of ``rows``: an ``executemany`` on SQLite (in process, cheap);
        on PostgreSQL one statement with a ``VALUES`` row each, which costs one round trip where
        psycopg's ``executemany`` costs a pipeline's."""
        head, width = statement
        one = f"({', '.join([self.mark] * width)})"
        if self.sqlite:
            cursor.executemany(f"{head} VALUES {one}", rows)
        else:
            cursor.execute(f"{head} VALUES {', '.join([one] * len(rows))}", [*chain(*rows)])

    def item_params(self, values: dict[str, Any]) -> list[Any]:
        return self._insert_binds([values[name] for name in self._insert_names])

    def access_params(
        self, item_id: str | None, user_id: str | None, action: str, at: datetime, detail: str
    ) -> list[Any]:
        return self._access_binds((item_id, user_id, action, at, detail))


class ActBatch:
    """One group-commit batch of the node's acts, in one write transaction.

    Reads run at once; the rows the acts write (new items with their topics and compartments,
    register entries and their ledger entries) are gathered and written by :meth:`flush`, in one
    ``executemany`` per table and one ledger append, before the batch commits. An act checks
    everything before it adds anything, so an act that fails adds nothing.
    """

    def __init__(self, db: Any, hot: HotStatements, ledger: Appender) -> None:
        self.db = db  # a DBAPI connection in a write transaction (``Store.write_dbapi()``)
        self.hot = hot
        self.ledger = ledger
        self._items: list[list[Any]] = []
        self._topics: list[tuple[str, str]] = []
        self._compartments: list[tuple[str, str]] = []
        self._access: list[list[Any]] = []
        self._entries: list[NewEntry] = []

    def users_by_token(self, token_hashes: Collection[str]) -> dict[str, User]:
        return self.hot.users_by_token(self.db, token_hashes)

    def item(
        self, item_id: str, visibility: Visibility, *, with_payload: bool
    ) -> tuple[Item, bytes | None] | None:
        return self.hot.item(self.db, item_id, visibility, with_payload=with_payload)

    def add_item(
        self,
        *,
        title: str,
        label: dict[str, Any],
        level_rank: int,
        payload: bytes,
        created_by: str | None,
        now: datetime,
    ) -> Item:
        """A new item, as :meth:`Items.add` makes it; written by :meth:`flush`."""
        values, topics, compartments = new_item_values(
            title=title,
            label=label,
            level_rank=level_rank,
            payload=payload,
            created_by=created_by,
            now=now,
        )
        params = self.hot.item_params(values)  # before anything is queued: it may raise
        item_id = values["id"]
        self._items.append(params)
        self._topics.extend((item_id, t) for t in topics)
        self._compartments.extend((item_id, c) for c in compartments)
        return item_of(values)

    def record(
        self, *, item_id: str | None, user_id: str | None, action: str, at: datetime, detail: str
    ) -> None:
        """As :meth:`AccessRegister.record`: the register row and its ledger entry."""
        entry = act_entry(item_id, user_id, action, at, detail)
        self._access.append(self.hot.access_params(item_id, user_id, action, at, detail))
        self._entries.append(entry)

    def flush(self) -> None:
        """Write what the batch's acts added (parents before the rows that reference them)."""
        hot, cursor = self.hot, self.db.cursor()
        for statement, rows in (
            (hot.insert_item, self._items),
            (hot.insert_topic, self._topics),
            (hot.insert_compartment, self._compartments),
            (hot.insert_access, self._access),
        ):
            if rows:
                hot.insert(cursor, statement, rows)
        if self._entries:
            self.ledger.append(self.db, self._entries)
        self._items, self._topics, self._compartments, self._access = [], [], [], []
        self._entries = []
