"""The missile-warning link on a node: ingest, decide, journal, forward, publish.

Each track update a node accepts goes through one pipeline on the node's event loop:

1. **Boundary.** :func:`gsomia.link.tracks.from_wire` refuses anything beyond the three shared
   elements (sensor metadata is refused by name), so nothing of a sensor enters or leaves.
2. **Order.** Updates of a track are accepted in ``seq`` order: a duplicate is acknowledged
   again and dropped, an early one is held until the gap before it fills.
3. **Decide once per track and hop.** The receiving node re-decides the hop it was sent (both
   ends enforce), and decides each onward hop. A decision is cached per track and hop and made
   again only when the track's label changes or the registry reaches its next change point
   (:func:`gsomia.core.release.holds_until`), so an update costs a dictionary look-up. Each
   decision made is recorded in the access register (a ledger entry).
4. **Forward at once** over the persistent WebSocket stream to the next hop, in frames signed
   with the node's Ed25519 key, before the update is durable here: the next hop de-duplicates,
   and this node acknowledges upstream only after its own commit, so a crash loses nothing that
   was acknowledged.
5. **Journal** (:mod:`gsomia.store.link`) in batches, one transaction per batch; after the
   commit, acknowledge upstream and **publish** to subscribers filtered by clearance,
   need-to-know and compartments. Subscribers resume from a journal position without gaps.

Under an instrument whose hub forwards only with the originator's consent (TISA para 4), the
hub asks the originator for each update over the same stream and forwards when it answers:
the per-update round trip the 2023 mechanism removed. Updates of that track queue behind it,
so they stay in order.

Frames are signed hop by hop with the sending node's key, not by the originator per update:
Ed25519 verification costs about 0.2 ms here, and a frame carries many updates at high rates.
The hub is trusted as a hub under the instrument in any case (it re-marks the label).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from gsomia.core.agreements import InstrumentKind
from gsomia.core.canonical import b64, digest
from gsomia.core.errors import (
    ForbiddenError,
    GsomiaError,
    InputError,
    InvalidTrackError,
)
from gsomia.core.labels import SecurityLabel
from gsomia.core.release import Decision, ReleaseRequest, decide, holds_until
from gsomia.crypto.httpsig import sign_request
from gsomia.link.tak import TakServer
from gsomia.link.tracks import Phase, TrackUpdate, from_wire, to_wire
from gsomia.node.federation import Federation
from gsomia.node.service import ITEM_ROLES, _require
from gsomia.store.federation import ActLog
from gsomia.store.link import JournalEntry, LinkJournal
from gsomia.store.records import User, Visibility

log = logging.getLogger("gsomia.link")

LINK_PATH = "/federation/v1/link"
FRAME_MAX = 256  # updates per signed frame
HOLD_MAX = 1_000  # early updates held per track while a gap fills
_DONE = frozenset({Phase.IMPACT.value, Phase.LOST.value})


class Conn(Protocol):
    """One end of a stream: what the service needs to answer on it."""

    async def send_json(self, data: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class LinkOptions:
    # Instruments to route under, in order of preference; empty: every link instrument that
    # names this party, by id.
    under: tuple[str, ...] = ()
    subscriber_queue: int = 20_000
    gap_timeout: float = 10.0  # seconds a producer's early update waits for the one before it
    consent_timeout: float = 30.0  # seconds a hub waits for the originator's consent
    stats_window: int = 100_000
    # TAK clients (Cursor-on-Target over TCP): where to listen, as which user (whose clearance
    # filters what they see and who is the producer of what they feed), and the classification
    # (a level of this node's scheme) of the tracks they feed.
    tak_port: int | None = None
    tak_host: str = "127.0.0.1"
    tak_user: str | None = None
    tak_classification: str | None = None


@dataclass(slots=True)
class _Cached:
    label: SecurityLabel
    until: float
    decision: Decision


@dataclass(slots=True)
class _TrackState:
    """What a late subscriber is first told about an active track."""

    originator: str
    label: dict[str, Any]
    level_rank: int
    topics: frozenset[str]
    compartments: frozenset[str]
    launch: dict[str, Any]
    samples: list[dict[str, Any]]
    impact: dict[str, Any] | None
    phase: str
    seq: int
    pos: int


@dataclass(slots=True)
class _Accepted:
    """An update accepted here, on its way to the journal."""

    entry: JournalEntry
    upstream: str | None  # the peer to acknowledge after the commit (None: local)
    future: asyncio.Future[int] | None = None


class _Latency(NamedTuple):
    # A tuple of atoms, which the garbage collector stops tracking: the window is long.
    route: tuple[str, ...]
    hops: tuple[float, ...]  # ms from one node's intake to the next one's
    local: float  # ms from this node's intake to publication here
    total: float  # ms from the originator's intake to publication here


@dataclass
class LinkStats:
    window: int
    samples: deque[_Latency] = field(init=False)

    def __post_init__(self) -> None:
        self.samples = deque(maxlen=self.window)  # the latest ``window`` samples

    def add(self, sample: _Latency) -> None:
        self.samples.append(sample)

    def summary(self) -> dict[str, Any]:
        by_route: dict[tuple[str, ...], list[_Latency]] = {}
        for s in self.samples:
            by_route.setdefault(s.route, []).append(s)
        routes = []
        for route, rows in sorted(by_route.items()):
            hops = [
                {
                    "from": route[i],
                    "to": route[i + 1],
                    **percentiles([r.hops[i] for r in rows]),
                }
                for i in range(len(route) - 1)
            ]
            routes.append(
                {
                    "route": list(route),
                    "count": len(rows),
                    "hops": hops,
                    "publish": percentiles([r.local for r in rows]),
                    "end_to_end": percentiles([r.total for r in rows]),
                }
            )
        return {"window": self.window, "routes": routes}


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50, p99 and max in milliseconds (nearest-rank), rounded to a microsecond."""
    if not values:
        return {"p50_ms": math.nan, "p99_ms": math.nan, "max_ms": math.nan}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {
        "p50_ms": round(rank(0.50), 3),
        "p99_ms": round(rank(0.99), 3),
        "max_ms": round(ordered[-1], 3),
    }


def visible_to(
    vis: Visibility, level_rank: int, topics: frozenset[str], comps: frozenset[str]
) -> bool:
    """The link's form of the item visibility rule (store.repositories.visible)."""
    return (
        vis.max_rank > 0
        and level_rank <= vis.max_rank
        and topics <= vis.need_to_know
        and comps <= vis.compartments
    )


class _PeerStream:
    """This node's outgoing stream to one peer: one WebSocket, re-opened when it drops.

    ``unacked`` holds, in journal order, every entry sent (or to be sent) to the peer that the
    peer has not acknowledged; on each (re)connection all of it is sent again first.
    """

    def __init__(self, service: LinkService, party: str) -> None:
        self.service = service
        self.party = party
        self.unacked: OrderedDict[tuple[str, int], tuple[int, dict[str, Any]]] = OrderedDict()
        self.pending: deque[dict[str, Any]] = deque()
        self.wake = asyncio.Event()
        self.connected = asyncio.Event()
        self.acked_pos = 0
        self.task: asyncio.Task[None] | None = None

    def send(self, pos: int, wire: dict[str, Any]) -> None:
        u = wire["u"]
        self.unacked[(u["track_id"], u["seq"])] = (pos, wire)
        self.pending.append(wire)
        self.wake.set()

    def acknowledged(self, keys: Iterable[Sequence[Any]]) -> None:
        top = self.acked_pos
        for key in keys:
            found = self.unacked.pop((str(key[0]), int(key[1])), None)
            if found is not None:
                top = max(top, found[0])
        if self.unacked:
            # Everything before the oldest unacknowledged entry has been acknowledged.
            top = next(iter(self.unacked.values()))[0] - 1
        if top > self.acked_pos:
            self.acked_pos = top
            self.service._cursor_moved(self.party, top)

    async def run(self) -> None:
        backoff = 0.05
        while True:
            try:
                await self._session()
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as e:  # any failure of one connection: reconnect
                log.info("link stream to %s: %s", self.party, e)
            self.connected.clear()
            # Reconnection back-off: production behaviour for a peer that is down.
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    async def _session(self) -> None:
        url, headers = self.service._handshake(self.party)
        async with websockets.connect(
            url,
            additional_headers=headers,
            max_size=16 * 1024 * 1024,
            open_timeout=5,
            # No per-message deflate: on the link CPU is latency, and frames are small.
            compression=None,
        ) as ws:
            self.pending = deque(w for _, w in self.unacked.values())
            self.connected.set()
            reader = asyncio.create_task(self._read(ws))
            try:
                while True:
                    if not self.pending:
                        self.wake.clear()
                        waiter = asyncio.create_task(self.wake.wait())
                        done, _ = await asyncio.wait(
                            {waiter, reader}, return_when=asyncio.FIRST_COMPLETED
                        )
                        if reader in done:
                            waiter.cancel()
                            reader.result()
                            return
                        continue
                    frame: list[dict[str, Any]] = []
                    now = time.time_ns()
                    while self.pending and len(frame) < FRAME_MAX:
                        wire = self.pending.popleft()
                        wire["h"][-1]["out"] = now
                        frame.append(wire)
                    body = json.dumps(frame, separators=(",", ":"))
                    sig = self.service.federation.signing_key.sign(body.encode())
                    await ws.send(json.dumps({"t": "b", "body": body, "sig": b64(sig)}))
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader

    async def _read(self, ws: ClientConnection) -> None:
        conn = _ClientConn(ws)
        async for raw in ws:
            msg = json.loads(raw)
            kind = msg.get("t")
            if kind == "a":
                self.acknowledged(msg.get("k", ()))
            elif kind == "r":
                log.warning("%s refused %s: %s", self.party, msg.get("k"), msg.get("problem"))
                self.acknowledged([msg["k"]])
            elif kind == "c?":
                await self.service._answer_consent(self.party, msg, conn)


class _ClientConn:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send_json(self, data: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(data, separators=(",", ":")))


class _Subscriber:
    def __init__(self, vis: Visibility, size: int) -> None:
        self.vis = vis
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(size)
        self.overflowed = False


class LinkService:
    """The link on one node. All methods run on the node's event loop unless they say not."""

    def __init__(self, federation: Federation, options: LinkOptions | None = None) -> None:
        self.federation = federation
        self.node = federation.node
        self.party: str = self.node.party
        self.options = options or LinkOptions()
        self.under = self.options.under or self._default_under()
        # Where this node's own tracks go: every other party of the instruments it routes under.
        self.finals = sorted(
            {p for iid in self.under for p in self.node.registry.instruments[iid].parties}
            - {self.party}
        )
        self.stats = LinkStats(self.options.stats_window)
        self._streams: dict[str, _PeerStream] = {}
        self._upstream: dict[str, Conn] = {}
        self._decisions: dict[tuple[str, str, str, str, frozenset[str]], _Cached] = {}
        self._own: dict[str, TrackUpdate] = {}  # this node's tracks: their latest update
        self._next_seq: dict[str, int] = {}
        self._committed_seq: dict[str, int] = {}
        self._held: dict[str, dict[int, tuple[TrackUpdate, dict[str, Any] | None, Any]]] = {}
        self._chains: dict[str, asyncio.Task[None]] = {}
        self._tracks: dict[str, _TrackState] = {}
        self._subs: set[_Subscriber] = set()
        self._batch: list[_Accepted] = []
        self._acts: list[dict[str, Any]] = []
        self._cursors: dict[str, int] = {}
        self._dup_acks: dict[str, list[tuple[str, int]]] = {}
        self._consents: dict[int, asyncio.Future[bool]] = {}
        self._consent_ids = 0
        self.consents_asked = 0
        self.consents_granted = 0
        self._next_pos = 1
        self.committed_pos = 0
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self.tak: TakServer | None = None
        self._tak_user: User | None = None
        self._tak_visibility: Visibility | None = None  # what TAK clients may see
        self._labels: dict[str, tuple[dict[str, Any], SecurityLabel]] = {}

    def _default_under(self) -> tuple[str, ...]:
        reg = self.node.registry
        return tuple(
            sorted(
                iid
                for iid, inst in reg.instruments.items()
                if inst.kind == InstrumentKind.LINK and self.party in inst.parties
            )
        )

    # -- lifecycle

    async def start(self) -> None:
        peers = [p.party for p in self.federation.peers()]

        def load() -> tuple[int, dict[str, int], dict[str, int], list[JournalEntry]]:
            with self.node.store.read() as s:
                j = LinkJournal(s)
                last, seqs, cursors = j.last_pos(), j.next_seqs(), j.cursors()
                # From the oldest position a peer has not acknowledged, or enough of the tail to
                # give late subscribers the state of the tracks still in flight.
                low = min([*(cursors.get(p, 0) for p in peers), max(0, last - 50_000)])
                tail = j.after(low, limit=10_000_000)
            return last, seqs, cursors, tail

        last, seqs, cursors, tail = await asyncio.to_thread(load)
        self._next_pos = last + 1
        self.committed_pos = last
        self._next_seq = dict(seqs)
        self._committed_seq = dict(seqs)
        self._cursors = dict(cursors)
        for e in tail:
            self._track_state(e)
            # Re-send what a peer had not acknowledged when the node stopped.
            for hop in e.forward:
                if e.pos > cursors.get(hop, 0):
                    stream = self._stream(hop)
                    stream.acked_pos = cursors.get(hop, 0)
                    stream.send(e.pos, self._frame_entry(e, e.forward[hop]))
        self._writer = asyncio.create_task(self._write_loop())
        if self.options.tak_port is not None:
            await self._start_tak()

    async def _start_tak(self) -> None:
        opts = self.options
        if not opts.tak_user or not opts.tak_classification:
            raise InputError("a TAK port needs a TAK user and a classification for its tracks")
        user = await asyncio.to_thread(self.node.find_user, opts.tak_user)
        if user is None or not user.active:
            raise InputError(f"no active user {opts.tak_user!r} for the TAK port")
        _require(user, *ITEM_ROLES)
        level = self.node.level(opts.tak_classification)
        label = SecurityLabel(
            originator=self.party,
            policy=self.node.scheme.id,
            classification=level.id,
            releasable_to=frozenset(self.finals),
            topics=frozenset({"dprk-missile"}),
        )
        self._tak_user = user
        self._tak_visibility = self.node.visibility(user)
        self.tak = TakServer(
            ingest=self._tak_ingest,
            originator=self.party,
            label=label,
            host=opts.tak_host,
            port=opts.tak_port or 0,
        )
        await self.tak.start()
        log.warning("TAK (CoT over TCP) on %s:%s as %s", opts.tak_host, self.tak.port, user.name)

    async def _tak_ingest(self, update: TrackUpdate) -> None:
        await self.offer(self._tak_user, to_wire(update))

    async def stop(self) -> None:
        if self.tak is not None:
            await self.tak.stop()
        tasks = [s.task for s in self._streams.values() if s.task is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            # What was accepted but not yet written is written now (and acknowledged).
            batch, self._batch = self._batch, []
            acts, self._acts = self._acts, []
            if batch or acts:
                await asyncio.to_thread(self._write, batch, acts, [], self.node.now())
                self._committed(batch, {})
        for sub in list(self._subs):
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(None)

    def _stream(self, party: str) -> _PeerStream:
        stream = self._streams.get(party)
        if stream is None:
            stream = self._streams[party] = _PeerStream(self, party)
            stream.task = asyncio.create_task(stream.run())
        return stream

    def _handshake(self, party: str) -> tuple[str, dict[str, str]]:
        peer = self.federation.peer(party)
        if peer is None:
            raise InputError(f"{party} is not a peer of this node")
        base = peer.url.rstrip("/")
        url = "ws" + base[len("http") :] + LINK_PATH if base.startswith("http") else base
        request = httpx.Request("GET", url)
        sign_request(request, b"", party=self.party, key=self.federation.signing_key)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        return url, headers

    # -- intake

    def _label_of(self, data: Any) -> SecurityLabel:
        """The label ``data`` describes; the one of the last update that had the same."""
        key = str(data.get("originator", ""))
        last = self._labels.get(key)
        if last is not None and last[0] == data:
            return last[1]
        label = SecurityLabel.from_dict(data)
        self._labels[key] = (dict(data), label)
        return label

    def offer(self, actor: User | None, data: dict[str, Any]) -> asyncio.Future[int]:
        """Accept one update from this node's own producers, in the order offered.

        ``data`` is the wire form, plus an optional ``sensor`` object kept on this node only.
        The future gives the journal position once the update is durable, or the refusal.
        """
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        try:
            if actor is not None:
                _require(actor, *ITEM_ROLES)
            data = dict(data)
            sensor = data.pop("sensor", None)
            if sensor is not None and not isinstance(sensor, dict):
                raise InvalidTrackError("'sensor' must be an object")
            update = from_wire(data, self._label_of)
            if update.originator != self.party:
                raise ForbiddenError(
                    f"this node ingests {self.party}'s tracks only, not {update.originator}'s"
                )
        except GsomiaError as e:
            future.set_exception(e)
            return future
        # The validated wire form is kept as it came: from_wire refused anything beyond it.
        self._offer(update, None, None, {"sensor": sensor, "future": future, "wire": data})
        return future

    async def ingest(self, actor: User | None, data: dict[str, Any]) -> int:
        """:meth:`offer`, awaited: the journal position of the durable update."""
        return await self.offer(actor, data)

    def receive(self, sender: str, frame: list[dict[str, Any]], conn: Conn) -> None:
        """Entries of a verified frame from peer ``sender``."""
        self._upstream[sender] = conn
        for wire in frame:
            try:
                update = from_wire(wire["u"], self._label_of)
            except (GsomiaError, KeyError, TypeError) as e:
                key = _key_of(wire)
                self._refuse(sender, key, e)
                continue
            self._offer(update, sender, wire, {})

    def attach(self, sender: str, conn: Conn) -> None:
        self._upstream[sender] = conn

    def detach(self, sender: str, conn: Conn) -> None:
        if self._upstream.get(sender) is conn:
            del self._upstream[sender]

    def _refuse(self, sender: str, key: tuple[str, int] | None, e: BaseException) -> None:
        problem = frame_problem(e)
        log.warning("refused an update from %s: %s", sender, e)
        self._acts.append(
            {
                "action": "link-refusal",
                "detail": f"from {sender}: {e}",
                "evidence": {
                    "sender": sender,
                    "key": list(key) if key else None,
                    "code": problem["code"],
                },
            }
        )
        conn = self._upstream.get(sender)
        if conn is not None and key is not None:
            self._spawn(conn.send_json({"t": "r", "k": list(key), "problem": problem}))
        self._wake.set()

    def _offer(
        self,
        update: TrackUpdate,
        sender: str | None,
        wire: dict[str, Any] | None,
        local: dict[str, Any],
    ) -> None:
        track = update.track_id
        expected = self._next_seq.get(track, 0)
        if update.seq < expected:
            # A duplicate: acknowledge again once (or since) the first copy is durable.
            if sender is not None and update.seq < self._committed_seq.get(track, 0):
                self._dup_acks.setdefault(sender, []).append((track, update.seq))
                self._wake.set()
            elif sender is None and local.get("future") is not None:
                local["future"].set_exception(
                    InputError(f"track {track} already has update {update.seq}")
                )
            return
        if update.seq > expected:
            held = self._held.setdefault(track, {})
            if len(held) >= HOLD_MAX:
                error = InvalidTrackError(
                    f"track {track}: update {update.seq} is too far ahead of {expected}"
                )
                if sender is None:
                    local["future"].set_exception(error)
                else:
                    self._refuse(sender, (track, update.seq), error)
                return
            held[update.seq] = (update, wire, (sender, local))
            if sender is None:
                # A producer of this node's own that skipped a number is told, not kept waiting:
                # a peer's gap fills when it re-sends, but nothing re-sends for a producer.
                asyncio.get_running_loop().call_later(
                    self.options.gap_timeout, self._gap_expired, track, update.seq
                )
            return
        self._next_seq[track] = expected + 1
        self._process(update, sender, wire, local)
        waiting = self._held.get(track)
        while waiting and self._next_seq[track] in waiting:
            nxt = self._next_seq[track]
            u, w, (snd, loc) = waiting.pop(nxt)
            self._next_seq[track] = nxt + 1
            self._process(u, snd, w, loc)
        if waiting is not None and not waiting:
            del self._held[track]

    def _gap_expired(self, track: str, seq: int) -> None:
        held = self._held.get(track)
        if not held or seq not in held:
            return  # the gap filled in time
        _, _, (_, local) = held.pop(seq)
        future = local.get("future")
        if future is not None and not future.done():
            future.set_exception(
                InvalidTrackError(
                    f"track {track}: update {seq} waited {self.options.gap_timeout:g} s for "
                    f"update {self._next_seq.get(track, 0)}, which never came"
                )
            )

    def _process(
        self,
        update: TrackUpdate,
        sender: str | None,
        wire: dict[str, Any] | None,
        local: dict[str, Any],
    ) -> None:
        """Route an update now; accept it now, or after its track's earlier updates."""
        prev = self._chains.get(update.track_id)
        if prev is not None and prev.done():
            prev = None
        try:
            outcome = self._route(update, sender, wire, local)
        except GsomiaError as e:
            self._fail(update, sender, local, e)
            return
        if prev is None and not asyncio.iscoroutine(outcome):
            outcome()
            return
        # A consent round trip is under way for this track (or starts now): the question goes
        # out at once, so round trips overlap, but updates are accepted in their order.
        self._chains[update.track_id] = asyncio.create_task(self._in_turn(prev, outcome))

    async def _in_turn(self, prev: asyncio.Task[None] | None, outcome: Any) -> None:
        finish = await outcome if asyncio.iscoroutine(outcome) else outcome
        if prev is not None:
            with contextlib.suppress(Exception):
                await prev
        finish()

    def _fail(
        self, update: TrackUpdate, sender: str | None, local: dict[str, Any], e: GsomiaError
    ) -> None:
        # The sequence number is used up either way: the update is refused, not lost.
        self._committed_seq[update.track_id] = update.seq + 1
        if sender is None:
            future = local.get("future")
            if future is not None and not future.done():
                future.set_exception(e)
        else:
            self._refuse(sender, (update.track_id, update.seq), e)

    # -- decisions

    def _decision(
        self,
        update: TrackUpdate,
        holder: str,
        recipient: str,
        under: str,
        consents: frozenset[str],
    ) -> Decision:
        key = (update.track_id, holder, recipient, under, consents)
        now = self.node.now()
        cached = self._decisions.get(key)
        if cached is not None and cached.label == update.label and now.timestamp() < cached.until:
            return cached.decision
        request = ReleaseRequest(
            label=update.label,
            holder=holder,
            recipient=recipient,
            consents=consents,
            received_under=None if holder == update.originator else under,
            under=under,
        )
        decision = decide(self.node.registry, request, now)
        decided = decision.to_dict()
        self._decisions[key] = _Cached(update.label, holds_until(self.node.registry, now), decision)
        self._acts.append(
            {
                "action": "link-decision",
                "detail": (
                    f"track {update.track_id}: {holder} → {recipient} under {under}: "
                    + ("allowed" if decision.allowed else "refused")
                ),
                "evidence": {
                    "track_id": update.track_id,
                    "seq": update.seq,
                    "decision": decided,
                    "decision_digest": digest(decided),
                },
            }
        )
        return decision

    def _route(
        self,
        update: TrackUpdate,
        sender: str | None,
        wire: dict[str, Any] | None,
        local: dict[str, Any],
    ) -> Any:
        """Decide; what accepts the update (forwards it and queues it for the journal), or a
        coroutine that asks for consent first and then gives it."""
        now_ns = time.time_ns()
        if sender is None:
            self._own[update.track_id] = update
            finals, consents = self.finals, frozenset[str]()
            hops: list[dict[str, Any]] = [{"p": self.party, "in": now_ns}]
            instrument = ""
            here = update.label
        else:
            assert wire is not None
            finals = [str(p) for p in wire.get("to", ())]
            consents = frozenset(str(p) for p in wire.get("c", ()))
            instrument = str(wire.get("i", ""))
            if self.party not in finals:
                raise InvalidTrackError(f"update not addressed to {self.party}")
            if instrument not in self.node.registry.instruments:
                raise InvalidTrackError(f"unknown instrument {instrument!r}")
            mine = self._decision(update, sender, self.party, instrument, consents)
            if not mine.allowed or mine.route != (sender, self.party):
                first = mine.failed[0] if mine.failed else None
                raise ForbiddenError(
                    f"{sender} → {self.party} refused: "
                    + (f"{first.rule}: {first.detail}" if first else f"route {mine.route}")
                )
            here = mine.recipient_label or update.label
            hops = [*wire.get("h", ()), {"p": self.party, "in": now_ns}]
        forward: dict[str, list[str]] = {}
        asks: list[tuple[str, str]] = []
        for final in finals:
            if final == self.party:
                continue
            chosen = self._onward(update, final, consents, instrument)
            if chosen is None:
                if sender is not None and update.originator not in consents:
                    asks.append((final, instrument))
                continue
            decision, under = chosen
            forward.setdefault(decision.route[1], []).append(final)
            if not instrument:
                instrument = under
        if wire is not None:
            local = {**local, "wire": wire["u"]}
        if asks and sender is not None:
            return self._with_consent(update, sender, hops, here, forward, asks, consents, local)
        if sender is None and not self._per_transfer(instrument):
            # The originator routing its own track through a hub is its consent to the hub's
            # forwarding (as for shares); where the hub needs consent to each transfer (TISA
            # para 4), the hub asks for it, update by update.
            consents = frozenset({self.party})
        return functools.partial(
            self._accept, update, sender, instrument, hops, here, forward, consents, local
        )

    def _per_transfer(self, instrument: str) -> bool:
        inst = self.node.registry.instruments.get(instrument)
        return bool(inst is not None and inst.hub is not None and inst.hub.consent_to_forward)

    def _onward(
        self, update: TrackUpdate, final: str, consents: frozenset[str], under: str
    ) -> tuple[Decision, str] | None:
        """The first decision that lets ``final`` have the update, and its instrument."""
        candidates = (under,) if under else self.under
        for iid in candidates:
            decision = self._decision(update, self.party, final, iid, consents)
            if decision.allowed and self.federation.peer(decision.route[1]) is not None:
                return decision, iid
        return None

    async def _with_consent(
        self,
        update: TrackUpdate,
        sender: str,
        hops: list[dict[str, Any]],
        here: SecurityLabel,
        forward: dict[str, list[str]],
        asks: list[tuple[str, str]],
        consents: frozenset[str],
        local: dict[str, Any],
    ) -> Callable[[], None]:
        originator = update.originator
        conn = self._upstream.get(originator)
        granted = False
        if conn is not None:
            self._consent_ids += 1
            self.consents_asked += 1
            ident = self._consent_ids
            future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._consents[ident] = future
            await conn.send_json(
                {
                    "t": "c?",
                    "id": ident,
                    "track": update.track_id,
                    "seq": update.seq,
                    "to": [f for f, _ in asks],
                    "i": asks[0][1],
                }
            )
            try:
                granted = await asyncio.wait_for(future, timeout=self.options.consent_timeout)
            except TimeoutError:
                granted = False
            finally:
                self._consents.pop(ident, None)
        instrument = asks[0][1]
        if granted:
            self.consents_granted += 1
            with_consent = consents | {originator}
            for final, under in asks:
                chosen = self._onward(update, final, with_consent, under)
                if chosen is not None:
                    forward.setdefault(chosen[0].route[1], []).append(final)
            consents = with_consent
        else:
            # Evidence of what was withheld and why: the originator refused, or did not answer.
            finals = [f for f, _ in asks]
            self._acts.append(
                {
                    "action": "link-consent-refused",
                    "detail": (
                        f"track {update.track_id} update {update.seq}: not forwarded to "
                        f"{', '.join(finals)} without {originator}'s consent under {instrument}"
                    ),
                    "evidence": {
                        "track_id": update.track_id,
                        "seq": update.seq,
                        "to": finals,
                        "instrument": instrument,
                        "asked": conn is not None,
                    },
                }
            )
        return functools.partial(
            self._accept, update, sender, instrument, hops, here, forward, consents, local
        )

    def consent_answer(self, ident: int, granted: bool) -> None:
        future = self._consents.get(ident)
        if future is not None and not future.done():
            future.set_result(granted)

    async def _answer_consent(self, party: str, msg: dict[str, Any], conn: Conn) -> None:
        """As originator: consent to the hub's forwarding if this node would release it."""
        # The track's latest update as taken in here, committed or not: the hub may ask
        # before this node's journal has written it.
        probe = self._own.get(str(msg.get("track")))
        granted = probe is not None and all(
            self._decision(probe, self.party, str(f), str(msg.get("i")), frozenset()).allowed
            for f in msg.get("to", ())
        )
        await conn.send_json({"t": "c", "id": msg.get("id"), "granted": granted})

    # -- journal and publication

    def _accept(
        self,
        update: TrackUpdate,
        sender: str | None,
        instrument: str,
        hops: list[dict[str, Any]],
        here: SecurityLabel,
        forward: dict[str, list[str]],
        consents: frozenset[str],
        local: dict[str, Any],
    ) -> None:
        level_rank = (
            self.node.scheme.level(here.classification).rank
            if here.policy == self.node.scheme.id
            else 1_000_000  # not in this node's own scheme: nobody here is cleared for it
        )
        pos = self._next_pos
        self._next_pos += 1
        entry = JournalEntry(
            pos=pos,
            track_id=update.track_id,
            seq=update.seq,
            originator=update.originator,
            sender=sender or self.party,
            instrument=instrument,
            phase=update.phase.value,
            label=here.to_dict(),
            level_rank=level_rank,
            topics=here.topics,
            compartments=here.compartments,
            body=local.get("wire") or to_wire(update),
            sensor=local.get("sensor"),
            hops=hops,
            forward=forward,
            consents=consents,
            received_at=datetime.now(UTC),
        )
        for hop, finals in forward.items():
            self._stream(hop).send(pos, self._frame_entry(entry, finals))
        self._batch.append(_Accepted(entry, sender, local.get("future")))
        self._wake.set()

    def _frame_entry(self, e: JournalEntry, finals: list[str]) -> dict[str, Any]:
        return {
            "u": e.body,
            "to": list(finals),
            "i": e.instrument,
            "c": sorted(e.consents),
            "h": [dict(h) for h in e.hops],
        }

    def _cursor_moved(self, peer: str, pos: int) -> None:
        if pos > self._cursors.get(peer, 0):
            self._cursors[peer] = pos

    async def _write_loop(self) -> None:
        written_cursors: dict[str, int] = dict(self._cursors)
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._batch = self._batch, []
            acts, self._acts = self._acts, []
            cursors = [(p, c) for p, c in self._cursors.items() if c > written_cursors.get(p, 0)]
            dups, self._dup_acks = self._dup_acks, {}
            if batch or acts or cursors:
                at = self.node.now()
                while True:
                    try:
                        await asyncio.to_thread(self._write, batch, acts, cursors, at)
                        break
                    except Exception:
                        log.exception("link journal write failed; retrying")
                        await asyncio.sleep(0.2)
                written_cursors.update(cursors)
            self._committed(batch, dups)

    def _write(
        self,
        batch: list[_Accepted],
        acts: list[dict[str, Any]],
        cursors: list[tuple[str, int]],
        at: datetime,
    ) -> None:
        with self.node.store.write() as s:
            LinkJournal(s).append([a.entry for a in batch])
            if cursors:
                LinkJournal(s).set_cursors(cursors)
            register = ActLog(s)  # one register insert and one ledger append for the batch
            for act in acts:
                register.record(
                    item_id=None,
                    user_id=None,
                    action=act["action"],
                    at=at,
                    detail=act["detail"],
                    evidence=act["evidence"],
                )
            register.flush()

    def _committed(self, batch: list[_Accepted], dups: dict[str, list[tuple[str, int]]]) -> None:
        acks: dict[str, list[tuple[str, int]]] = dups
        now_ns = time.time_ns()
        for a in batch:
            e = a.entry
            self.committed_pos = max(self.committed_pos, e.pos)
            self._committed_seq[e.track_id] = max(self._committed_seq.get(e.track_id, 0), e.seq + 1)
            self._track_state(e)
            if a.upstream is not None:
                acks.setdefault(a.upstream, []).append((e.track_id, e.seq))
            if a.future is not None and not a.future.done():
                a.future.set_result(e.pos)
            self._record_latency(e, now_ns)
            event = _event(e, "update", now_ns)
            self._publish(event, e.level_rank, e.topics, e.compartments)
            tak_vis = self._tak_visibility
            if (
                self.tak is not None
                and tak_vis is not None
                and visible_to(tak_vis, e.level_rank, e.topics, e.compartments)
            ):
                self._spawn(self.tak.publish(from_wire({**e.body, "label": e.label})))
        for sender, keys in acks.items():
            conn = self._upstream.get(sender)
            if conn is not None and keys:
                self._spawn(conn.send_json({"t": "a", "k": [list(k) for k in keys]}))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        task.add_done_callback(_quiet)

    def _record_latency(self, e: JournalEntry, now_ns: int) -> None:
        hops = e.hops
        if not hops:
            return
        route = tuple(str(h["p"]) for h in hops)
        gaps = tuple((hops[i + 1]["in"] - hops[i]["in"]) / 1e6 for i in range(len(hops) - 1))
        self.stats.add(
            _Latency(route, gaps, (now_ns - hops[-1]["in"]) / 1e6, (now_ns - hops[0]["in"]) / 1e6)
        )

    def _track_state(self, e: JournalEntry) -> _TrackState:
        state = self._tracks.get(e.track_id)
        body = e.body
        if state is None:
            state = self._tracks[e.track_id] = _TrackState(
                originator=e.originator,
                label=e.label,
                level_rank=e.level_rank,
                topics=e.topics,
                compartments=e.compartments,
                launch=body["launch"],
                samples=[],
                impact=None,
                phase=e.phase,
                seq=e.seq,
                pos=e.pos,
            )
        state.label, state.level_rank = e.label, e.level_rank
        state.topics, state.compartments = e.topics, e.compartments
        state.samples.extend(body.get("trajectory") or ())
        state.impact = body.get("impact")
        state.phase, state.seq, state.pos = e.phase, e.seq, e.pos
        return state

    def _publish(
        self, event: dict[str, Any], rank: int, topics: frozenset[str], comps: frozenset[str]
    ) -> None:
        for sub in list(self._subs):
            if sub.overflowed or not visible_to(sub.vis, rank, topics, comps):
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                # A subscriber that cannot keep up is cut off, never silently skipped: it
                # reconnects with its last position and the journal fills the gap.
                sub.overflowed = True
                self._subs.discard(sub)

    # -- subscribers

    def active_tracks(self, user: User) -> list[dict[str, Any]]:
        vis = self.node.visibility(user)
        return [
            _state_event(track, st, self.committed_pos)
            for track, st in sorted(self._tracks.items())
            if st.phase not in _DONE and visible_to(vis, st.level_rank, st.topics, st.compartments)
        ]

    async def subscribe(
        self, user: User, after: int | None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Events for ``user``: the active tracks' state (or what follows ``after``), then live.

        Ends after an ``overflow`` event if the subscriber falls too far behind.
        """
        vis = self.node.visibility(user)
        sub = _Subscriber(vis, self.options.subscriber_queue)
        self._subs.add(sub)
        try:
            upto = self.committed_pos
            if after is None:
                for event in self.active_tracks(user):
                    yield event
            else:
                pos = after
                while pos < upto:
                    rows = await asyncio.to_thread(self._read_after, pos)
                    if not rows:
                        break
                    for e in rows:
                        if e.pos > upto:
                            break
                        pos = e.pos
                        if visible_to(vis, e.level_rank, e.topics, e.compartments):
                            yield _event(e, "update", None)
                    else:
                        continue
                    break
            while True:
                if sub.overflowed and sub.queue.empty():
                    yield {"kind": "overflow", "pos": upto}
                    return
                live = await sub.queue.get()
                if live is None:
                    return
                if live["pos"] <= upto:
                    continue
                upto = live["pos"]
                yield live
        finally:
            self._subs.discard(sub)

    def _read_after(self, pos: int) -> list[JournalEntry]:
        with self.node.store.read() as s:
            return LinkJournal(s).after(pos, limit=2_000)

    def track_history(self, user: User, track_id: str) -> list[dict[str, Any]]:
        """Every update of a track this node holds that ``user`` may see (not on the loop)."""
        vis = self.node.visibility(user)
        with self.node.store.read() as s:
            rows = LinkJournal(s).track(track_id)
        return [
            _event(e, "update", None)
            for e in rows
            if visible_to(vis, e.level_rank, e.topics, e.compartments)
        ]

    def peer_status(self) -> list[dict[str, Any]]:
        return [
            {
                "party": p,
                "connected": s.connected.is_set(),
                "unacknowledged": len(s.unacked),
                "acknowledged_pos": s.acked_pos,
            }
            for p, s in sorted(self._streams.items())
        ]


def _key_of(wire: Any) -> tuple[str, int] | None:
    try:
        return str(wire["u"]["track_id"]), int(wire["u"]["seq"])
    except (KeyError, TypeError, ValueError):
        return None


def _quiet(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.info("link send failed: %s", task.exception())


def _event(e: JournalEntry, kind: str, published_ns: int | None) -> dict[str, Any]:
    body = e.body
    return {
        "kind": kind,
        "pos": e.pos,
        "track_id": e.track_id,
        "seq": e.seq,
        "originator": e.originator,
        "phase": e.phase,
        "label": e.label,
        "launch": body["launch"],
        "trajectory": body.get("trajectory") or [],
        "impact": body.get("impact"),
        "hops": e.hops,
        "published_ns": published_ns,
    }


def _state_event(track: str, st: _TrackState, pos: int) -> dict[str, Any]:
    return {
        "kind": "state",
        "pos": pos,
        "track_id": track,
        "seq": st.seq,
        "originator": st.originator,
        "phase": st.phase,
        "label": st.label,
        "launch": st.launch,
        "trajectory": list(st.samples),
        "impact": st.impact,
        "hops": [],
        "published_ns": None,
    }


def frame_problem(e: BaseException) -> dict[str, Any]:
    """The problem in a link frame refusing an update (``{"t": "r"}``): its code and detail."""
    return {"code": getattr(e, "code", "invalid-track"), "detail": str(e)}
