"""Federation: sharing items between national nodes, in signed and encrypted envelopes.

Both ends enforce. The sender decides before sending and writes the share, its sealed envelope
and the outbox entry in one transaction (so an acknowledged share is never lost); a delivery worker
sends the envelope with retries. The receiver verifies the request signature and the envelope,
decides again from its own side under the instrument the sender used, stores the item with its own
equivalent marking and its provenance, and answers with a signed receipt: all in one transaction,
keyed by the envelope id, so a redelivered envelope gets the same receipt and has no second effect.

Message kinds (all envelopes, all to ``POST /federation/v1/envelopes``):

================  =============================================================================
share             an item: payload encrypted, label in the header
delivery-report   a hub tells the original sender that its relay reached the final recipient
consent-request   a holder asks the originator for consent to pass an item on
consent-answer    the originator's grant or refusal
incident          a loss or compromise report to the originator (Art. 17), and its follow-ups
notice            an originator's reclassification, retraction or request to destroy
notice-ack        a holder's signed acknowledgment that it applied a notice
================  =============================================================================
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gsomia.core.canonical import canonical_bytes, digest
from gsomia.core.errors import (
    AuthenticationError,
    ConflictError,
    EnvelopeError,
    ForbiddenError,
    GsomiaError,
    InputError,
    ItemNotFoundError,
    MisaddressedError,
    ReplayError,
    UnknownPeerError,
)
from gsomia.core.labels import SecurityLabel
from gsomia.core.release import Decision, Person, ReleaseRequest, decide, equivalent_label
from gsomia.crypto.envelope import Opened, open_envelope, seal_bytes, sign_receipt
from gsomia.crypto.httpsig import WINDOW, VerifiedRequest, verify_request
from gsomia.crypto.keys import (
    EncryptionPrivateKey,
    EncryptionPublicKey,
    SigningPrivateKey,
    SigningPublicKey,
)
from gsomia.node.config import NodeConfig, load_encryption_key, load_signing_key
from gsomia.node.service import ITEM_ROLES, Node, _require
from gsomia.store.engine import GroupCommit as StoreGroupCommit
from gsomia.store.engine import Outcome, Store
from gsomia.store.federation import (
    ActLog,
    ConsentRequests,
    Inbox,
    Incidents,
    Nonces,
    Notices,
    Outbox,
    Peer,
    Peers,
    Share,
    Shares,
    add_received_item,
    consent_originators,
    item_to_share,
    user_by_token,
)
from gsomia.store.records import Disposition, Item, Role, User, Visibility
from gsomia.store.repositories import AccessRegister, Consents, Items

logger = logging.getLogger(__name__)

ENDPOINT = "/federation/v1/envelopes"
BATCH_ENDPOINT = "/federation/v1/envelope-batches"
MAX_BATCH_ENVELOPES = 256  # per batch request: the receiver refuses more with 413
MAX_ITEMS_PER_RELEASE = 1000  # items in one share request (POST /api/v1/shares)
# Items per act of a set: about 20 ms of the writer's time, so a one-item share that arrives
# meanwhile waits for one chunk, not for the whole set (the latency target is 50 ms at p99).
SET_CHUNK = 32
PEER_CACHE_SECONDS = 5.0
NONCE_PRUNE_SECONDS = 60.0
INCIDENT_KINDS = ("loss", "compromise", "possible-compromise", "follow-up")
NOTICE_KINDS = ("reclassify", "retract", "destroy")
GROUP_COMMIT_LIMIT = 64  # share acts written in one transaction at most

_T = TypeVar("_T")


def real_now() -> datetime:
    """Wall-clock time: for transport windows and latency, never for the law (that is the
    node's clock, which a simulation may fix)."""
    return datetime.now(UTC)


@dataclass(slots=True)
class Batch:
    """What the acts of one group-commit batch share: its session, its ``ActLog``, and the
    users its callers' tokens name (looked up once per batch, in its own transaction)."""

    s: Session
    log: ActLog
    users: dict[str, User | None] = field(default_factory=dict)

    def user(self, token: str) -> User:
        """The active user holding ``token`` now, or ``AuthenticationError``."""
        if token not in self.users:
            self.users[token] = user_by_token(self.s, token)
        found = self.users[token]
        if found is None:
            raise AuthenticationError("unknown or revoked token")
        return found


class GroupCommit:
    """Group commit of share acts: the store's :class:`~gsomia.store.engine.GroupCommit` over an
    ORM session, each act in a savepoint of its own.

    One writer thread (started when needed, ended when idle) writes what has arrived while it
    wrote the previous batch: nothing waits for a batch to fill. An act that fails (an item not
    found, a peer unknown) takes nothing else with it, and its future resolves only once the
    transaction that holds it has committed: what a caller acknowledges is durable, as with a
    transaction of its own. Acts record themselves in the batch's ``ActLog``: one register
    insert and one ledger append per batch.
    """

    def __init__(
        self,
        store: Store,
        limit: int = GROUP_COMMIT_LIMIT,
        after: Callable[[bool], None] | None = None,  # in the writer thread: did it commit?
        idle: float = 2.0,
    ) -> None:
        self._commits: StoreGroupCommit[tuple[Callable[[Batch], Any], bool]] = StoreGroupCommit(
            store,
            _write_acts,
            name="gsomia-share-commits",
            max_batch=limit,
            idle=idle,
            transaction=store.write,
            after=after,
        )

    def submit(self, act: Callable[[Batch], _T], *, atomic: bool = False) -> Future[_T]:
        """Queue ``act(batch)``; its future resolves once its batch has committed.

        ``atomic``: the act raises, if it does, before it writes anything (every check first,
        every write last), so it needs no savepoint of its own.
        """
        return self._commits.submit((act, atomic))

    def run(self, act: Callable[[Batch], _T], *, atomic: bool = False) -> _T:
        """``act(batch)``'s result, once its batch has committed (or its error)."""
        result: _T = self.submit(act, atomic=atomic).result()
        return result


def _write_acts(s: Session, jobs: Sequence[tuple[Callable[[Batch], Any], bool]]) -> list[Outcome]:
    """The acts' outcomes in one transaction. An act alone is its transaction (its failure is
    the transaction's, no savepoint); in a batch, an act's refusal (a ``GsomiaError``) is its
    own, and anything else, or any failure of an atomic act (which has no savepoint), fails the
    batch, whose acts the store's group commit then runs again one by one."""
    batch = Batch(s, ActLog(s))
    outcomes: list[Outcome] = []
    if len(jobs) == 1:
        outcomes.append((jobs[0][0](batch), None))
    else:
        for act, atomic in jobs:
            mark = batch.log.mark()
            try:
                with contextlib.nullcontext() if atomic else s.begin_nested():
                    outcomes.append((act(batch), None))
            except GsomiaError as e:
                batch.log.rollback(mark)
                outcomes.append((None, e))
    batch.log.flush()
    return outcomes


class Federation:
    """One node's side of the federation: its keys, its peers, and what it sends and receives."""

    def __init__(
        self,
        node: Node,
        *,
        signing_key: SigningPrivateKey,
        encryption_key: EncryptionPrivateKey,
    ) -> None:
        self.node = node
        self.signing_key = signing_key
        self.encryption_key = encryption_key
        self.wake = threading.Event()  # rung when an act queued something (queued_peers())
        self._queued_peers: set[str] = set()  # peers with news in the outbox since the last claim
        self._queued_lock = threading.Lock()
        self._peer_cache: dict[str, tuple[float, Peer | None]] = {}
        self._local = threading.local()  # per request: did this act queue anything?
        self._last_prune = 0.0
        self._key_cache: dict[str, SigningPublicKey] = {}
        self._encryption_keys: dict[str, EncryptionPublicKey] = {}
        self._peer_lock = threading.Lock()
        self._commits = GroupCommit(node.store, after=self._after_commit)

    @classmethod
    def keyed_by(cls, node: Node, config: NodeConfig, passphrase: str | None = None) -> Federation:
        """``node``'s federation with the keys its ``config`` names (``passphrase`` unlocks
        them), each checked against the public key pinned in ``node.toml``."""
        return cls(
            node,
            signing_key=load_signing_key(config, passphrase),
            encryption_key=load_encryption_key(config, passphrase),
        )

    @property
    def party(self) -> str:
        return self.node.party

    # -- peers ------------------------------------------------------------------------------

    def add_peer(
        self, party: str, url: str, *, signing_key: str, encryption_key: str, actor: User | None
    ) -> Peer:
        if actor is not None:
            _require(actor, Role.ADMIN)
        code = self.node.registry.party(party).code
        if code == self.party:
            raise InputError("a node is not its own peer")
        SigningPublicKey.from_text(signing_key)
        EncryptionPublicKey.from_text(encryption_key)
        if not url.startswith(("http://", "https://")):
            raise InputError(f"peer URL must be http(s): {url!r}")
        now = self.node.now()
        with self.node.store.write() as s:
            peer = Peers(s).add(
                party=code, url=url, signing_key=signing_key, encryption_key=encryption_key, now=now
            )
            AccessRegister(s).record(
                item_id=None,
                user_id=actor.id if actor else None,
                action="peer-add",
                at=now,
                detail=f"{code} {url} {SigningPublicKey.from_text(signing_key).key_id}",
            )
        self._forget_peer(code)
        return peer

    def remove_peer(self, party: str, actor: User | None) -> Peer:
        if actor is not None:
            _require(actor, Role.ADMIN)
        now = self.node.now()
        with self.node.store.write() as s:
            peer = Peers(s).remove(party.upper(), now)
            AccessRegister(s).record(
                item_id=None,
                user_id=actor.id if actor else None,
                action="peer-remove",
                at=now,
                detail=peer.party,
            )
        self._forget_peer(peer.party)
        return peer

    def peers(self) -> list[Peer]:
        with self.node.store.read() as s:
            return Peers(s).list()

    def peer(self, party: str) -> Peer | None:
        """The pinned peer. Cached for a few seconds: add_peer and remove_peer clear it at once,
        and a change made by another process (``gsomia peers remove``) is seen within
        PEER_CACHE_SECONDS."""
        with self._peer_lock:
            cached = self._peer_cache.get(party)
            if cached is not None and time.monotonic() - cached[0] < PEER_CACHE_SECONDS:
                return cached[1]
        with self.node.store.read() as s:
            peer = Peers(s).get(party)
        with self._peer_lock:
            self._peer_cache[party] = (time.monotonic(), peer)
        return peer

    def pinned_signing_key(self, party: str) -> SigningPublicKey | None:
        peer = self.peer(party)
        if peer is None:
            return None
        key = self._key_cache.get(peer.signing_key)
        if key is None:
            key = self._key_cache[peer.signing_key] = SigningPublicKey.from_text(peer.signing_key)
        return key

    def verified_request(
        self, method: str, url: str, headers: dict[str, str], body: bytes = b""
    ) -> VerifiedRequest:
        """A peer's signed request that asks for something rather than carries envelopes:
        its signature checked against the pinned keys, and its nonce remembered in a
        transaction of its own (a nonce seen before is a replay, ``ReplayError``)."""
        verified = verify_request(
            method=method, url=url, headers=headers, body=body, pinned=self.pinned_signing_key
        )
        with self.node.store.write() as s:
            Nonces(s).remember(verified.key_id, verified.nonce, real_now(), WINDOW)
        return verified

    # -- news for the delivery worker --------------------------------------------------------

    def publish_queued(self) -> None:
        """After a commit: tell the delivery worker which peers this thread's acts queued
        envelopes for (only then can a claim see them)."""
        queued: set[str] | None = getattr(self._local, "queued_to", None)
        if not queued:
            return
        self._local.queued_to = set()
        with self._queued_lock:
            self._queued_peers |= queued
        self.wake.set()

    def _after_commit(self, committed: bool) -> None:
        if committed:
            self.publish_queued()
        else:
            self._local.queued_to = set()  # nothing of it was written

    def queued_peers(self) -> set[str]:
        with self._queued_lock:
            return set(self._queued_peers)

    def forget_queued(self, peers: Iterable[str]) -> None:
        """A claim has seen what was queued for ``peers``."""
        with self._queued_lock:
            self._queued_peers.difference_update(peers)

    def _register(self, s: Session) -> ActLog | AccessRegister:
        """Where an act in ``s`` is recorded: the batch's ``ActLog`` when ``s`` is the session
        of a batch this thread is writing, else the access register at once."""
        log: ActLog | None = getattr(self._local, "log", None)
        return log if log is not None and log.s is s else AccessRegister(s)

    def _encryption_key(self, peer: Peer) -> EncryptionPublicKey:
        key = self._encryption_keys.get(peer.encryption_key)
        if key is None:
            key = EncryptionPublicKey.from_text(peer.encryption_key)
            self._encryption_keys[peer.encryption_key] = key
        return key

    def _forget_peer(self, party: str) -> None:
        with self._peer_lock:
            self._peer_cache.pop(party, None)

    # -- sending ----------------------------------------------------------------------------

    def _decide(
        self, item: Item, recipient: str, consents: Iterable[str], **extra: Any
    ) -> Decision:
        label = SecurityLabel.from_dict(item.label)
        request = ReleaseRequest(
            label=label,
            holder=self.party,
            recipient=recipient,
            consents=frozenset(consents),
            received_under=item.received_under,
            **extra,
        )
        return decide(self.node.registry, request, self.node.now())

    def share(
        self, actor: User, item_id: str, recipient: str, *, person: Person | None = None
    ) -> Share:
        """Decide and, if allowed, queue the item for delivery; if only the originator's consent
        is missing, ask for it and wait.

        Concurrent shares are group-committed: each is decided, sealed and written in a
        savepoint of one shared transaction, and returns once that transaction is durable.
        """
        _require(actor, *ITEM_ROLES)
        to = self.node.registry.party(recipient).code
        visibility = self.node.visibility(actor)
        return self._commits.run(
            lambda b: self._share(b.s, b.log, actor, item_id, to, visibility, person),
            atomic=True,
        )

    def write_soon(self, act: Callable[[Session, ActLog], _T]) -> Future[_T]:
        """``act(session, acts)`` in the group commit (a savepoint of the next batch): its result
        once that batch has committed. For the delivery worker's records of what came back."""
        return self._commits.submit(lambda b: act(b.s, b.log))

    def share_soon(
        self,
        token: str,
        item_id: str,
        recipient: str,
        person: Callable[[str], Person] | None = None,
    ) -> Future[Share]:
        """``share`` for the HTTP API, as the holder of ``token``: the token is looked up in the
        act's own transaction (a token revoked a moment ago, even by another process, shares
        nothing), and the future resolves once the share is durable. ``person(recipient)``
        gives the recipient-side person the decision is for, if any."""

        def act(b: Batch) -> Share:
            actor = b.user(token)
            _require(actor, *ITEM_ROLES)
            to = self.node.registry.party(recipient).code
            visibility = self.node.visibility(actor)
            who = person(to) if person is not None else None
            return self._share(b.s, b.log, actor, item_id, to, visibility, who)

        return self._commits.submit(act, atomic=True)

    def share_set(
        self,
        token: str,
        item_ids: Sequence[str],
        recipient: str,
        person: Callable[[str], Person] | None = None,
    ) -> Iterator[Future[list[Share | GsomiaError]]]:
        """``share_soon`` for a set of items to one recipient (a day's reports, say): the acts
        that share it, ``SET_CHUNK`` items each, each submitted when the caller asks for the
        next, so that other shares commit between them rather than wait behind the whole set.

        Each act checks the token, the actor's roles and the recipient before it writes, and
        its future fails if they do not hold (for the first act: nothing is shared). Otherwise
        it resolves, once committed, to an outcome per item: its share (which may be
        ``refused``) or its own error (not found, not held, a next hop that is not a peer);
        one item's error takes nothing else with it, since a share act checks everything
        before it writes."""
        listed = list(item_ids)
        if not 1 <= len(listed) <= MAX_ITEMS_PER_RELEASE:
            raise InputError(f"a set holds 1 to {MAX_ITEMS_PER_RELEASE} items, not {len(listed)}")
        twice = sorted(i for i, n in Counter(listed).items() if n > 1)
        if twice:
            raise InputError(f"items {', '.join(twice)} listed more than once")

        def act(chunk: Sequence[str], b: Batch) -> list[Share | GsomiaError]:
            actor = b.user(token)
            _require(actor, *ITEM_ROLES)
            to = self.node.registry.party(recipient).code
            visibility = self.node.visibility(actor)
            who = person(to) if person is not None else None
            outcomes: list[Share | GsomiaError] = []
            for item_id in chunk:
                try:
                    outcomes.append(self._share(b.s, b.log, actor, item_id, to, visibility, who))
                except GsomiaError as e:
                    outcomes.append(e)
            return outcomes

        def acts() -> Iterator[Future[list[Share | GsomiaError]]]:
            for start in range(0, len(listed), SET_CHUNK):
                chunk = listed[start : start + SET_CHUNK]
                yield self._commits.submit(functools.partial(act, chunk), atomic=True)

        return acts()

    def _share(
        self,
        s: Session,
        log: ActLog,
        actor: User,
        item_id: str,
        to: str,
        visibility: Visibility,
        person: Person | None,
    ) -> Share:
        now = self.node.now()
        found = item_to_share(s, item_id, visibility)
        if found is None:
            raise ItemNotFoundError(item_id)
        item, payload = found
        if item.status is not Disposition.HELD:
            raise ConflictError(f"item {item_id} was {item.status.value}")
        on_record = consent_originators(s, item.id)
        decision = self._decide(item, to, on_record, person=person)
        decided = decision.to_dict()
        decided_digest = digest(decided)
        evidence = decision_evidence(decision, decided_digest)
        reasons = _why_not(decision)
        share_id = str(uuid.uuid4())
        status, envelope_id, request_id = "refused", None, None
        # An atomic act (see GroupCommit.submit): everything that may fail before the first
        # write, but asking for consent, which writes its request first (in a savepoint).
        if decision.allowed:
            envelope_id = self._enqueue_share(
                s, share_id, item, decision, on_record, payload=payload, decided=decided_digest
            )
            status = "queued"
        elif self._consent_would_do(item, to, on_record, person):
            label = SecurityLabel.from_dict(item.label)
            with s.begin_nested():
                request_id = self._ask_consent(s, share_id, item, label, to)
            status = "awaiting-consent"
        share = Shares(s).insert(
            id=share_id,
            item_id=item.id,
            requested_by=actor.id,
            recipient=to,
            route=list(decision.route),
            instruments=list(decision.instruments),
            status=status,
            reasons=reasons,
            decision=decided,
            created_at=now,
            queued_real=real_now(),
            envelope_id=envelope_id,
            consent_request_id=request_id,
        )
        log.record(
            item_id=item.id,
            user_id=actor.id,
            action="share",
            at=now,
            detail=f"to {to}: {status} ({' → '.join(decision.route)})",
            evidence=evidence,
        )
        return share

    def _consent_would_do(
        self, item: Item, to: str, on_record: set[str], person: Person | None
    ) -> bool:
        originator = item.label["originator"]
        if originator == self.party or originator in on_record:
            return False
        return self._decide(item, to, on_record | {originator}, person=person).allowed

    def _peer_or_fail(self, party: str) -> Peer:
        peer = self.peer(party)  # cached: see peer()
        if peer is None:
            raise UnknownPeerError(f"{party} is not a peer of this node")
        return peer

    def _send(
        self,
        s: Any,
        *,
        kind: str,
        to: str,
        header: dict[str, Any],
        payload: bytes,
        share_id: str | None = None,
    ) -> str:
        """Seal an envelope for ``to`` and put it in the outbox, in the caller's transaction."""
        peer = self._peer_or_fail(to)
        envelope_id = str(uuid.uuid4())
        full = {
            **header,
            "id": envelope_id,
            "kind": kind,
            "sender": self.party,
            "recipient": to,
            "created_at": self.node.now().isoformat(),
            "sent_real": real_now().isoformat(),
            "nonce": secrets.token_hex(16),
            "registry_hash": self.node.registry.content_hash,
        }
        _, body = seal_bytes(
            full, payload, sender_key=self.signing_key, recipient_key=self._encryption_key(peer)
        )
        Outbox(s).put(
            envelope_id=envelope_id, share_id=share_id, kind=kind, peer=to, body=body,
            now=real_now(),
        )  # fmt: skip
        queued: set[str] | None = getattr(self._local, "queued_to", None)
        if queued is None:
            queued = self._local.queued_to = set()
        queued.add(to)
        return envelope_id

    def _enqueue_share(
        self,
        s: Any,
        share_id: str,
        item: Item,
        decision: Decision,
        consents: Iterable[str],
        relay_of: dict[str, Any] | None = None,
        *,
        payload: bytes | None = None,
        decided: str | None = None,
    ) -> str:
        """Seal the item for the next hop of ``decision`` and queue it (``payload`` and
        ``decided``, the decision's digest, when the caller has them at hand)."""
        consents = set(consents)
        if item.label["originator"] == self.party:
            # The originator routing its own item is its consent; the signed envelope carries it
            # so that a hub can forward (TISA para 4).
            consents.add(self.party)
        header = {
            "share_id": share_id,
            "route": list(decision.route),
            "instruments": list(decision.instruments),
            "final_recipient": decision.route[-1],
            "label": item.label,  # as the sender holds it; the receiver derives its own
            "received_under": item.received_under,
            "consents": sorted(set(consents)),
            "decision_digest": decided or digest(decision.to_dict()),
            "origin_item_id": item.origin_item_id or item.id,
            "title": item.title,
            "relay_of": relay_of,
        }
        if payload is None:
            payload = Items(s).payload(item.id)
        return self._send(
            s, kind="share", to=decision.route[1], header=header, payload=payload, share_id=share_id
        )

    def _ask_consent(self, s: Any, share_id: str, item: Item, label: SecurityLabel, to: str) -> str:
        request = ConsentRequests(s).add(
            direction="outgoing",
            origin_item_id=item.origin_item_id or item.id,
            item_id=item.id,
            requester=self.party,
            originator=label.originator,
            recipient=to,
            share_id=share_id,
            title=item.title,
            status="pending",
            created_at=self.node.now(),
        )
        s.flush()
        header = {
            "request_id": request.id,
            "origin_item_id": request.origin_item_id,
            "proposed_recipient": to,
            "share_id": share_id,
            "title": item.title,
        }
        self._send(s, kind="consent-request", to=label.originator, header=header, payload=b"")
        return request.id

    # -- receiving ----------------------------------------------------------------------------

    def record_refusal(
        self, verified: VerifiedRequest | None, envelope: Any, error: GsomiaError
    ) -> None:
        """Record a refused node-to-node request (and its nonce, so it cannot be replayed)."""
        with self.node.store.write() as s:
            if verified is not None and not isinstance(error, ReplayError):
                # In a savepoint: a concurrent twin that recorded the nonce first must not
                # spoil the refusal's own record.
                with contextlib.suppress(ReplayError), s.begin_nested():
                    Nonces(s).remember(verified.key_id, verified.nonce, real_now(), WINDOW)
            self._record_refusal(s, verified.party if verified else None, envelope, error)

    def _record_refusal(
        self, s: Session, signer: str | None, envelope: Any, error: GsomiaError
    ) -> None:
        header = envelope.get("header") if isinstance(envelope, dict) else None
        header = header if isinstance(header, dict) else {}
        detail = (
            f"{error.code} from {signer or 'an unverified sender'}: "
            f"{error.message}; envelope {str(header.get('id', '?'))[:64]} "
            f"({str(header.get('kind', '?'))[:32]})"
        )[:500]
        self._register(s).record(
            item_id=None, user_id=None, action="federation-refused", at=self.node.now(),
            detail=detail,
        )  # fmt: skip

    def receive(
        self, signer: str, envelope: Any, verified: VerifiedRequest | None = None
    ) -> dict[str, Any]:
        """Act on an envelope from ``signer`` (already authenticated by its request signature).

        Returns the signed receipt. A redelivery returns the first receipt and does nothing else.
        The request's nonce is recorded in the same transaction as the effect (one commit). A
        refusal is recorded (with the nonce) before it is raised.
        """
        outcome = self._receive(signer, [envelope], verified)[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def receive_batch(
        self, signer: str, envelopes: Sequence[Any], verified: VerifiedRequest | None = None
    ) -> list[dict[str, Any]]:
        """Act on several envelopes from ``signer`` that came in one signed request.

        One nonce and one transaction for them all; each envelope is accepted or refused on its
        own (in a savepoint), exactly as if it had come alone. The answer is one entry per
        envelope, in order: ``{"receipt": signed receipt}`` or ``{"problem": problem details}``.
        """
        return [
            {"problem": o.to_problem()} if isinstance(o, GsomiaError) else {"receipt": o}
            for o in self._receive(signer, envelopes, verified)
        ]

    def _receive(
        self, signer: str, envelopes: Sequence[Any], verified: VerifiedRequest | None
    ) -> list[dict[str, Any] | GsomiaError]:
        whole: Any = envelopes[0] if len(envelopes) == 1 else None
        try:
            if verified is not None:
                with self.node.store.read() as s:
                    if Nonces(s).seen(verified.key_id, verified.nonce):
                        raise ReplayError("this request was seen before")
            # Verify and open outside the write transaction: it is the CPU-heavy part.
            opened = [self._open(signer, envelope) for envelope in envelopes]
            self._local.queued_to = set()  # what this thread's acts queue from here on
            self._prune_nonces()
            for attempt in range(3):
                try:
                    outcomes = self._accept(signer, envelopes, opened, verified)
                    break
                except IntegrityError:
                    # A concurrent delivery of one of these envelopes committed first (never
                    # on SQLite, whose writers take turns): again, and it answers as it did.
                    if attempt == 2:
                        raise
        except ReplayError as e:
            self.record_refusal(verified, whole, e)
            raise
        self.publish_queued()  # when an act queued a relay, an answer or a report
        return outcomes

    def _open(self, signer: str, envelope: Any) -> Opened | GsomiaError:
        """The envelope verified and opened, or why not (not raised: a batch goes on)."""
        try:
            if not isinstance(envelope, dict) or not isinstance(envelope.get("header"), dict):
                raise EnvelopeError("malformed envelope")
            header = envelope["header"]
            if header.get("sender") != signer:
                raise MisaddressedError(
                    "the envelope's sender is not the party that signed the request"
                )
            if header.get("recipient") != self.party:
                raise MisaddressedError(
                    f"this envelope is for {header.get('recipient')}, not {self.party}"
                )
            key = self.pinned_signing_key(signer)
            if key is None:
                raise UnknownPeerError(f"{signer} is not a peer of this node")
            opened = open_envelope(envelope, sender_key=key, recipient_key=self.encryption_key)
            if opened.header.get("kind") not in self._handlers:
                raise EnvelopeError(f"unknown envelope kind {opened.header.get('kind')!r}")
        except GsomiaError as e:
            return e
        return opened

    @property
    def _handlers(self) -> dict[str, Callable[[Any, dict[str, Any], bytes], dict[str, Any]]]:
        return {
            "share": self._on_share,
            "delivery-report": self._on_delivery_report,
            "consent-request": self._on_consent_request,
            "consent-answer": self._on_consent_answer,
            "incident": self._on_incident,
            "notice": self._on_notice,
            "notice-ack": self._on_notice_ack,
        }

    def _accept(
        self,
        signer: str,
        envelopes: Sequence[Any],
        opened: Sequence[Opened | GsomiaError],
        verified: VerifiedRequest | None,
    ) -> list[dict[str, Any] | GsomiaError]:
        """One write transaction: the nonce, then every envelope in a savepoint of its own."""
        handlers = self._handlers
        single = len(envelopes) == 1
        outcomes: list[dict[str, Any] | GsomiaError] = []
        try:
            self._accept_in(signer, envelopes, opened, verified, handlers, single, outcomes)
        except _LoneRefusalError as refused:
            # Nothing of the envelope's act was kept; the refusal (and the nonce) are.
            self.record_refusal(verified, envelopes[0], refused.error)
            return [refused.error]
        finally:
            self._local.log = None
        return outcomes

    def _accept_in(
        self,
        signer: str,
        envelopes: Sequence[Any],
        opened: Sequence[Opened | GsomiaError],
        verified: VerifiedRequest | None,
        handlers: dict[str, Callable[[Any, dict[str, Any], bytes], dict[str, Any]]],
        single: bool,
        outcomes: list[dict[str, Any] | GsomiaError],
    ) -> None:
        with self.node.store.write() as s:
            log = self._local.log = ActLog(s)
            # The nonce first: a replayed request is refused even when it carries an envelope
            # already accepted (a redelivery comes in a freshly signed request).
            if verified is not None:
                Nonces(s).remember(verified.key_id, verified.nonce, real_now(), WINDOW)
            given = Inbox(s).receipts(
                str(o.header.get("id", "")) for o in opened if isinstance(o, Opened)
            )
            accepted: list[dict[str, Any]] = []
            for envelope, o in zip(envelopes, opened, strict=True):
                if isinstance(o, GsomiaError):
                    self._record_refusal(s, signer, envelope, o)
                    outcomes.append(o)
                    continue
                header = o.header
                envelope_id = str(header.get("id", ""))
                if envelope_id in given:
                    outcomes.append(given[envelope_id])
                    continue
                mark = log.mark()
                # Alone, an envelope needs no savepoint: its refusal undoes the transaction.
                # Nor does a share for this node, whose act refuses before it writes anything.
                guard = single or self._alone_safe(header)
                try:
                    with contextlib.nullcontext() if guard else s.begin_nested():
                        result = handlers[str(header["kind"])](s, header, o.payload)
                except GsomiaError as e:
                    if single:
                        raise _LoneRefusalError(e) from e
                    log.rollback(mark)
                    self._record_refusal(s, signer, envelope, e)
                    outcomes.append(e)
                    continue
                except Exception:
                    if guard:  # no savepoint to undo what it may have written: all of it
                        raise  # a 500: nothing recorded, the sender tries again
                    log.rollback(mark)
                    logger.exception("envelope %s from %s", envelope_id[:64], signer)
                    # The root error is a 500: the sender tries this envelope again.
                    outcomes.append(GsomiaError("the node could not act on this envelope"))
                    continue
                now = self.node.now()
                body = {
                    "envelope_id": envelope_id,
                    "envelope_digest": o.digest,
                    "kind": header["kind"],
                    "sender": signer,
                    "recipient": self.party,
                    "received_at": now.isoformat(),
                    "received_real": real_now().isoformat(),
                    "status": "accepted",
                    **result,
                }
                receipt = sign_receipt(body, self.signing_key)
                given[envelope_id] = receipt
                accepted.append(
                    {
                        "envelope_id": envelope_id,
                        "sender": signer,
                        "kind": str(header["kind"]),
                        "digest": o.digest,
                        "received_at": now,
                        "receipt": receipt,
                        "item_id": result.get("item_id"),
                    }
                )
                outcomes.append(receipt)
            Inbox(s).put_many(accepted)
            log.flush()

    def _alone_safe(self, header: dict[str, Any]) -> bool:
        """Whether the act on this (opened) envelope raises, if it does, before it writes: a
        share whose final recipient is this node (``_on_share`` decides, derives the label and
        builds every record first, then writes the item and queues its register entry)."""
        return header.get("kind") == "share" and header.get("final_recipient") == self.party

    def _prune_nonces(self) -> None:
        """Forget nonces older than twice the window, at most once a minute."""
        now = time.monotonic()
        if now - self._last_prune < NONCE_PRUNE_SECONDS:
            return
        self._last_prune = now
        with self.node.store.write() as s:
            Nonces(s).prune(real_now() - 2 * WINDOW)

    def _on_share(self, s: Any, header: dict[str, Any], payload: bytes) -> dict[str, Any]:
        sender = str(header["sender"])
        route = [str(p) for p in header["route"]]
        instruments = [str(i) for i in header["instruments"]]
        hop = route.index(sender)
        if hop + 1 >= len(route) or route[hop + 1] != self.party:
            raise MisaddressedError("this node is not the next hop of the envelope's route")
        label = SecurityLabel.from_dict(header["label"])
        request = ReleaseRequest(
            label=label,
            holder=sender,
            recipient=str(header["final_recipient"]),
            consents=frozenset(header.get("consents") or ()),
            received_under=header.get("received_under"),
            under=instruments[hop],
        )
        decision = decide(self.node.registry, request, self.node.now())
        if not decision.allowed or decision.route[1] != self.party:
            failed = "; ".join(f"{r.rule}: {r.detail}" for r in decision.failed)
            raise ForbiddenError(f"this node's own decision refuses the item: {failed}")
        mine = decision.hops[0].label
        level = self.node.registry.level_by_key(mine.level_key)
        # Everything that may fail comes before the first write (see _alone_safe).
        title, origin = str(header.get("title") or "untitled"), str(header["origin_item_id"])
        evidence = {"envelope": str(header["id"]), **decision_evidence(decision)}
        detail = f"from {sender} under {instruments[hop]}, envelope {header['id']}"
        item = add_received_item(
            s,
            title=title,
            label=mine.to_dict(),
            level_rank=level.rank,
            payload=payload,
            now=self.node.now(),
            received_from=sender,
            received_under=instruments[hop],
            origin_item_id=origin,
        )
        self._register(s).record(
            item_id=item.id,
            user_id=None,
            action="receive",
            at=self.node.now(),
            detail=detail,
            evidence=evidence,
        )
        result: dict[str, Any] = {"item_id": item.id, "marking": mine.level_key}
        if decision.route[-1] != self.party:
            result["relay"] = self._relay(s, item, header, decision)
        return result

    def _relay(
        self, s: Any, item: Item, header: dict[str, Any], upstream: Decision
    ) -> dict[str, Any]:
        """As a hub: decide again for the next hop, under the same instrument, and forward."""
        consents = set(header.get("consents") or ())
        final = str(header["final_recipient"])
        decision = self._decide(item, final, consents, under=upstream.instruments[1])
        share_id = str(uuid.uuid4())
        relay_of = {
            "sender": header["sender"],
            "share_id": header.get("share_id"),
            "envelope": header["id"],
        }
        envelope_id = None
        status = "refused"
        if decision.allowed:
            envelope_id = self._enqueue_share(s, share_id, item, decision, consents, relay_of)
            status = "queued"
        elif relay_of["share_id"]:
            # Tell the original sender at once, rather than leave its share "relayed" forever.
            report = {
                "status": "refused",
                "reasons": [f"{r.rule}: {r.detail}" for r in decision.failed],
            }
            self._send(
                s,
                kind="delivery-report",
                to=str(relay_of["sender"]),
                header={"share_id": relay_of["share_id"], "relayed_envelope": header["id"]},
                payload=canonical_bytes(report),
            )
        Shares(s).add(
            id=share_id,
            item_id=item.id,
            requested_by=None,
            recipient=final,
            route=list(decision.route),
            instruments=list(decision.instruments),
            status=status,
            reasons=[f"{r.rule}: {r.detail}" for r in decision.failed],
            decision=decision.to_dict(),
            created_at=self.node.now(),
            queued_real=real_now(),
            envelope_id=envelope_id,
            relay_of=json.dumps(relay_of, sort_keys=True),
        )
        return {"share_id": share_id, "status": status}

    def _on_delivery_report(self, s: Any, header: dict[str, Any], payload: bytes) -> dict[str, Any]:
        share_id = str(header.get("share_id"))
        share = Shares(s).get(share_id)
        if share is None or share.route[1] != header["sender"]:
            raise MisaddressedError("no share of ours was relayed by this sender")
        report = json.loads(payload or b"{}")
        if report.get("status") == "refused":
            reasons = [f"at the hub {header['sender']}: {r}" for r in report.get("reasons", [])]
            Shares(s).update(share_id, status="refused", reasons=reasons)
            return {"share_id": share_id}
        Shares(s).update(
            share_id,
            status="delivered",
            delivered_real=real_now(),
            receipt={"hub": share.receipt, "final": report.get("receipt")},
        )
        return {"share_id": share_id}

    # -- consent ------------------------------------------------------------------------------

    def _on_consent_request(self, s: Any, header: dict[str, Any], payload: bytes) -> dict[str, Any]:
        origin = str(header["origin_item_id"])
        local = Items(s).get(origin, None)
        if local is None or local.label["originator"] != self.party:
            raise ItemNotFoundError(origin)
        row = ConsentRequests(s).add(
            direction="incoming",
            origin_item_id=origin,
            item_id=local.id,
            requester=str(header["sender"]),
            originator=self.party,
            recipient=str(header["proposed_recipient"]),
            share_id=str(header.get("share_id")),
            title=str(header.get("title") or ""),
            status="pending",
            created_at=self.node.now(),
            reason=str(header.get("request_id")),  # the requester's id, echoed in the answer
        )
        return {"consent_request_id": row.id}

    def answer_consent(
        self, actor: User, request_id: str, *, grant: bool, reason: str
    ) -> dict[str, Any]:
        """A release authority of the originator grants or refuses a request for consent."""
        _require(actor, Role.RELEASE_AUTHORITY)
        now = self.node.now()
        with self.node.store.write() as s:
            row = ConsentRequests(s).get(request_id)
            if row is None or row.direction != "incoming":
                raise InputError(f"no consent request {request_id!r} for this node")
            if row.status != "pending":
                raise ConflictError(f"consent request {request_id} was already {row.status}")
            their_id = row.reason
            row.status = "granted" if grant else "refused"
            row.answered_at, row.answered_by, row.reason = now, actor.id, reason
            header = {
                "request_id": their_id,
                "share_id": row.share_id,
                "origin_item_id": row.origin_item_id,
                "granted": grant,
                "reason": reason,
            }
            self._send(s, kind="consent-answer", to=row.requester, header=header, payload=b"")
            AccessRegister(s).record(
                item_id=row.item_id,
                user_id=actor.id,
                action="consent-granted" if grant else "consent-refused",
                at=now,
                detail=f"{row.requester} → {row.recipient}: {reason}",
            )
            answer = consent_json(row)
        self.publish_queued()
        return answer

    def _on_consent_answer(self, s: Any, header: dict[str, Any], payload: bytes) -> dict[str, Any]:
        row = ConsentRequests(s).get(str(header["request_id"]))
        if row is None or row.direction != "outgoing" or row.originator != header["sender"]:
            raise MisaddressedError("no consent request of ours to this originator")
        granted = bool(header["granted"])
        row.status = "granted" if granted else "refused"
        row.answered_at, row.reason = self.node.now(), str(header.get("reason") or "")
        share = Shares(s).get(row.share_id or "")
        if share is None:
            return {"consent_request_id": row.id}
        if not granted:
            Shares(s).update(
                share.id,
                status="refused",
                reasons=[f"third-party: {row.originator} refused consent: {row.reason}"],
            )
            return {"consent_request_id": row.id, "share_status": "refused"}
        Consents(s).add(
            item_id=share.item_id,
            originator=row.originator,
            recorded_by=None,
            reference=f"consent request {row.id}: {row.reason}",
            now=self.node.now(),
        )
        item = Items(s).get(share.item_id, None)
        assert item is not None
        on_record = {c.originator for c in Consents(s).for_item(item.id)} | {row.originator}
        decision = self._decide(item, share.recipient, on_record)
        if decision.allowed:
            envelope_id = self._enqueue_share(s, share.id, item, decision, on_record)
            Shares(s).update(
                share.id,
                status="queued",
                route=list(decision.route),
                instruments=list(decision.instruments),
                decision=decision.to_dict(),
                reasons=[],
                envelope_id=envelope_id,
                queued_real=real_now(),
            )
            return {"consent_request_id": row.id, "share_status": "queued"}
        Shares(s).update(
            share.id, status="refused", reasons=[f"{r.rule}: {r.detail}" for r in decision.failed]
        )
        return {"consent_request_id": row.id, "share_status": "refused"}

    def consent_requests(self, actor: User, *, status: str | None = None) -> list[dict[str, Any]]:
        _require(actor, Role.RELEASE_AUTHORITY, Role.AUDITOR)
        with self.node.store.read() as s:
            return [consent_json(r) for r in ConsentRequests(s).list(status=status)]

    # -- incidents ----------------------------------------------------------------------------

    def report_incident(
        self,
        actor: User,
        item_id: str,
        *,
        kind: str,
        description: str,
        follow_up_of: str | None = None,
    ) -> dict[str, Any]:
        """A loss or compromise, or its possibility, told to the originator at once (Art. 17)."""
        _require(actor, *ITEM_ROLES)
        if kind not in INCIDENT_KINDS:
            raise InputError(f"incident kind must be one of {', '.join(INCIDENT_KINDS)}")
        if not description.strip():
            raise InputError("an incident needs a description")
        now = self.node.now()
        with self.node.store.write() as s:
            item = Items(s).get(item_id, self.node.visibility(actor))
            if item is None:
                raise ItemNotFoundError(item_id)
            if follow_up_of is not None and Incidents(s).get(follow_up_of) is None:
                raise InputError(f"no incident {follow_up_of!r} to follow up")
            originator = str(item.label["originator"])
            row = Incidents(s).add(
                direction="outgoing" if originator != self.party else "local",
                origin_item_id=item.origin_item_id or item.id,
                item_id=item.id,
                reporter=self.party,
                originator=originator,
                kind=kind,
                description=description.strip(),
                follow_up_of=follow_up_of,
                created_at=now,
                reported_by=actor.id,
            )
            s.flush()
            if originator != self.party:
                header = {
                    "incident_id": row.id,
                    "origin_item_id": row.origin_item_id,
                    "incident_kind": kind,
                    "follow_up_of": follow_up_of,
                }
                self._send(
                    s, kind="incident", to=originator, header=header,
                    payload=description.strip().encode("utf-8"),
                )  # fmt: skip
            AccessRegister(s).record(
                item_id=item.id, user_id=actor.id, action="incident", at=now, detail=f"{kind}"
            )
            result = incident_json(row)
        self.publish_queued()
        return result

    def _on_incident(self, s: Any, header: dict[str, Any], payload: bytes) -> dict[str, Any]:
        origin = str(header["origin_item_id"])
        local = Items(s).get(origin, None)
        row = Incidents(s).add(
            id=str(header["incident_id"]),
            direction="incoming",
            origin_item_id=origin,
            item_id=local.id if local else None,
            reporter=str(header["sender"]),
            originator=self.party,
            kind=str(header["incident_kind"]),
            description=payload.decode("utf-8", "replace"),
            follow_up_of=header.get("follow_up_of"),
            created_at=self.node.now(),
        )
        self._register(s).record(
            item_id=local.id if local else None,
            user_id=None,
            action="incident-received",
            at=self.node.now(),
            detail=f"{row.kind} from {row.reporter}",
        )
        return {"incident_id": row.id}

    def incidents(self, actor: User) -> list[dict[str, Any]]:
        _require(actor, Role.RELEASE_AUTHORITY, Role.AUDITOR, Role.OFFICER)
        with self.node.store.read() as s:
            return [incident_json(r) for r in Incidents(s).list()]

    # -- notices from the originator ----------------------------------------------------------

    def reclassify(self, actor: User, item_id: str, *, classification: str, reason: str) -> Item:
        item = self.node.reclassify(actor, item_id, classification=classification, reason=reason)
        self.notify_holders(actor, item, kind="reclassify", note=reason)
        return item

    def notify_holders(
        self, actor: User, item: Item, *, kind: str, note: str
    ) -> list[dict[str, Any]]:
        """Tell every holder of one of our items what changed; each must acknowledge."""
        _require(actor, Role.RELEASE_AUTHORITY)
        if kind not in NOTICE_KINDS:
            raise InputError(f"a notice is one of {', '.join(NOTICE_KINDS)}")
        if item.label["originator"] != self.party:
            raise ForbiddenError("only the originator sends notices about an item")
        now = self.node.now()
        sent = []
        with self.node.store.write() as s:
            holders = sorted(
                {p for share in Shares(s).delivered_for_item(item.id) for p in share.route[1:]}
            )
            for holder in holders:
                row = Notices(s).add(
                    direction="outgoing",
                    kind=kind,
                    origin_item_id=item.id,
                    holder=holder,
                    detail={"label": item.label, "note": note},
                    created_at=now,
                )
                s.flush()
                header = {"notice_id": row.id, "notice_kind": kind, "origin_item_id": item.id,
                          "label": item.label, "note": note}  # fmt: skip
                self._send(s, kind="notice", to=holder, header=header, payload=b"")
                sent.append(notice_json(row))
        self.publish_queued()
        return sent

    def _on_notice(self, s: Any, header: dict[str, Any], payload: bytes) -> dict[str, Any]:
        sender = str(header["sender"])
        label = SecurityLabel.from_dict(header["label"])
        if label.originator != sender:
            raise ForbiddenError("only the originator sends notices about an item")
        kind = str(header["notice_kind"])
        items = Items(s)
        applied = []
        for copy in items.copies_of(str(header["origin_item_id"])):
            if copy.status is not Disposition.HELD:
                continue
            if kind == "reclassify":
                mine = equivalent_label(
                    self.node.registry, label, copy.received_under or "", self.party
                )
                if mine is None:
                    continue
                held = SecurityLabel.from_dict(copy.label)
                mine = replace(mine, releasable_to=held.releasable_to, topics=held.topics)
                level = self.node.registry.level_by_key(mine.level_key)
                items.relabel(
                    copy.id,
                    label=mine.to_dict(),
                    level_rank=level.rank,
                    changed_by=None,
                    reason=f"{sender}'s notice {header['notice_id']}: {header.get('note')}",
                    now=self.node.now(),
                )
            else:
                items.dispose(
                    copy.id,
                    status=Disposition.DESTROYED if kind == "destroy" else Disposition.RETURNED,
                    by=None,
                    note=f"originator {sender}'s notice {header['notice_id']}",
                    now=self.node.now(),
                )
            applied.append(copy.id)
            self._register(s).record(
                item_id=copy.id, user_id=None, action=f"notice-{kind}", at=self.node.now(),
                detail=f"from {sender}",
            )  # fmt: skip
        row = Notices(s).add(
            direction="incoming",
            kind=kind,
            origin_item_id=str(header["origin_item_id"]),
            holder=self.party,
            detail={"label": header["label"], "applied_to": applied},
            created_at=self.node.now(),
            acknowledged_at=self.node.now(),
        )
        ack = {"notice_id": header["notice_id"], "applied_to": applied, "kind": kind}
        self._send(s, kind="notice-ack", to=sender, header=ack, payload=b"")
        return {"notice_id": row.id, "applied_to": applied}

    def _on_notice_ack(self, s: Any, header: dict[str, Any], payload: bytes) -> dict[str, Any]:
        row = Notices(s).get(str(header["notice_id"]))
        if row is None or row.direction != "outgoing" or row.holder != header["sender"]:
            raise MisaddressedError("no notice of ours to this holder")
        row.acknowledged_at = self.node.now()
        row.ack = {"applied_to": header.get("applied_to"), "envelope": header["id"]}
        return {"notice_id": row.id}

    def notices(self, actor: User) -> list[dict[str, Any]]:
        _require(actor, Role.RELEASE_AUTHORITY, Role.AUDITOR)
        with self.node.store.read() as s:
            return [notice_json(r) for r in Notices(s).list()]

    # -- outcomes of delivery (called by the worker) ---------------------------------------------

    def delivered(self, s: Any, share_id: str | None, kind: str, receipt: dict[str, Any]) -> None:
        self.delivered_many(s, [(share_id, kind, receipt)])

    def delivered_many(
        self,
        s: Any,
        done: Sequence[tuple[str | None, str, dict[str, Any]]],
        acts: ActLog | None = None,
    ) -> None:
        """Record deliveries, each with its verified receipt, in the caller's transaction: an act
        (and a ledger entry) per envelope, in ``acts`` if given (else written at once), and the
        shares' new states in one statement."""
        register = acts if acts is not None else ActLog(s)
        at = self.node.now()
        for _, kind, receipt in done:
            body = receipt.get("receipt") if isinstance(receipt, dict) else None
            body = body if isinstance(body, dict) else {}
            register.record(
                item_id=None,
                user_id=None,
                action="delivered",
                at=at,
                detail=f"{kind} to {body.get('recipient')}: envelope {body.get('envelope_id')}",
                evidence={"receipt": digest(receipt), "envelope": str(body.get("envelope_id"))},
            )
        if acts is None:
            register.flush()
        shares = [(i, r) for i, kind, r in done if i is not None and kind == "share"]
        if not shares:
            return
        known = Shares(s).routes(i for i, _ in shares)
        delivered_real = real_now()
        changes, relayed = [], []
        for share_id, receipt in shares:
            if share_id not in known:
                continue
            route, relay_of = known[share_id]
            final = len(route) == 2
            changes.append(
                {
                    "id": share_id,
                    "status": "delivered" if final else "relayed",
                    "delivered_real": delivered_real if final else None,
                    "receipt": receipt,
                }
            )
            if relay_of is not None and final:
                relayed.append((share_id, receipt))
        Shares(s).record_outcomes(changes)
        for share_id, receipt in relayed:
            share = Shares(s).get(share_id)
            if share is not None:
                self._report_relay(s, share, receipt)

    def _report_relay(self, s: Any, share: Share, receipt: dict[str, Any]) -> None:
        """As a hub, tell the original sender its item reached the final recipient."""
        upstream = json.loads(share.relay_of or "{}")
        if not upstream.get("share_id") or not upstream.get("sender"):
            return
        header = {"share_id": upstream["share_id"], "relayed_envelope": upstream.get("envelope")}
        self._send(
            s,
            kind="delivery-report",
            to=str(upstream["sender"]),
            header=header,
            payload=canonical_bytes({"receipt": receipt}),
        )

    def refused(self, s: Any, share_id: str | None, kind: str, problem: dict[str, Any]) -> None:
        if share_id is None:
            return
        Shares(s).update(
            share_id,
            status="refused",
            reasons=[f"{problem.get('code', 'refused')}: {problem.get('detail', '')}"],
            last_error=str(problem.get("detail", "")),
        )

    def failed(self, s: Any, share_id: str | None, error: str, gave_up: bool) -> None:
        if share_id is None:
            return
        fields: dict[str, Any] = {"last_error": error}
        if gave_up:
            fields["status"] = "failed"
        Shares(s).update(share_id, **fields)

    def shares(self, actor: User, *, item_id: str | None = None) -> list[Share]:
        _require(actor, *ITEM_ROLES, Role.AUDITOR)
        with self.node.store.read() as s:
            return Shares(s).list(item_id=item_id, limit=500)

    def get_share(self, actor: User, share_id: str) -> Share:
        _require(actor, *ITEM_ROLES, Role.AUDITOR)
        with self.node.store.read() as s:
            share = Shares(s).get(share_id)
            if share is None or Items(s).get(share.item_id, self.node.visibility(actor)) is None:
                raise InputError(f"no share {share_id!r}")
            return share


def decision_evidence(decision: Decision, decided: str | None = None) -> dict[str, Any]:
    """What a ledger entry keeps of a decision, so it can be replayed and checked later
    (``decided``: the digest of ``decision.to_dict()``, when the caller has it)."""
    return {
        "decision": decided or digest(decision.to_dict()),
        "allowed": decision.allowed,
        "registry": decision.registry_hash,
        "decided_at": decision.at.isoformat(),
    }


class _LoneRefusalError(Exception):
    """A lone envelope's act refused: out of its transaction, which is rolled back."""

    def __init__(self, error: GsomiaError) -> None:
        super().__init__(error.message)
        self.error = error


def _why_not(decision: Decision) -> list[str]:
    """Every route considered and why it was not taken (or the failed rules if none was)."""
    if decision.allowed:
        return []
    if decision.routes_considered:
        return [o.summary() for o in decision.routes_considered]
    return [f"{r.rule}: {r.detail}" for r in decision.failed]


def consent_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "direction": row.direction,
        "origin_item_id": row.origin_item_id,
        "item_id": row.item_id,
        "requester": row.requester,
        "originator": row.originator,
        "recipient": row.recipient,
        "title": row.title,
        "status": row.status,
        "created_at": row.created_at.isoformat(),
        "answered_at": row.answered_at.isoformat() if row.answered_at else None,
    }


def incident_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "direction": row.direction,
        "origin_item_id": row.origin_item_id,
        "item_id": row.item_id,
        "reporter": row.reporter,
        "originator": row.originator,
        "kind": row.kind,
        "description": row.description,
        "follow_up_of": row.follow_up_of,
        "created_at": row.created_at.isoformat(),
    }


def notice_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "direction": row.direction,
        "kind": row.kind,
        "origin_item_id": row.origin_item_id,
        "holder": row.holder,
        "created_at": row.created_at.isoformat(),
        "acknowledged_at": row.acknowledged_at.isoformat() if row.acknowledged_at else None,
    }
