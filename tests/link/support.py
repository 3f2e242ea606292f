"""What the link's end-to-end tests share: a simulated flight, an SSE subscriber, polling."""

from __future__ import annotations

import functools
import threading
from datetime import UTC, datetime
from typing import Any

import httpx
from tests import polling

from gsomia.link.simulator import DPRK_WEST_COAST, KOR_WARNING_LABEL, Launch, simulate
from gsomia.link.sse import SseParser
from gsomia.link.tracks import SensorMetadata, to_wire
from gsomia.node.cluster import NodeProcess

SENSOR_MARK = "GREEN-PINE-BLOCK-C-AT-SITE-7"  # a string that must never leave KOR


# A flight through three nodes takes longer than a share: a minute unless told otherwise.
poll = functools.partial(polling.poll, timeout=60.0)


class Subscriber:
    """A console's SSE subscription in a thread; reconnects with Last-Event-ID when dropped."""

    def __init__(self, proc: NodeProcess, token: str) -> None:
        self.proc, self.token = proc, token
        self.events: list[dict[str, Any]] = []
        self.last_id: str | None = None
        self.connected = threading.Event()
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            headers = {"Authorization": f"Bearer {self.token}"}
            if self.last_id is not None:
                headers["Last-Event-ID"] = self.last_id
            try:
                with httpx.stream(
                    "GET", self.proc.url + "/api/v1/link/stream", headers=headers, timeout=None
                ) as response:
                    response.raise_for_status()
                    self.connected.set()
                    parser = SseParser()
                    for line in response.iter_lines():
                        event = parser.feed(line)
                        if event is None:
                            continue
                        self.last_id = event.id
                        self.events.append(event.json())
                        if self._stop.is_set():
                            return
            except httpx.HTTPError:
                pass
            self.connected.clear()
            self.reconnects += 1
            self._stop.wait(0.05)  # reconnection back-off while the node is down

    def seqs(self, track: str) -> list[int]:
        return [e["seq"] for e in self.events if e["track_id"] == track and e["kind"] == "update"]

    def stop(self) -> None:
        self._stop.set()


def flight(n_max: int | None = None) -> list[dict[str, Any]]:
    launch = Launch(
        site=DPRK_WEST_COAST,
        time=datetime.now(UTC),
        azimuth_deg=95.0,
        range_km=600.0,
        rate_hz=1.0,
    )
    sensor = SensorMetadata(sensor_type=SENSOR_MARK)
    updates = list(simulate(launch, "KOR-E2E-1", KOR_WARNING_LABEL, sensor))[:n_max]
    wires = [to_wire(u) for u in updates]
    wires[0] = {**wires[0], "sensor": {"sensor_type": SENSOR_MARK}}  # local metadata at intake
    return wires


def post(proc: NodeProcess, wires: list[dict[str, Any]]) -> None:
    with proc.client(timeout=30) as c:
        for i in range(0, len(wires), 50):
            r = c.post("/api/v1/link/updates", json={"updates": wires[i : i + 50]})
            assert r.status_code == 202, r.text
