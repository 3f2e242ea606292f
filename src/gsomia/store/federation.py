"""Repositories for federation: peers, shares, the outbox, the inbox, nonces, consents asked and
given, incidents and notices. Same rules as :mod:`gsomia.store.repositories`: one session, frozen
records out."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Dialect,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from gsomia.core.errors import ConflictError, InputError, ReplayError
from gsomia.ledger.log import NewEntry, append_entries
from gsomia.store.models import (
    AccessRow,
    ConsentRequestRow,
    ConsentRow,
    InboxRow,
    IncidentRow,
    ItemCompartmentRow,
    ItemRow,
    ItemTopicRow,
    NonceRow,
    NoticeRow,
    OutboxRow,
    PeerRow,
    ShareRow,
    TokenRow,
    UserRow,
)
from gsomia.store.records import Disposition, Item, Role, User, Visibility
from gsomia.store.repositories import (
    Processors,
    act_entry,
    bind_processor,
    item_of,
    new_item_values,
    result_processor,
    token_digest,
    visible,
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


# The tables under the hot path's Core statements.
_SHARES = cast(Table, ShareRow.__table__)
_OUTBOX = cast(Table, OutboxRow.__table__)
_INBOX = cast(Table, InboxRow.__table__)
_NONCES = cast(Table, NonceRow.__table__)
_SHARE_OPTIONAL = (
    "requested_by",
    "delivered_real",
    "last_error",
    "envelope_id",
    "consent_request_id",
    "relay_of",
    "receipt",
)


_ACCESS = cast(Table, AccessRow.__table__)
_ITEMS = cast(Table, ItemRow.__table__)
_INSERT_INBOX = insert(_INBOX)
_ITEM_SELECTS_MAX = 1024  # item queries kept, one per visibility


def _claim_query(skip_locked: bool) -> Any:
    o = _OUTBOX.c
    query = (
        select(o.id, o.envelope_id, o.share_id, o.kind, o.peer, o.body, o.attempts, o.created_at)
        .where(
            o.status == "pending",
            o.next_attempt_at <= bindparam("now"),
            or_(o.lease_until.is_(None), o.lease_until <= bindparam("now")),
            o.id.not_in(bindparam("excluded", expanding=True)),
            o.peer.not_in(bindparam("busy", expanding=True)),
        )
        .order_by(o.id)
        .limit(bindparam("limit"))
    )
    return query.with_for_update(skip_locked=True) if skip_locked else query


# The delivery worker's statements, built once: it runs them every few milliseconds when busy.
_CLAIM = _claim_query(skip_locked=False)
_CLAIM_LOCKED = _claim_query(skip_locked=True)
_NEXT_DUE = select(
    func.min(
        case(
            (
                and_(
                    _OUTBOX.c.lease_until.is_not(None),
                    _OUTBOX.c.lease_until > _OUTBOX.c.next_attempt_at,
                ),
                _OUTBOX.c.lease_until,
            ),
            else_=_OUTBOX.c.next_attempt_at,
        )
    )
).where(_OUTBOX.c.status == "pending")


_ITEM_COLUMNS = tuple(c.name for c in _ITEMS.columns)
_TOPICS = cast(Table, ItemTopicRow.__table__)
_COMPARTMENTS = cast(Table, ItemCompartmentRow.__table__)


def add_received_item(
    session: Session,
    *,
    title: str,
    label: dict[str, Any],
    level_rank: int,
    payload: bytes,
    now: datetime,
    received_from: str,
    received_under: str,
    origin_item_id: str,
) -> Item:
    """An item received from a peer, held under this node's own label: the rows ``Items.add``
    writes (``new_item_values``), by driver statements (the receiver's hot path: no unit of
    work). Checked (``InputError``) before anything is written."""
    values, topics, compartments = new_item_values(
        title=title,
        label=label,
        level_rank=level_rank,
        payload=payload,
        created_by=None,
        now=now,
        received_from=received_from,
        received_under=received_under,
        origin_item_id=origin_item_id,
    )
    driver, db = _driver(session)
    driver.insert(db, _ITEMS, [values])
    item_id = values["id"]
    driver.insert(db, _TOPICS, [{"item_id": item_id, "topic": t} for t in topics])
    if compartments:
        driver.insert(
            db, _COMPARTMENTS, [{"item_id": item_id, "compartment": c} for c in compartments]
        )
    return Item(
        id=item_id,
        title=title,
        label=label,
        level_rank=level_rank,
        size=values["size"],
        payload_sha256=values["payload_sha256"],
        created_at=now,
        created_by=None,
        version=values["version"],
        status=Disposition(values["status"]),
        received_from=received_from,
        received_under=received_under,
        origin_item_id=origin_item_id,
    )


class _Driver:
    """The share act's statements as driver SQL for one dialect, run on the driver's cursor
    inside SQLAlchemy's transaction (as the ledger's appends are): same transaction, same
    locks, same commit, several times cheaper than a Core execution. Values go through each
    column type's own bind and result processors, so what is stored and read back is exactly
    what the ORM would store and read; the item query is the SQL that SQLAlchemy compiles for
    :func:`~gsomia.store.repositories.visible`, compiled once per visibility."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.mark = "?" if dialect.paramstyle == "qmark" else "%s"
        # Statements by table and columns: (SQL, column order, bind processors).
        self._inserts: dict[tuple[str, ...], tuple[str, tuple[str, ...], Processors]] = {}
        self._items: dict[Visibility, tuple[str, Callable[[str], Any]]] = {}
        self._item_results = self._results(_ITEMS.columns)
        self.consents = (
            f"SELECT originator FROM {ConsentRow.__tablename__} WHERE item_id = {self.mark}"
        )
        users, tokens = cast(Table, UserRow.__table__).c, cast(Table, TokenRow.__table__).c
        self.user_columns = (
            users.id,
            users.name,
            users.roles,
            users.clearance,
            users.need_to_know,
            users.compartments,
            users.created_at,
        )
        self.user_results = self._results(self.user_columns)
        # Users.by_token's query: an active token of an active user.
        self.user_by_token = (
            f"SELECT {', '.join(f'u.{c.name}' for c in self.user_columns)} "
            f"FROM {TokenRow.__tablename__} t JOIN {UserRow.__tablename__} u "
            f"ON u.{users.id.name} = t.{tokens.user_id.name} "
            f"WHERE t.{tokens.token_hash.name} = {self.mark} "
            f"AND t.{tokens.revoked_at.name} IS NULL AND u.{users.revoked_at.name} IS NULL"
        )

    def _binds(self, columns: Iterable[Any]) -> Processors:
        return Processors([bind_processor(c, self.dialect) for c in columns])

    def _results(self, columns: Iterable[Any]) -> Processors:
        return Processors([result_processor(c, self.dialect) for c in columns])

    def insert(self, db: Any, table: Table, rows: builtins.list[dict[str, Any]]) -> None:
        """Insert ``rows`` (each with the same columns) with one statement."""
        given = tuple(c for c in table.columns if c.name in rows[0])
        key = (table.name, *(c.name for c in given))
        known = self._inserts.get(key)
        if known is None:
            names = tuple(c.name for c in given)
            sql = (
                f"INSERT INTO {table.name} ({', '.join(names)}) "
                f"VALUES ({', '.join([self.mark] * len(names))})"
            )
            known = self._inserts[key] = (sql, names, self._binds(given))
        sql, names, binds = known
        params = [binds([row[n] for n in names]) for row in rows]
        cursor = db.cursor()
        if len(params) == 1:
            cursor.execute(sql, params[0])
        else:
            cursor.executemany(sql, params)

    def update(self, db: Any, table: Table, key: str, rows: builtins.list[dict[str, Any]]) -> None:
        """Set the other columns of each row where ``key`` is the row's (one executemany)."""
        names = tuple(n for n in rows[0] if n != key)
        cache_key = (table.name, "update", key, *names)
        known = self._inserts.get(cache_key)
        if known is None:
            columns = [table.c[n] for n in (*names, key)]
            sql = (
                f"UPDATE {table.name} SET {', '.join(f'{n} = {self.mark}' for n in names)} "
                f"WHERE {key} = {self.mark}"
            )
            known = self._inserts[cache_key] = (sql, (*names, key), self._binds(columns))
        sql, order, binds = known
        params = [binds([row[n] for n in order]) for row in rows]
        db.cursor().executemany(sql, params)

    def select_in(
        self,
        db: Any,
        table: Table,
        key: str,
        names: tuple[str, ...],
        keys: builtins.list[Any],
        **equal: Any,
    ) -> builtins.list[tuple[Any, ...]]:
        """``names`` of the rows whose ``key`` is one of ``keys`` (and whose columns named in
        ``equal`` have those values), through the result processors."""
        columns = [table.c[n] for n in names]
        results = self._results(columns)
        also = "".join(f" AND {n} = {self.mark}" for n in equal)
        sql = (
            f"SELECT {', '.join(names)} FROM {table.name} "
            f"WHERE {key} IN ({', '.join([self.mark] * len(keys))}){also}"
        )
        cursor = db.cursor()
        cursor.execute(sql, (*keys, *equal.values()))
        return [tuple(results(r)) for r in cursor.fetchall()]

    def item(self, db: Any, item_id: str, visibility: Visibility) -> tuple[Any, ...] | None:
        known = self._items.get(visibility)
        if known is None:
            if len(self._items) >= _ITEM_SELECTS_MAX:
                self._items.clear()
            query = select(_ITEMS).where(
                _ITEMS.c.id == bindparam("item_id", value=""), visible(visibility)
            )
            compiled = query.compile(
                dialect=self.dialect, compile_kwargs={"render_postcompile": True}
            )
            fixed = dict(compiled.params)
            order = compiled.positiontup
            names = tuple(order) if compiled.positional and order is not None else None

            def params(given: str) -> Any:
                if names is not None:  # qmark (SQLite)
                    return tuple(given if n == "item_id" else fixed[n] for n in names)
                return {**fixed, "item_id": given}  # pyformat (psycopg)

            known = self._items[visibility] = (compiled.string, params)
        sql, bind = known
        cursor = db.cursor()
        cursor.execute(sql, bind(item_id))
        row = cursor.fetchone()
        if row is None:
            return None
        return tuple(self._item_results(row))


_DRIVERS: dict[str, _Driver] = {}


def user_by_token(session: Session, token: str) -> User | None:
    """The active user holding an active ``token``, or None: ``Users.by_token`` as one driver
    statement (the share act checks its caller's token in its own transaction)."""
    driver, db = _driver(session)
    cursor = db.cursor()
    cursor.execute(driver.user_by_token, (token_digest(token),))
    row = cursor.fetchone()
    if row is None:
        return None
    uid, name, roles, clearance, need_to_know, compartments, created_at = driver.user_results(row)
    return User(
        id=uid,
        name=name,
        roles=frozenset(Role(r) for r in roles),
        clearance=clearance,
        need_to_know=frozenset(need_to_know),
        compartments=frozenset(compartments),
        created_at=created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC),
        revoked_at=None,
    )


def _driver(session: Session) -> tuple[_Driver, Any]:
    """The statements for the session's dialect and the driver connection of its transaction
    (looked up once per session: the store's sessions are one transaction each)."""
    found: tuple[_Driver, Any] | None = session.info.get("gsomia.driver")
    if found is None:
        connection = session.connection()
        driver = _DRIVERS.get(connection.dialect.name)
        if driver is None:
            driver = _DRIVERS[connection.dialect.name] = _Driver(connection.dialect)
        found = session.info["gsomia.driver"] = (driver, connection.connection.driver_connection)
    return found


def consent_originators(session: Session, item_id: str) -> set[str]:
    """The originators whose consent is on record for an item (one query)."""
    driver, db = _driver(session)
    cursor = db.cursor()
    cursor.execute(driver.consents, (item_id,))
    return {str(r[0]) for r in cursor.fetchall()}


def item_to_share(
    session: Session, item_id: str, visibility: Visibility
) -> tuple[Item, bytes] | None:
    """The item and its content, or None when it does not exist or ``visibility`` does not
    allow it: ``Items.get_with_payload`` as one driver statement (the same
    :func:`~gsomia.store.repositories.visible` condition, compiled once per visibility)."""
    driver, db = _driver(session)
    values = driver.item(db, item_id, visibility)
    if values is None:
        return None
    row = dict(zip(_ITEM_COLUMNS, values, strict=True))
    item = item_of(row)
    return item, bytes(row["payload"])


class ActLog:
    """Acts of one transaction for the access register and the ledger, written together.

    ``record`` takes what ``AccessRegister.record`` takes and makes the same register row and
    the same ledger entry (``act_entry``); ``flush`` writes every row with one ``executemany``
    and every entry with one ledger append, in the caller's transaction, before it commits.
    ``mark`` and ``rollback`` drop what was recorded since a mark, for an act whose savepoint
    was rolled back.
    """

    def __init__(self, session: Session) -> None:
        self.s = session
        self._rows: builtins.list[dict[str, Any]] = []
        self._entries: builtins.list[NewEntry] = []

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
        self._rows.append(
            {"item_id": item_id, "user_id": user_id, "action": action, "at": at, "detail": detail}
        )
        self._entries.append(act_entry(item_id, user_id, action, at, detail, evidence))

    def mark(self) -> int:
        return len(self._rows)

    def rollback(self, mark: int) -> None:
        del self._rows[mark:]
        del self._entries[mark:]

    def flush(self) -> None:
        if self._rows:
            driver, db = _driver(self.s)
            driver.insert(db, _ACCESS, self._rows)
            append_entries(self.s, self._entries)
        self._rows, self._entries = [], []


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

    def insert(self, **fields: Any) -> Share:
        """A new share, by one Core INSERT (the hot path: no unit of work, no flush)."""
        values: dict[str, Any] = dict.fromkeys(_SHARE_OPTIONAL)
        values.update(fields)
        driver, db = _driver(self.s)
        driver.insert(db, _SHARES, [values])
        return Share(
            id=values["id"],
            item_id=values["item_id"],
            requested_by=values["requested_by"],
            recipient=values["recipient"],
            route=tuple(values["route"]),
            instruments=tuple(values["instruments"]),
            status=values["status"],
            reasons=tuple(values["reasons"]),
            decision=dict(values["decision"]),
            created_at=values["created_at"],
            queued_real=values["queued_real"],
            delivered_real=values["delivered_real"],
            last_error=values["last_error"],
            envelope_id=values["envelope_id"],
            consent_request_id=values["consent_request_id"],
            relay_of=values["relay_of"],
            receipt=values["receipt"],
        )

    def get(self, share_id: str) -> Share | None:
        row = self.s.get(ShareRow, share_id)
        return _share(row) if row else None

    def routes(self, share_ids: Iterable[str]) -> dict[str, tuple[list[str], str | None]]:
        """The route and ``relay_of`` of each of ``share_ids`` that exists, in one query."""
        wanted = sorted(set(share_ids))
        if not wanted:
            return {}
        driver, db = _driver(self.s)
        rows = driver.select_in(db, _SHARES, "id", ("id", "route", "relay_of"), wanted)
        return {r[0]: (list(r[1]), r[2]) for r in rows}

    def record_outcomes(self, changes: builtins.list[dict[str, Any]]) -> None:
        """Set status, ``delivered_real`` and receipt of several shares (one executemany)."""
        if changes:
            driver, db = _driver(self.s)
            driver.update(db, _SHARES, "id", changes)

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
        # A driver statement, not the ORM: no unit of work (the share act's hot path).
        driver, db = _driver(self.s)
        driver.insert(
            db,
            _OUTBOX,
            [
                {
                    "envelope_id": envelope_id,
                    "share_id": share_id,
                    "kind": kind,
                    "peer": peer,
                    "body": body,
                    "created_at": now,
                    "next_attempt_at": now,
                    "lease_until": None,
                    "attempts": 0,
                    "status": "pending",
                    "last_error": None,
                    "delivered_at": None,
                    "response": None,
                }
            ],
        )

    def claim(
        self,
        *,
        now: datetime,
        lease: timedelta | None,
        limit: int,
        skip_locked: bool,
        exclude: Iterable[int] = (),
        busy: Iterable[str] = (),
    ) -> list[OutboxEntry]:
        """Due entries, leased to this worker: another worker (or a restart) retries them only
        after the lease ends, so delivery is at least once and never stalls on a crash.
        ``exclude``: entries this process holds already; ``busy``: peers it is sending to."""
        query = _CLAIM_LOCKED if skip_locked else _CLAIM
        params = {"now": now, "excluded": sorted(exclude), "busy": sorted(busy), "limit": limit}
        rows = self.s.connection().execute(query, params)
        entries = [
            OutboxEntry(
                r.id, r.envelope_id, r.share_id, r.kind, r.peer, r.body, r.attempts, r.created_at
            )
            for r in rows
        ]
        if lease is not None and entries:  # None: the caller tracks what it holds (SQLite)
            self.s.connection().execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id == bindparam("entry_id"))
                .values(lease_until=bindparam("until")),
                [{"entry_id": e.id, "until": now + lease} for e in entries],
            )
        return entries

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

    def delivered_many(
        self, done: builtins.list[tuple[int, dict[str, Any]]], now: datetime
    ) -> None:
        """Several entries delivered, each with its receipt (one executemany)."""
        if done:
            driver, db = _driver(self.s)
            driver.update(
                db,
                _OUTBOX,
                "id",
                [
                    {
                        "status": "delivered",
                        "delivered_at": now,
                        "response": r,
                        "lease_until": None,
                        "id": i,
                    }
                    for i, r in done
                ],
            )

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
        found: Any = self.s.connection().execute(_NEXT_DUE).scalar()
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

    def receipts(self, envelope_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The receipts already given for any of ``envelope_ids``, in one query."""
        wanted = sorted(set(envelope_ids))
        if not wanted:
            return {}
        driver, db = _driver(self.s)
        rows = driver.select_in(db, _INBOX, "envelope_id", ("envelope_id", "receipt"), wanted)
        return {r[0]: dict(r[1]) for r in rows}

    def put(self, **fields: Any) -> None:
        self.put_many([fields])

    def put_many(self, rows: builtins.list[dict[str, Any]]) -> None:
        """Envelopes accepted (one executemany). A second row for an envelope id is an
        ``IntegrityError``: a concurrent delivery committed first."""
        if rows:
            self.s.connection().execute(_INSERT_INBOX, rows)


class Nonces:
    def __init__(self, session: Session) -> None:
        self.s = session

    def prune(self, before: datetime) -> None:
        self.s.execute(delete(NonceRow).where(NonceRow.seen_at < before))

    def seen(self, key_id: str, nonce: str) -> bool:
        driver, db = _driver(self.s)
        return bool(driver.select_in(db, _NONCES, "nonce", ("key_id",), [nonce], key_id=key_id))

    def remember(self, key_id: str, nonce: str, now: datetime, window: timedelta) -> None:
        """Record a request nonce; a nonce seen before is a replay. (One driver INSERT: the
        primary key refuses a nonce seen before, or a concurrent twin's. On PostgreSQL that
        ends the transaction, as the replay's refusal does anyway; a caller that goes on
        after a replay takes a savepoint first.)"""
        driver, db = _driver(self.s)
        try:
            driver.insert(db, _NONCES, [{"key_id": key_id, "nonce": nonce, "seen_at": now}])
        except driver.dialect.loaded_dbapi.IntegrityError as e:
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
