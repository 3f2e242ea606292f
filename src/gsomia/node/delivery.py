"""The delivery worker: sends the outbox, with retries, and records what came back.

Entries are claimed with a lease (and ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several API
workers over one database never send the same entry at once). A crash mid-send leaves the lease
to expire and the entry is sent again: delivery is at least once, and the receiver's idempotency
by envelope id makes the effect exactly once.

What is due for one peer goes in batches: one request signature and one nonce per batch, one
transaction at each end, and an answer per envelope (``POST /federation/v1/envelope-batches``).
A peer has one batch in flight at a time (a thread claims nothing for a peer another thread is
sending to), so under load what queues up while a batch is on the wire goes in the next one,
and batches grow with the load instead of splitting it. An envelope too large for a batch goes
alone (``POST /federation/v1/envelopes``), and so does everything for a peer that does not know
batches (404 or 405 on the batch path).

- a receipt that verifies against the peer's pinned key, for that envelope: delivered.
- a 4xx other than 408 and 429 (for the envelope, or for the whole request): refused by the
  peer (its problem+json is kept); not retried.
- anything else (connection refused, timeouts, 5xx, a receipt that does not verify): retried
  with exponential backoff and jitter, until ``give_up_after`` has passed since it was queued.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.orm import Session

from gsomia.core.errors import EnvelopeError
from gsomia.crypto.envelope import verify_receipt
from gsomia.crypto.httpsig import sign_request
from gsomia.node.federation import (
    BATCH_ENDPOINT,
    ENDPOINT,
    MAX_BATCH_ENVELOPES,
    Federation,
    real_now,
)
from gsomia.store.federation import ActLog, Outbox, OutboxEntry

log = logging.getLogger(__name__)

NO_BATCHES_SECONDS = 300.0  # how long a peer that answered 404/405 to a batch is sent singly


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    batch: int = 64  # entries claimed at once, and envelopes per batch request at most
    batch_bytes: int = 256 * 1024  # body of a batch request at most (one larger envelope: alone)
    lease: timedelta = timedelta(seconds=10)
    base_backoff: float = 0.2  # seconds; doubled per attempt
    max_backoff: float = 30.0
    give_up_after: timedelta = timedelta(hours=24)
    idle_wait: float = 0.5  # longest sleep between scans when nothing is due (a wake cuts it)
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What became of one entry: exactly one of receipt, refusal (problem) or error (retry)."""

    entry: OutboxEntry
    receipt: dict[str, Any] | None = None
    problem: dict[str, Any] | None = None
    status: int = 0
    error: str | None = None


class DeliveryWorker:
    def __init__(
        self,
        federation: Federation,
        settings: DeliverySettings | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        threads: int = 2,
    ) -> None:
        # A peer has one batch in flight at a time, so threads beyond the number of peers only
        # wake up for nothing; two keep a slow peer from holding up the others.
        self.fed = federation
        self.settings = settings or DeliverySettings()
        self.client = httpx.Client(timeout=self.settings.timeout, transport=transport)
        self._stop = threading.Event()
        self._inflight: set[int] = set()
        self._busy: set[str] = set()  # peers a batch is being sent to
        self._lock = threading.Lock()
        self._scan_at = 0.0  # monotonic: when to claim whatever the news (0: at once)
        self._no_batches: dict[str, float] = {}  # peer -> monotonic time it said 404/405
        self._threads = [
            threading.Thread(target=self._loop, name=f"gsomia-delivery-{i}", daemon=True)
            for i in range(threads)
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        self.fed.wake.set()
        for t in self._threads:
            if t.is_alive():
                t.join(timeout=5)
        self.client.close()

    def _loop(self) -> None:
        claim = True  # at once on start: whatever was pending before a restart
        while not self._stop.is_set():
            if claim or self._news():
                try:
                    claim = self.run_once(force=claim) > 0  # more may be due: again at once
                except Exception:  # keep delivering whatever one batch did
                    log.exception("delivery batch failed")
                    claim = False
                    self._scan_at = time.monotonic() + self.settings.idle_wait
                if claim:
                    continue
            self.fed.wake.wait(max(0.0, self._scan_at - time.monotonic()))
            self.fed.wake.clear()  # the news is in fed.queued_peers(), not in the event

    def _news(self) -> bool:
        """Whether a claim may find something (no database read): the time for a scan has come,
        or a committed act queued something for a peer that no thread is sending to (a busy
        peer's thread claims again when its batch is done)."""
        if time.monotonic() >= self._scan_at:
            return True
        with self._lock:
            return bool(self.fed.queued_peers() - self._busy)

    def run_once(self, *, force: bool = True) -> int:
        """Claim and send what is due; the number of entries handled. Unless ``force``, only
        when there is news for a peer no thread is sending to, or a scan is due (another thread
        may have claimed the news since this one was woken).

        On PostgreSQL several processes may deliver, so claims are leases written to the
        database. On SQLite there is one process: its threads share an in-memory set of what is
        in flight, and a claim is a read (one commit fewer per delivery; a crash forgets the
        set, and everything pending is simply due again).
        """
        store = self.fed.node.store
        limit = max(1, min(self.settings.batch, MAX_BATCH_ENVELOPES))
        with self._lock:
            news = self.fed.queued_peers()  # before the claim: what it is sure to see
            if not force and not news - self._busy and time.monotonic() < self._scan_at:
                return 0
            if store.is_sqlite:
                with store.read() as s:
                    entries = Outbox(s).claim(
                        now=real_now(),
                        lease=None,
                        limit=limit,
                        skip_locked=False,
                        exclude=self._inflight,
                        busy=self._busy,
                    )
            else:
                with store.write() as s:
                    entries = Outbox(s).claim(
                        now=real_now(),
                        lease=self.settings.lease,
                        limit=limit,
                        skip_locked=True,
                        busy=self._busy,
                    )
            self.fed.forget_queued(news - self._busy)
            self._inflight.update(e.id for e in entries)
            self._busy.update(e.peer for e in entries)
            if not entries:
                self._scan_at = time.monotonic() + self._until_due()
        try:
            by_peer: dict[str, list[OutboxEntry]] = {}
            for entry in entries:
                by_peer.setdefault(entry.peer, []).append(entry)
            for party, group in by_peer.items():
                self._record(self._deliver_to(party, group))
        finally:
            with self._lock:
                self._inflight.difference_update(e.id for e in entries)
                self._busy.difference_update(e.peer for e in entries)
        return len(entries)

    def _until_due(self) -> float:
        """Seconds until the next scan: when the next pending entry falls due (a retry), at most
        ``idle_wait`` (what another process queued is seen by then)."""
        with self.fed.node.store.read() as s:
            due = Outbox(s).next_due()
        idle = self.settings.idle_wait
        if due is None:
            return idle
        wait = (due - real_now()).total_seconds()
        # Due now but not claimed: in flight, or for a peer another thread is sending to; that
        # thread claims again as soon as its batch is done.
        return min(idle, wait) if wait > 0 else idle

    # -- sending ------------------------------------------------------------------------------

    def _deliver_to(self, party: str, entries: list[OutboxEntry]) -> list[_Outcome]:
        peer = self.fed.peer(party)
        if peer is None:
            return [_Outcome(e, error=f"{party} is no longer a peer") for e in entries]
        said_no = self._no_batches.get(party)
        batches = said_no is None or time.monotonic() - said_no > NO_BATCHES_SECONDS
        outcomes: list[_Outcome] = []
        chunk: list[OutboxEntry] = []
        size = 0
        for entry in entries:
            if not batches or len(entry.body) > self.settings.batch_bytes:
                outcomes.append(self._send_one(peer.url, entry))
                continue
            if chunk and size + len(entry.body) > self.settings.batch_bytes:
                outcomes += self._send_batch(peer.url, party, chunk)
                chunk, size = [], 0
            chunk.append(entry)
            size += len(entry.body) + 1
        if chunk:
            outcomes += self._send_batch(peer.url, party, chunk)
        return outcomes

    def _post(self, url: str, body: bytes) -> httpx.Response:
        request = self.client.build_request(
            "POST", url, content=body, headers={"content-type": "application/json"}
        )
        sign_request(request, body, party=self.fed.party, key=self.fed.signing_key)
        return self.client.send(request)

    def _send_one(self, base: str, entry: OutboxEntry) -> _Outcome:
        """One envelope alone, to the single-envelope intake."""
        try:
            response = self._post(base + ENDPOINT, entry.body)
        except httpx.HTTPError as e:
            return _Outcome(entry, error=f"{type(e).__name__}: {e}")
        if response.status_code == 200:
            try:
                receipt = response.json()
            except ValueError as e:
                return _Outcome(entry, error=f"receipt does not verify: {e}")
            return self._checked(entry, receipt)
        problem = _problem(response)
        return self._refused_or_retried(entry, response.status_code, problem, response.text)

    def _send_batch(self, base: str, party: str, chunk: list[OutboxEntry]) -> list[_Outcome]:
        """Several envelopes in one signed request; an answer for each."""
        body = b"".join(
            (b'{"envelopes":[', b",".join(e.body for e in chunk), b"]}")
        )  # the stored bodies are JSON already: nothing to parse or encode again
        try:
            response = self._post(base + BATCH_ENDPOINT, body)
        except httpx.HTTPError as e:
            return [_Outcome(e_, error=f"{type(e).__name__}: {e}") for e_ in chunk]
        status = response.status_code
        if status in (404, 405):  # a peer without batches: one by one, and for a while
            self._no_batches[party] = time.monotonic()
            return [self._send_one(base, e) for e in chunk]
        if status == 413 and len(chunk) > 1:  # over the peer's body limit: halves
            half = len(chunk) // 2
            return self._send_batch(base, party, chunk[:half]) + self._send_batch(
                base, party, chunk[half:]
            )
        if status != 200:
            problem = _problem(response)
            return [self._refused_or_retried(e, status, problem, response.text) for e in chunk]
        try:
            answer = json.loads(response.content)
            results = answer["results"]
            if not isinstance(results, list) or len(results) != len(chunk):
                raise ValueError("not one result per envelope")
        except (ValueError, KeyError, TypeError) as e:
            return [_Outcome(e_, error=f"batch answer unusable: {e}") for e_ in chunk]
        outcomes = []
        for entry, result in zip(chunk, results, strict=True):
            if isinstance(result, dict) and "receipt" in result:
                outcomes.append(self._checked(entry, result["receipt"]))
                continue
            found = result.get("problem") if isinstance(result, dict) else None
            problem = found if isinstance(found, dict) else {"detail": str(result)[:200]}
            code = problem.get("status")
            outcomes.append(
                self._refused_or_retried(
                    entry, code if isinstance(code, int) else 500, problem, str(problem)[:200]
                )
            )
        return outcomes

    def _checked(self, entry: OutboxEntry, receipt: Any) -> _Outcome:
        """Delivered, if ``receipt`` is the peer's signature over this very envelope."""
        try:
            key = self.fed.pinned_signing_key(entry.peer)
            if key is None:
                raise EnvelopeError("the peer was removed")
            body = verify_receipt(receipt, key)
            if body.get("envelope_id") != entry.envelope_id:
                raise EnvelopeError("the receipt is for another envelope")
        except EnvelopeError as e:
            return _Outcome(entry, error=f"receipt does not verify: {e}")
        return _Outcome(entry, receipt=receipt)

    @staticmethod
    def _refused_or_retried(
        entry: OutboxEntry, status: int, problem: dict[str, Any], text: str
    ) -> _Outcome:
        if 400 <= status < 500 and status not in (408, 429):
            return _Outcome(entry, problem=problem, status=status)
        return _Outcome(entry, error=f"{status} {problem.get('detail', text[:200])}")

    # -- recording ----------------------------------------------------------------------------

    def _record(self, outcomes: Sequence[_Outcome]) -> None:
        """What came back, for all ``outcomes`` at once, in the node's group commit (with
        whatever share acts are being written: one commit for both)."""
        if not outcomes:
            return
        s_ = self.settings
        now = real_now()
        retried: list[tuple[OutboxEntry, str, float]] = []

        def record(s: Session, acts: ActLog) -> None:
            retried.clear()  # (an act runs once; this keeps a rerun honest)
            outbox = Outbox(s)
            delivered = [o for o in outcomes if o.receipt is not None]
            if delivered:
                outbox.delivered_many([(o.entry.id, o.receipt or {}) for o in delivered], now)
                self.fed.delivered_many(
                    s,
                    [(o.entry.share_id, o.entry.kind, o.receipt or {}) for o in delivered],
                    acts,
                )
            for o in outcomes:
                entry = o.entry
                if o.problem is not None:
                    problem = o.problem
                    outbox.refused(
                        entry.id,
                        now=now,
                        error=f"{o.status} {problem.get('code')}: {problem.get('detail')}",
                        response=problem,
                    )
                    self.fed.refused(s, entry.share_id, entry.kind, problem)
                elif o.error is not None:
                    backoff = min(s_.max_backoff, s_.base_backoff * (2**entry.attempts))
                    # Jitter, so that retries to one peer spread out.
                    backoff *= random.uniform(0.8, 1.2)
                    give_up = now - entry.created_at > s_.give_up_after
                    outbox.retry(
                        entry.id,
                        at=now + timedelta(seconds=backoff),
                        error=o.error,
                        give_up=give_up,
                    )
                    self.fed.failed(s, entry.share_id, o.error, give_up)
                    retried.append((entry, o.error, backoff))

        self.fed.write_soon(record).result()
        if retried:
            soonest = time.monotonic() + min(backoff for _, _, backoff in retried)
            with self._lock:
                self._scan_at = min(self._scan_at, soonest)
        for entry, error, backoff in retried:
            log.info(
                "delivery of %s to %s: %s (retry in %.2fs)", entry.kind, entry.peer, error, backoff
            )


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"detail": response.text[:200]}
    return body if isinstance(body, dict) else {"detail": str(body)[:200]}
