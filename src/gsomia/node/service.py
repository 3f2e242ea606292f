"""The national node's services: users, items and decisions, with the protection duties applied.

Every act checks the acting user's roles, clearance and need-to-know. An item the user may not
see does not exist for that user: the same ``ItemNotFoundError`` as for an unknown id, and the
same absence from lists, searches and counts (the store filters in SQL). Every act on a classified
item and every read of one is written to the access register in the same transaction as the act.
The clock is read here, once per act, through the node's ``clock`` (fixed for simulation).

The most frequent acts (creating an item, viewing one, reading its content) also come in a
``_soon`` form for the HTTP API: the act is queued for the node's group commit (``GroupCommit``),
which runs the acts of concurrent requests in one transaction, with one commit, and resolves each
act's future only after that commit. Such a request names its user by a ``Caller``: the user as
authenticated earlier, and the hash of the token shown, which the act checks again in its own
transaction (so a token revoked in the meantime, even by another process, acts no more).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from gsomia.core.canonical import digest
from gsomia.core.errors import (
    AuthenticationError,
    ConflictError,
    ForbiddenError,
    InputError,
    InvalidLabelError,
    ItemNotFoundError,
    PayloadTooLargeError,
)
from gsomia.core.labels import SecurityLabel
from gsomia.core.parties import ClassificationScheme, Level
from gsomia.core.registry import Registry
from gsomia.core.release import Decision, Person, ReleaseRequest, decide
from gsomia.ledger.log import Appender
from gsomia.store.engine import GroupCommit, Outcome, Store
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
from gsomia.store.repositories import (
    AccessRegister,
    ActBatch,
    Consents,
    HotStatements,
    Items,
    NodeMeta,
    Users,
    token_digest,
)

ITEM_ROLES = (Role.OFFICER, Role.RELEASE_AUTHORITY)
REGISTER_ROLES = (Role.AUDITOR, Role.ADMIN)


@dataclass(frozen=True, slots=True)
class LabelInput:
    """A label as a user writes it for a new item of this node: the node is the originator."""

    classification: str  # a level of the node's scheme: id, native name or romanization
    topics: frozenset[str]
    releasable_to: frozenset[str] = frozenset()
    compartments: frozenset[str] = frozenset()
    originator_consent_required: bool = True


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks for an act: the user as authenticated, and the SHA-256 of the token they showed.

    With a token hash, the act looks the token up again in its own transaction and acts as the
    user found there (or refuses: ``AuthenticationError``). Without one, the user is taken as
    given, as the node's plain methods take their ``actor``.
    """

    user: User
    token_hash: str | None = None


@dataclass(frozen=True, slots=True)
class _Act:
    """One act for the group commit: who asks, and what to do in the batch as whom."""

    caller: Caller
    run: Callable[[ActBatch, User], Any]


CALLER_CACHE = 4096  # tokens remembered; beyond that the cache starts again


@dataclass(frozen=True, slots=True)
class ItemSearch:
    topic: str | None = None
    originator: str | None = None
    classification: str | None = None
    status: Disposition | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    limit: int = 100
    cursor: str | None = None


class Node:
    """One nation's node: its party, its registry, its store and its clock."""

    def __init__(
        self,
        *,
        party: str,
        registry: Registry,
        store: Store,
        clock: Callable[[], datetime] | None = None,
        max_payload_bytes: int = 1024 * 1024,
    ) -> None:
        self.party = registry.party(party).code
        scheme = registry.scheme_of(self.party)
        if scheme is None:
            raise InputError(f"{self.party} has no classification scheme in the registry")
        self.scheme: ClassificationScheme = scheme
        self.registry = registry
        self.store = store
        self.clock = clock or (lambda: datetime.now(UTC))
        self.max_payload_bytes = max_payload_bytes
        self._hot = HotStatements(store.engine.dialect)
        self._ledger = Appender(store.engine.dialect)
        self._acts: GroupCommit[_Act] = GroupCommit(
            store, self._execute_acts, name=f"gsomia-acts-{self.party}"
        )
        self._callers: dict[str, Caller] = {}  # token hash -> caller, as last authenticated

    def now(self) -> datetime:
        return self.clock()

    # -- users ------------------------------------------------------------------------------

    def level(self, name: str) -> Level:
        return self.scheme.level(name)

    def visibility(self, user: User) -> Visibility:
        rank = self.scheme.level(user.clearance).rank if user.clearance else 0
        return Visibility(rank, user.need_to_know, user.compartments)

    def add_user(
        self,
        *,
        name: str,
        roles: Iterable[Role | str],
        clearance: str | None = None,
        need_to_know: Iterable[str] = (),
        compartments: Iterable[str] = (),
        actor: User | None = None,
    ) -> tuple[User, str]:
        """A new user and their API token (shown once; only its SHA-256 is kept)."""
        if actor is not None:
            _require(actor, Role.ADMIN)
        name = name.strip()
        if not name or len(name) > 128 or not name.isprintable():
            raise InputError("a user name is 1 to 128 printable characters")
        role_set = {Role(r) for r in roles}
        if not role_set:
            raise InputError("a user needs at least one role")
        level = self.level(clearance).id if clearance else None
        topics = {self.registry.topic(t).id for t in need_to_know}
        token = secrets.token_urlsafe(32)
        now = self.now()
        with self.store.write() as s:
            user = Users(s).add(
                name=name,
                roles=role_set,
                clearance=level,
                need_to_know=topics,
                compartments={c.upper() for c in compartments},
                token=token,
                now=now,
            )
            AccessRegister(s).record(
                item_id=None,
                user_id=actor.id if actor else None,
                action="user-add",
                at=now,
                detail=f"{user.name}: {', '.join(sorted(role_set))}; clearance {level or 'none'}",
            )
        return user, token

    def authenticate(self, token: str | None) -> User:
        return self.caller(token).user

    def caller(self, token: str | None) -> Caller:
        """The caller holding ``token``, from the database (remembered for ``cached_caller``)."""
        if not token:
            raise AuthenticationError("a bearer token is required")
        token_hash = token_digest(token)
        with self.store.read() as s:
            user = Users(s).by_token(token)
        if user is None:
            self._callers.pop(token_hash, None)
            raise AuthenticationError("unknown or revoked token")
        caller = Caller(user, token_hash)
        self._remember(caller)
        return caller

    def cached_caller(self, token: str | None) -> Caller | None:
        """The caller holding ``token`` as last authenticated here, or None if not remembered.

        Only for acts that check the token again in their own transaction (the ``_soon`` acts):
        a remembered caller may have been revoked since, by another process.
        """
        if not token:
            raise AuthenticationError("a bearer token is required")
        return self._callers.get(token_digest(token))

    def _remember(self, caller: Caller) -> None:
        assert caller.token_hash is not None
        if len(self._callers) >= CALLER_CACHE:
            self._callers.clear()
        self._callers[caller.token_hash] = caller

    def list_users(self, actor: User, *, limit: int = 100, cursor: str | None = None) -> Page[User]:
        _require(actor, Role.ADMIN, Role.AUDITOR)
        with self.store.read() as s:
            return Users(s).list(limit=limit, cursor=cursor)

    def find_user(self, name_or_id: str) -> User | None:
        with self.store.read() as s:
            users = Users(s)
            return users.by_name(name_or_id) or users.get(name_or_id)

    def revoke_user(self, user_id: str, actor: User | None = None) -> User:
        if actor is not None:
            _require(actor, Role.ADMIN)
        if not user_id.isprintable() or len(user_id) > 128:
            raise InputError(f"no user {user_id[:64]!r}")
        now = self.now()
        with self.store.write() as s:
            users = Users(s)
            target = users.by_name(user_id) or users.get(user_id)
            if target is None:
                raise InputError(f"no user {user_id!r}")
            if Role.ADMIN in target.roles and target.active and users.count_admins() <= 1:
                raise ConflictError("refusing to revoke the last active admin")
            revoked = users.revoke(target.id, now)
            assert revoked is not None
            AccessRegister(s).record(
                item_id=None,
                user_id=actor.id if actor else None,
                action="user-revoke",
                at=now,
                detail=revoked.name,
            )
        self._callers.clear()  # (acts check their token again anyway)
        return revoked

    # -- items ------------------------------------------------------------------------------

    def _label(self, given: LabelInput) -> tuple[SecurityLabel, Level]:
        level = self.level(given.classification)
        topics = frozenset(self.registry.topic(t).id for t in given.topics)
        if not topics:
            raise InvalidLabelError("a label needs at least one topic")
        rel_to = frozenset(self.registry.party(p).code for p in given.releasable_to)
        label = SecurityLabel(
            originator=self.party,
            policy=self.scheme.id,
            classification=level.id,
            releasable_to=rel_to | {self.party},
            compartments=frozenset(c.upper() for c in given.compartments),
            topics=topics,
            created=self.now(),
            originator_consent_required=given.originator_consent_required,
        )
        return label, level

    def _check_payload(self, payload: bytes) -> None:
        if len(payload) > self.max_payload_bytes:
            raise PayloadTooLargeError(
                f"payload of {len(payload)} bytes is over this node's limit of "
                f"{self.max_payload_bytes}"
            )

    def _may_hold(self, actor: User, label: SecurityLabel, level: Level) -> None:
        """A user may only create or relabel what they could then see themselves."""
        seen = self.visibility(actor)
        if level.rank > seen.max_rank:
            raise ForbiddenError(f"{level.native} is above your clearance")
        if not label.topics <= seen.need_to_know:
            missing = ", ".join(sorted(label.topics - seen.need_to_know))
            raise ForbiddenError(f"no need-to-know for {missing}")
        if not label.compartments <= seen.compartments:
            raise ForbiddenError("not read into every compartment of the label")

    def create_item(self, actor: User, *, title: str, label: LabelInput, payload: bytes) -> Item:
        item: Item = self._acts.run(self._create_act(Caller(actor), title, label, payload))
        return item

    def create_item_soon(
        self, caller: Caller, *, title: str, label: LabelInput, payload: bytes
    ) -> Future[Item]:
        """``create_item`` in the group commit: the future resolves once the item is durable."""
        return self._acts.submit(self._create_act(caller, title, label, payload))

    def get_item(self, actor: User, item_id: str) -> Item:
        item: Item = self._acts.run(self._view_act(Caller(actor), item_id))
        return item

    def get_item_soon(self, caller: Caller, item_id: str) -> Future[Item]:
        return self._acts.submit(self._view_act(caller, item_id))

    def read_payload(self, actor: User, item_id: str) -> tuple[Item, bytes]:
        """The item's content; the read is in the access register before it is returned."""
        found: tuple[Item, bytes] = self._acts.run(self._read_act(Caller(actor), item_id))
        return found

    def read_payload_soon(self, caller: Caller, item_id: str) -> Future[tuple[Item, bytes]]:
        """``read_payload`` in the group commit: the future resolves once the read is on record."""
        return self._acts.submit(self._read_act(caller, item_id))

    # Each act checks what it can before it is queued (the same errors, in the same order, as
    # ever), then again in its batch as the user the batch's transaction finds.

    def _create_act(self, caller: Caller, title: str, label: LabelInput, payload: bytes) -> _Act:
        _require(caller.user, *ITEM_ROLES)
        self._check_payload(payload)
        title = _title(title)
        full, level = self._label(label)
        self._may_hold(caller.user, full, level)
        label_data = full.to_dict()

        def run(batch: ActBatch, actor: User) -> Item:
            _require(actor, *ITEM_ROLES)
            self._may_hold(actor, full, level)
            now = self.now()
            item = batch.add_item(
                title=title,
                label=label_data,
                level_rank=level.rank,
                payload=payload,
                created_by=actor.id,
                now=now,
            )
            batch.record(
                item_id=item.id,
                user_id=actor.id,
                action="create",
                at=now,
                detail=f"{level.id}, {len(payload)} B",  # never the title: it may be classified
            )
            return item

        return _Act(caller, run)

    def _view_act(self, caller: Caller, item_id: str) -> _Act:
        item_id = _known_shape(item_id)
        _require(caller.user, *ITEM_ROLES, Role.AUDITOR)

        def run(batch: ActBatch, actor: User) -> Item:
            _require(actor, *ITEM_ROLES, Role.AUDITOR)
            found = batch.item(item_id, self.visibility(actor), with_payload=False)
            if found is None:
                raise ItemNotFoundError(item_id)
            item = found[0]
            batch.record(item_id=item.id, user_id=actor.id, action="view", at=self.now(), detail="")
            return item

        return _Act(caller, run)

    def _read_act(self, caller: Caller, item_id: str) -> _Act:
        item_id = _known_shape(item_id)
        _require(caller.user, *ITEM_ROLES)

        def run(batch: ActBatch, actor: User) -> tuple[Item, bytes]:
            _require(actor, *ITEM_ROLES)
            found = batch.item(item_id, self.visibility(actor), with_payload=True)
            if found is None:
                raise ItemNotFoundError(item_id)
            item, data = found
            assert data is not None
            if item.status is Disposition.DESTROYED:
                raise ConflictError(f"item {item_id} was destroyed")
            batch.record(
                item_id=item.id,
                user_id=actor.id,
                action="read",
                at=self.now(),
                detail=f"{len(data)} B",
            )
            return item, data

        return _Act(caller, run)

    def _execute_acts(self, db: Any, acts: Sequence[_Act]) -> list[Outcome]:
        """A batch of acts in one write transaction (``GroupCommit``'s ``execute``)."""
        batch = ActBatch(db, self._hot, self._ledger)
        hashes = {a.caller.token_hash for a in acts if a.caller.token_hash is not None}
        current = batch.users_by_token(hashes)
        for shown in hashes:
            user = current.get(shown)
            if user is None:
                self._callers.pop(shown, None)
            else:
                self._remember(Caller(user, shown))
        outcomes: list[Outcome] = []
        for act in acts:
            try:
                token_hash = act.caller.token_hash
                actor = act.caller.user if token_hash is None else current.get(token_hash)
                if actor is None:
                    raise AuthenticationError("unknown or revoked token")
                outcomes.append((act.run(batch, actor), None))
            except Exception as e:
                outcomes.append((None, e))
        batch.flush()
        return outcomes

    def search(self, actor: User, query: ItemSearch) -> Page[Item]:
        _require(actor, *ITEM_ROLES, Role.AUDITOR)
        classification = self.level(query.classification).id if query.classification else None
        originator = self.registry.party(query.originator).code if query.originator else None
        topic = self.registry.topic(query.topic).id if query.topic else None
        with self.store.read() as s:
            return Items(s).search(
                self.visibility(actor),
                topic=topic,
                originator=originator,
                classification=classification,
                status=query.status,
                created_after=query.created_after,
                created_before=query.created_before,
                limit=query.limit,
                cursor=query.cursor,
            )

    def derive(
        self,
        actor: User,
        source_id: str,
        *,
        kind: Derivation,
        title: str,
        payload: bytes,
        note: str = "",
    ) -> Item:
        """A copy, extract or translation: it keeps the source's markings (Arts. 4(3), 14, 15)."""
        _require(actor, *ITEM_ROLES)
        source_id = _known_shape(source_id)
        self._check_payload(payload)
        title = _title(title)
        now = self.now()
        with self.store.write() as s:
            items = Items(s)
            source = items.get(source_id, self.visibility(actor))
            if source is None:
                raise ItemNotFoundError(source_id)
            if source.status is not Disposition.HELD:
                raise ConflictError(f"item {source_id} was {source.status.value}")
            item = items.add(
                title=title,
                label=source.label,
                level_rank=source.level_rank,
                payload=payload,
                created_by=actor.id,
                now=now,
                source_item_id=source.id,
                derivation=kind,
                received_from=source.received_from,
                received_under=source.received_under,
            )
            register = AccessRegister(s)
            register.record(
                item_id=source.id,
                user_id=actor.id,
                action="derive",
                at=now,
                detail=f"{kind.value} {item.id}" + (f": {note}" if note else ""),
            )
            register.record(
                item_id=item.id,
                user_id=actor.id,
                action="create",
                at=now,
                detail=f"{kind.value} of {source.id}",
            )
        return item

    def reclassify(self, actor: User, item_id: str, *, classification: str, reason: str) -> Item:
        """The originator's change of classification (Art. 6(g)); the old label stays in history.

        Only items this node originated are reclassified here; a holder applies the originator's
        notice when it arrives from the originator's node.
        """
        _require(actor, Role.RELEASE_AUTHORITY)
        item_id = _known_shape(item_id)
        if not reason.strip():
            raise InputError("a reclassification needs a reason")
        level = self.level(classification)
        now = self.now()
        with self.store.write() as s:
            items = Items(s)
            item = items.get(item_id, self.visibility(actor))
            if item is None:
                raise ItemNotFoundError(item_id)
            label = SecurityLabel.from_dict(item.label)
            if label.originator != self.party:
                raise ForbiddenError(
                    f"only the originator ({label.originator}) reclassifies this item"
                )
            if item.status is not Disposition.HELD:
                raise ConflictError(f"item {item_id} was {item.status.value}")
            if level.id == label.classification:
                raise ConflictError(f"item {item_id} is already {level.native}")
            new = replace(label, classification=level.id)
            self._may_hold(actor, new, level)
            updated = items.relabel(
                item_id,
                label=new.to_dict(),
                level_rank=level.rank,
                changed_by=actor.id,
                reason=reason.strip(),
                now=now,
            )
            AccessRegister(s).record(
                item_id=item_id,
                user_id=actor.id,
                action="reclassify",
                at=now,
                detail=f"{label.classification} → {level.id}: {reason.strip()}",
            )
        return updated

    def dispose(self, actor: User, item_id: str, *, disposition: Disposition, note: str) -> Item:
        """Return or destruction (Art. 6(h), 13), recorded with who and when."""
        _require(actor, Role.RELEASE_AUTHORITY)
        item_id = _known_shape(item_id)
        if disposition is Disposition.HELD:
            raise InputError("a disposition is 'returned' or 'destroyed'")
        now = self.now()
        with self.store.write() as s:
            items = Items(s)
            if items.get(item_id, self.visibility(actor)) is None:
                raise ItemNotFoundError(item_id)
            item = items.dispose(item_id, status=disposition, by=actor.id, note=note, now=now)
            AccessRegister(s).record(
                item_id=item_id,
                user_id=actor.id,
                action=disposition.value,
                at=now,
                detail=note,
            )
        return item

    def history(self, actor: User, item_id: str) -> list[LabelChange]:
        item_id = _known_shape(item_id)
        _require(actor, *ITEM_ROLES, Role.AUDITOR)
        with self.store.read() as s:
            if Items(s).get(item_id, self.visibility(actor)) is None:
                raise ItemNotFoundError(item_id)
            return Items(s).history(item_id)

    def derivations(self, actor: User, item_id: str) -> list[Item]:
        item_id = _known_shape(item_id)
        _require(actor, *ITEM_ROLES, Role.AUDITOR)
        with self.store.read() as s:
            seen = self.visibility(actor)
            if Items(s).get(item_id, seen) is None:
                raise ItemNotFoundError(item_id)
            return Items(s).derived_from(item_id, seen)

    # -- consents and decisions -------------------------------------------------------------

    def record_consent(
        self, actor: User, item_id: str, *, originator: str, reference: str
    ) -> Consent:
        """An originator's written consent, on record for this item (Arts. 5-6)."""
        _require(actor, Role.RELEASE_AUTHORITY)
        item_id = _known_shape(item_id)
        code = self.registry.party(originator).code
        now = self.now()
        with self.store.write() as s:
            item = Items(s).get(item_id, self.visibility(actor))
            if item is None:
                raise ItemNotFoundError(item_id)
            if item.label["originator"] != code:
                raise InputError(f"{code} is not the originator of item {item_id}")
            consent = Consents(s).add(
                item_id=item_id, originator=code, recorded_by=actor.id, reference=reference, now=now
            )
            AccessRegister(s).record(
                item_id=item_id, user_id=actor.id, action="consent", at=now, detail=reference
            )
        return consent

    def consents(self, actor: User, item_id: str) -> list[Consent]:
        item_id = _known_shape(item_id)
        _require(actor, *ITEM_ROLES, Role.AUDITOR)
        with self.store.read() as s:
            if Items(s).get(item_id, self.visibility(actor)) is None:
                raise ItemNotFoundError(item_id)
            return Consents(s).for_item(item_id)

    def dry_run(
        self,
        actor: User,
        item_id: str,
        *,
        recipient: str,
        at: datetime | None = None,
        person: Person | None = None,
        extra_consents: Sequence[str] = (),
    ) -> Decision:
        """What would happen if this item were shared now: the decision, nothing sent."""
        _require(actor, *ITEM_ROLES)
        item_id = _known_shape(item_id)
        instant = at or self.now()
        with self.store.read() as s:
            item = Items(s).get(item_id, self.visibility(actor))
            if item is None:
                raise ItemNotFoundError(item_id)
            on_record = {c.originator for c in Consents(s).for_item(item_id)}
        label = SecurityLabel.from_dict(item.label)
        request = ReleaseRequest(
            label=label,
            holder=self.party,
            recipient=self.registry.party(recipient).code,
            person=person,
            consents=frozenset(on_record | {self.registry.party(p).code for p in extra_consents}),
            received_under=item.received_under,
        )
        decision = decide(self.registry, request, instant)
        with self.store.write() as s:  # every decision is evidence, dry runs included
            AccessRegister(s).record(
                item_id=item.id,
                user_id=actor.id,
                action="decision",
                at=self.now(),
                detail=f"dry run to {request.recipient}: "
                + ("allowed" if decision.allowed else "refused"),
                evidence={
                    "decision": digest(decision.to_dict()),
                    "allowed": decision.allowed,
                    "registry": decision.registry_hash,
                    "decided_at": decision.at.isoformat(),
                },
            )
        return decision

    # -- the access register ------------------------------------------------------------------

    def access_register(
        self,
        actor: User,
        *,
        item_id: str | None = None,
        user_id: str | None = None,
        action: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[AccessRecord]:
        _require(actor, *REGISTER_ROLES)
        with self.store.read() as s:
            return AccessRegister(s).list(
                item_id=item_id, user_id=user_id, action=action, limit=limit, cursor=cursor
            )


_ITEM_ID = re.compile(r"[0-9A-Za-z-]{1,64}")


def _known_shape(item_id: str) -> str:
    """An item id this node could have issued; anything else is simply not found.

    Why: PostgreSQL refuses NUL in text, so a hostile id must not reach the database at all.
    """
    if not _ITEM_ID.fullmatch(item_id):
        raise ItemNotFoundError(item_id[:64])
    return item_id


def _require(actor: User, *roles: Role) -> None:
    if not actor.active:
        raise AuthenticationError("this user was revoked")
    if not actor.has(*roles):
        wanted = " or ".join(r.value for r in roles)
        raise ForbiddenError(f"this needs the role {wanted}")


def _title(title: str) -> str:
    title = title.strip()
    if not title or len(title) > 500:
        raise InputError("a title is 1 to 500 characters")
    return title


def open_node(
    *,
    party: str,
    registry: Registry,
    database_url: str,
    clock: Callable[[], datetime] | None = None,
    max_payload_bytes: int = 1024 * 1024,
) -> Node:
    """Open (creating or upgrading) a node's database and check it belongs to ``party``."""
    from gsomia.store import schema

    store = Store.from_url(database_url)
    schema.upgrade(store.engine)
    with store.write() as s:
        meta = NodeMeta(s)
        stored = meta.get("party")
        if stored is None:
            meta.set("party", party)
        elif stored != party:
            raise ConflictError(f"this database belongs to the {stored} node, not {party}")
        previous = meta.get("registry_hash")
        if previous != registry.content_hash:
            # The law the node applies changed (or is a what-if): evidence, like any act.
            meta.set("registry_hash", registry.content_hash)
            AccessRegister(s).record(
                item_id=None,
                user_id=None,
                action="registry-change",
                at=clock() if clock else datetime.now(UTC),
                detail=f"{previous or 'none'} → {registry.content_hash}",
                evidence={"from": previous, "to": registry.content_hash},
            )
    return Node(
        party=party,
        registry=registry,
        store=store,
        clock=clock,
        max_payload_bytes=max_payload_bytes,
    )
