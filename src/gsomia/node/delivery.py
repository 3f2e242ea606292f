"""The delivery worker: sends the outbox, with retries, and records what came back.

Entries are claimed with a lease (and ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several API
workers over one database never send the same entry at once). A crash mid-send leaves the lease
to expire and the entry is sent again: delivery is at least once, and the receiver's idempotency
by envelope id makes the effect exactly once.

- 200 with a receipt that verifies against the peer's pinned key: delivered.
- 4xx other than 408 and 429: refused by the peer (its problem+json is kept); not retried.
- anything else (connection refused, timeouts, 5xx, a receipt that does not verify): retried
  with exponential backoff and jitter, until ``give_up_after`` has passed since it was queued.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from gsomia.core.errors import EnvelopeError
from gsomia.crypto.envelope import verify_receipt
from gsomia.crypto.httpsig import sign_request
from gsomia.node.federation import ENDPOINT, Federation, real_now
from gsomia.store.federation import Outbox, OutboxEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    batch: int = 32
    lease: timedelta = timedelta(seconds=10)
    base_backoff: float = 0.2  # seconds; doubled per attempt
    max_backoff: float = 30.0
    give_up_after: timedelta = timedelta(hours=24)
    idle_wait: float = 0.5  # longest sleep between scans when nothing is due (a wake cuts it)
    timeout: float = 10.0


class DeliveryWorker:
    def __init__(
        self,
        federation: Federation,
        settings: DeliverySettings | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        threads: int = 4,
    ) -> None:
        self.fed = federation
        self.settings = settings or DeliverySettings()
        self.client = httpx.Client(timeout=self.settings.timeout, transport=transport)
        self._stop = threading.Event()
        self._inflight: set[int] = set()
        self._inflight_lock = threading.Lock()
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
        while not self._stop.is_set():
            try:
                sent = self.run_once()
            except Exception:  # keep delivering whatever one batch did
                log.exception("delivery batch failed")
                sent = 0
            if sent == 0:
                self.fed.wake.wait(self._idle_wait())
                self.fed.wake.clear()

    def _idle_wait(self) -> float:
        with self.fed.node.store.read() as s:
            due = Outbox(s).next_due()
        if due is None:
            return self.settings.idle_wait
        # Due now but nothing claimed means it is in flight in another thread: wait a little
        # rather than spin (a finished delivery sets the wake event anyway).
        return max(0.01, min(self.settings.idle_wait, (due - real_now()).total_seconds()))

    def run_once(self) -> int:
        """Claim and send what is due; the number of entries handled.

        On PostgreSQL several processes may deliver, so claims are leases written to the
        database. On SQLite there is one process: its threads share an in-memory set of what is
        in flight, and a claim is a read (one commit fewer per delivery; a crash forgets the
        set, and everything pending is simply due again).
        """
        store = self.fed.node.store
        if store.is_sqlite:
            with self._inflight_lock:
                with store.read() as s:
                    entries = Outbox(s).claim(
                        now=real_now(),
                        lease=None,
                        limit=self.settings.batch,
                        skip_locked=False,
                        exclude=self._inflight,
                    )
                self._inflight.update(e.id for e in entries)
        else:
            with store.write() as s:
                entries = Outbox(s).claim(
                    now=real_now(), lease=self.settings.lease, limit=self.settings.batch,
                    skip_locked=True,
                )  # fmt: skip
        try:
            for entry in entries:
                self._deliver(entry)
        finally:
            if store.is_sqlite:
                with self._inflight_lock:
                    self._inflight.difference_update(e.id for e in entries)
        return len(entries)

    def _deliver(self, entry: OutboxEntry) -> None:
        store = self.fed.node.store
        peer = self.fed.peer(entry.peer)
        if peer is None:
            self._retry(entry, f"{entry.peer} is no longer a peer")
            return
        request = self.client.build_request(
            "POST",
            peer.url + ENDPOINT,
            content=entry.body,
            headers={"content-type": "application/json"},
        )
        sign_request(request, entry.body, party=self.fed.party, key=self.fed.signing_key)
        try:
            response = self.client.send(request)
        except httpx.HTTPError as e:
            self._retry(entry, f"{type(e).__name__}: {e}")
            return
        if response.status_code == 200:
            try:
                receipt = response.json()
                key = self.fed.pinned_signing_key(entry.peer)
                if key is None:
                    raise EnvelopeError("the peer was removed")
                verify_receipt(receipt, key)
            except (ValueError, EnvelopeError) as e:
                self._retry(entry, f"receipt does not verify: {e}")
                return
            with store.write() as s:
                Outbox(s).delivered(entry.id, now=real_now(), response=receipt)
                self.fed.delivered(s, entry.share_id, entry.kind, receipt)
            self.fed.wake.set()  # a delivery may have queued a report or a relay
            return
        problem = _problem(response)
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            with store.write() as s:
                Outbox(s).refused(
                    entry.id,
                    now=real_now(),
                    error=f"{response.status_code} {problem.get('code')}: {problem.get('detail')}",
                    response=problem,
                )
                self.fed.refused(s, entry.share_id, entry.kind, problem)
            return
        self._retry(entry, f"{response.status_code} {problem.get('detail', response.text[:200])}")

    def _retry(self, entry: OutboxEntry, error: str) -> None:
        s_ = self.settings
        backoff = min(s_.max_backoff, s_.base_backoff * (2**entry.attempts))
        backoff *= random.uniform(0.8, 1.2)  # jitter, so that retries to one peer spread out
        now = real_now()
        give_up = now - entry.created_at > s_.give_up_after
        with self.fed.node.store.write() as s:
            Outbox(s).retry(
                entry.id, at=now + timedelta(seconds=backoff), error=error, give_up=give_up
            )
            self.fed.failed(s, entry.share_id, error, give_up)
        log.info(
            "delivery of %s to %s: %s (retry in %.2fs)", entry.kind, entry.peer, error, backoff
        )


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"detail": response.text[:200]}
    return body if isinstance(body, dict) else {"detail": str(body)[:200]}
