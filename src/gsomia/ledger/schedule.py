"""Scheduled witnessing: a node witnesses all its peers every ``interval`` seconds.

:class:`WitnessSchedule` runs :func:`gsomia.ledger.witness.witness_peers` in a background
thread, first one ``interval`` after it starts and then every ``interval`` (measured from the
end of a run, so slow peers never make runs overlap). The node's HTTP application starts it in
its lifespan (:func:`start_witnessing`) and stops it at shutdown; ``gsomia audit witness`` runs
the same thing once, by hand.

Outcomes go to the log: an inconsistent peer at ERROR (the run has also recorded the incident
and the ``witness.inconsistent`` ledger entry), a peer that could not be witnessed at WARNING.
:meth:`WitnessSchedule.run_once` is one run, for tests and for callers with a clock of their own;
:attr:`WitnessSchedule.ran` is set after each run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import httpx

from gsomia.ledger.witness import WitnessResult, witness_peers
from gsomia.node.config import DEFAULT_WITNESS_INTERVAL
from gsomia.node.federation import Federation

__all__ = ["DEFAULT_INTERVAL", "WitnessSchedule", "start_witnessing"]

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = DEFAULT_WITNESS_INTERVAL  # the node config's [ledger] witness_interval
STOP_WAIT = 15.0  # seconds to wait for a run in flight at shutdown


class WitnessSchedule:
    """Witness every active peer of ``federation`` every ``interval`` seconds, in a thread."""

    def __init__(
        self,
        federation: Federation,
        interval: float = DEFAULT_INTERVAL,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"a witnessing interval is a positive number of seconds: {interval}")
        self.fed = federation
        self.interval = float(interval)
        self.client = httpx.Client(timeout=timeout, transport=transport)
        self.ran = threading.Event()  # set after every run
        self.runs = 0
        self.last: list[WitnessResult] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one run at a time, scheduled or by hand
        self._thread = threading.Thread(target=self._loop, name="gsomia-witnessing", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=STOP_WAIT)
        # A run still in flight (a peer slower than STOP_WAIT) keeps its client: the thread is
        # a daemon and ends with the process.
        if self._lock.acquire(blocking=False):
            try:
                self.client.close()
            finally:
                self._lock.release()

    def run_once(self, parties: Sequence[str] | None = None) -> list[WitnessResult]:
        """Witness the peers now (all, or ``parties``); log what was found, set :attr:`ran`."""
        with self._lock:
            results = witness_peers(self.fed, client=self.client, parties=parties)
            self.last = results
            self.runs += 1
        for r in results:
            if r.status == "inconsistent":
                log.error(
                    "ledger of %s is INCONSISTENT: %s (incident %s)",
                    r.peer,
                    r.detail,
                    r.incident_id,
                )
            elif r.status == "error":
                log.warning("could not witness the ledger of %s: %s", r.peer, r.detail)
            else:
                log.info("cosigned the ledger of %s at size %s", r.peer, r.size)
        self.ran.set()
        return results

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception:  # the next run may do better: a store briefly unavailable, say
                log.exception("witnessing run failed")


def start_witnessing(federation: Federation, state: Any) -> WitnessSchedule | None:
    """Start the schedule for an application: its interval from ``state.witness_interval``.

    ``state`` is the application's state; without a ``witness_interval`` there the interval is
    :data:`DEFAULT_INTERVAL`, and 0 (or less) disables the schedule. ``state.witness_transport``,
    if set, is the HTTP transport to reach the peers with (tests route it in process). The
    schedule is kept as ``state.witnessing``.
    """
    interval = getattr(state, "witness_interval", None)
    seconds = DEFAULT_INTERVAL if interval is None else float(interval)
    if seconds <= 0:
        state.witnessing = None
        return None
    schedule = WitnessSchedule(
        federation, seconds, transport=getattr(state, "witness_transport", None)
    )
    state.witnessing = schedule
    schedule.start()
    return schedule
