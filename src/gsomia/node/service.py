"""The national node's services: users, items and decisions, with the protection duties applied.

Every act checks the acting user's roles, clearance and need-to-know. An item the user may not
see does not exist for that user: the same ``ItemNotFoundError`` as for an unknown id, and the
same absence from lists, searches and counts (the store filters in SQL). Every act on a classified
item and every read of one is written to the access register in the same transaction as the act.
The clock is read here, once per act, through the node's ``clock`` (fixed for simulation).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

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
from gsomia.store.engine import Store
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
from gsomia.store.repositories import AccessRegister, Consents, Items, NodeMeta, Users

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
        if not token:
            raise AuthenticationError("a bearer token is required")
        with self.store.read() as s:
            user = Users(s).by_token(token)
        if user is None:
            raise AuthenticationError("unknown or revoked token")
        return user

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
        _require(actor, *ITEM_ROLES)
        self._check_payload(payload)
        title = _title(title)
        full, level = self._label(label)
        self._may_hold(actor, full, level)
        now = self.now()
        with self.store.write() as s:
            item = Items(s).add(
                title=title,
                label=full.to_dict(),
                level_rank=level.rank,
                payload=payload,
                created_by=actor.id,
                now=now,
            )
            AccessRegister(s).record(
                item_id=item.id,
                user_id=actor.id,
                action="create",
                at=now,
                detail=f"{level.id}, {len(payload)} B",  # never the title: it may be classified
            )
        return item

    def get_item(self, actor: User, item_id: str) -> Item:
        item_id = _known_shape(item_id)
        _require(actor, *ITEM_ROLES, Role.AUDITOR)
        now = self.now()
        with self.store.write() as s:
            item = Items(s).get(item_id, self.visibility(actor))
            if item is None:
                raise ItemNotFoundError(item_id)
            AccessRegister(s).record(
                item_id=item.id, user_id=actor.id, action="view", at=now, detail=""
            )
        return item

    def read_payload(self, actor: User, item_id: str) -> tuple[Item, bytes]:
        """The item's content; the read is in the access register before it is returned."""
        item_id = _known_shape(item_id)
        _require(actor, *ITEM_ROLES)
        now = self.now()
        with self.store.write() as s:
            found = Items(s).get_with_payload(item_id, self.visibility(actor))
            if found is None:
                raise ItemNotFoundError(item_id)
            item, data = found
            if item.status is Disposition.DESTROYED:
                raise ConflictError(f"item {item_id} was destroyed")
            AccessRegister(s).record(
                item_id=item.id, user_id=actor.id, action="read", at=now, detail=f"{len(data)} B"
            )
        return item, data

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
