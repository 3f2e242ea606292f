"""A TAK-style CoT server for the missile-warning link: TAK clients feed it and watch it.

TAK clients (ATAK, WinTAK, iTAK, PyTAK tools) connect over plain TCP, as to a TAK server's
streaming port, and exchange CoT XML events (:mod:`gsomia.link.cot`) both ways:

- **In.** Each client's bytes are cut into events (:func:`~gsomia.link.cot.split_stream`). A
  missile track event goes through the server's one
  :class:`~gsomia.link.cot.CotTrackAssembler`, as the server's ``originator``'s track under its
  ``label``, and the resulting :class:`~gsomia.link.tracks.TrackUpdate` is awaited into
  ``ingest``, one at a time per client (so TCP pushes back on a client faster than the link). A
  refused event (malformed, sensor metadata, out of order, ...) is logged and skipped and never
  reaches ``ingest``; the connection stays up. An update ``ingest`` raises on is logged and
  retracted from the assembler, so the track's next event reuses its sequence number (no gap).
  A ping (``t-x-c-t``) is answered with a pong, which keeps the client's receive timeout from
  firing; other TAK traffic (users' own positions, chat, deletes, PyTAK's hello) is ignored. A
  stream that cannot be cut into events (something over 1 MiB) closes that connection.
- **Out.** :meth:`TakServer.publish` sends an update's CoT event to every connected client. The
  last event of each recent track is kept, and a client that connects is sent those first, so a
  late watcher sees the current picture.

A slow client does not hold up the others or the link: each client has its own bounded queue,
written by its own task. When the queue is full, the oldest queued event *of a track that has a
newer event queued* is dropped (a map shows the latest position; the dropped one was already
superseded), so a slow watcher skips intermediate positions but never a track's latest state,
impact included. Only if every queued event is the latest of its track (more tracks than the
queue holds) is the client disconnected, with a warning; a TAK client reconnects by itself, and
then gets the current picture.

No TLS and no client authentication: bind it to loopback or a protected network, as the
default does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gsomia.core.errors import CotStreamError, GsomiaError, InputError
from gsomia.core.labels import SecurityLabel
from gsomia.link.cot import (
    CotKind,
    CotTrackAssembler,
    classify,
    pong_event,
    split_stream,
    update_to_cot,
)
from gsomia.link.tracks import TrackUpdate

__all__ = ["TakServer"]

log = logging.getLogger(__name__)

_READ_BYTES = 64 * 1024
_CONTROL = ""  # the queue key of a pong: no track has an empty id
_PICTURE_TRACKS = 1024  # the latest event of this many tracks is kept for new clients


@dataclass(eq=False)
class _Client:
    peer: str
    writer: asyncio.StreamWriter
    queue: deque[tuple[str, bytes]] = field(default_factory=deque)
    queued: Counter[str] = field(default_factory=Counter)  # events queued per track
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    dropping: bool = False  # the warning for this overflow episode was logged
    closed: bool = False
    handler: asyncio.Task[None] | None = None  # the task serving the connection


class TakServer:
    """A CoT-over-TCP endpoint of one node: ingest from TAK clients, publish to them."""

    def __init__(
        self,
        *,
        ingest: Callable[[TrackUpdate], Awaitable[None]],
        originator: str,
        label: SecurityLabel,
        host: str = "127.0.0.1",
        port: int = 0,
        queue_size: int = 1024,
        stale_seconds: float = 30.0,
    ) -> None:
        if label.originator != originator:
            raise InputError(
                f"the TAK server's label is {label.originator}'s, not its originator {originator}'s"
            )
        if queue_size < 1:
            raise InputError("queue_size must be at least 1")
        self._ingest = ingest
        self._originator = originator
        self._label = label
        self._host = host
        self._port = port
        self._queue_size = queue_size
        self._stale_seconds = stale_seconds
        self._assembler = CotTrackAssembler()
        self._server: asyncio.Server | None = None
        self._clients: set[_Client] = set()
        self._picture: OrderedDict[str, bytes] = OrderedDict()
        self._count_changed = asyncio.Condition()

    # -- life -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start accepting TAK clients (``port`` 0 picks a free port)."""
        if self._server is not None:
            raise RuntimeError("the TAK server is already started")
        self._server = await asyncio.start_server(self._handle, self._host, self._port)
        log.info("TAK server for %s listening on %s:%d", self._originator, self._host, self.port)

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the TAK server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def client_count(self) -> int:
        return len(self._clients)

    async def wait_for_clients(self, count: int) -> None:
        """Return once exactly ``count`` clients are connected (wrap it in a timeout)."""
        async with self._count_changed:
            await self._count_changed.wait_for(lambda: len(self._clients) == count)

    async def stop(self) -> None:
        """Stop accepting, disconnect every client and wait for their tasks to end."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        handlers = [c.handler for c in self._clients if c.handler is not None]
        for client in list(self._clients):
            self._drop(client)
        # A handler ends by itself once its connection is gone, after the update it may be
        # ingesting; one stuck in ingest is cancelled after a grace period.
        if handlers:
            _, pending = await asyncio.wait(handlers, timeout=5.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    # -- out ------------------------------------------------------------------------------

    async def publish(self, update: TrackUpdate) -> None:
        """Send ``update``'s CoT event to every connected client; never waits on one."""
        data = update_to_cot(update, stale_seconds=self._stale_seconds)
        self._picture[update.track_id] = data
        self._picture.move_to_end(update.track_id)
        while len(self._picture) > _PICTURE_TRACKS:
            self._picture.popitem(last=False)
        for client in list(self._clients):
            self._enqueue(client, update.track_id, data)

    def _enqueue(self, client: _Client, track: str, data: bytes) -> None:
        if client.closed:
            return
        if len(client.queue) >= self._queue_size:
            for i, (queued, _) in enumerate(client.queue):
                # superseded by a newer event of its track, queued or this one
                if queued == track or client.queued[queued] > 1:
                    del client.queue[i]
                    client.queued[queued] -= 1
                    break
            else:
                log.warning(
                    "TAK client %s is too slow: %d events queued, each the latest of its "
                    "track; disconnecting it",
                    client.peer,
                    len(client.queue),
                )
                self._drop(client)
                return
            if not client.dropping:
                client.dropping = True
                log.warning(
                    "TAK client %s is slow: dropping superseded positions from its queue",
                    client.peer,
                )
        client.queue.append((track, data))
        client.queued[track] += 1
        client.ready.set()

    async def _send(self, client: _Client) -> None:
        while True:
            if not client.queue:
                client.dropping = False
                client.ready.clear()
                await client.ready.wait()
                continue
            track, data = client.queue.popleft()
            client.queued[track] -= 1
            if not client.queued[track]:
                del client.queued[track]
            try:
                client.writer.write(data)
                await client.writer.drain()
            except (ConnectionError, RuntimeError) as e:  # RuntimeError: written after close
                log.info("TAK client %s: write failed: %s", client.peer, e)
                self._drop(client)
                return

    def _drop(self, client: _Client) -> None:
        """Disconnect ``client`` now; its handler then ends by itself, after any ingest."""
        client.closed = True
        self._clients.discard(client)
        client.writer.transport.abort()

    # -- in -------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        client = _Client(peer, writer, handler=asyncio.current_task())
        # The current picture first, before anything new (as much of it as the queue holds).
        for track, data in list(self._picture.items())[-self._queue_size :]:
            self._enqueue(client, track, data)
        self._clients.add(client)
        await self._notify()
        log.info("TAK client %s connected", peer)
        sender = asyncio.create_task(self._send(client))
        try:
            await self._receive(client, reader)
        finally:
            self._clients.discard(client)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            log.info("TAK client %s disconnected", peer)
            await asyncio.shield(self._notify())

    async def _notify(self) -> None:
        async with self._count_changed:
            self._count_changed.notify_all()

    async def _receive(self, client: _Client, reader: asyncio.StreamReader) -> None:
        buffer = b""
        while True:
            try:
                chunk = await reader.read(_READ_BYTES)
            except ConnectionError:
                return
            if not chunk:
                return
            try:
                events, buffer = split_stream(buffer + chunk)
            except CotStreamError as e:
                log.warning("TAK client %s: %s; closing the connection", client.peer, e.message)
                return
            for event in events:
                await self._take(client, event)

    async def _take(self, client: _Client, event: bytes) -> None:
        try:
            kind = classify(event)
            if kind is CotKind.PING:
                self._enqueue(client, _CONTROL, pong_event(datetime.now(UTC)))
                return
            if kind is CotKind.OTHER:
                return
            update = self._assembler.feed(event, originator=self._originator, label=self._label)
        except GsomiaError as e:
            log.warning("TAK client %s: event refused: %s [%s]", client.peer, e.message, e.code)
            return
        if self._assembler.last_stripped:
            log.debug(
                "TAK client %s: track %s: not carried: %s",
                client.peer,
                update.track_id,
                ", ".join(self._assembler.last_stripped),
            )
        try:
            await self._ingest(update)
        except GsomiaError as e:
            self._assembler.retract(update)  # the next event reuses its seq: no gap
            log.warning(
                "TAK client %s: track %s seq %d not taken by the link: %s [%s]",
                client.peer,
                update.track_id,
                update.seq,
                e.message,
                e.code,
            )
        except Exception:
            self._assembler.retract(update)
            log.exception(
                "TAK client %s: track %s seq %d: ingest failed",
                client.peer,
                update.track_id,
                update.seq,
            )
