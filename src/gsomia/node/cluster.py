"""A cluster of national nodes on this machine: one process each, on 127.0.0.1.

Used by ``gsomia demo``, the end-to-end tests and the exchange benchmark. Each node is a real
``gsomia node serve`` process over its own SQLite file (or a PostgreSQL URL), with its own keys;
every node pins every other's keys, as partners do out of band.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gsomia.core.errors import PeerUnreachableError
from gsomia.core.registry import Registry
from gsomia.node.config import PASSPHRASE_ENV, init_node, load_config
from gsomia.node.federation import Federation
from gsomia.node.service import open_node

# Clearance and need-to-know of the demo users, per party (a level id of each scheme).
TOP_CLEARANCE = {"JPN": "gokuhi", "KOR": "gunsa-2", "USA": "secret"}
DEMO_TOPICS = ("dprk-missile", "dprk-nuclear", "prc-maritime")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class NodeProcess:
    party: str
    data_dir: Path
    port: int
    token: str = ""
    process: subprocess.Popen[bytes] | None = None
    log_file: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, timeout: float = 10.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=timeout
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Cluster:
    root: Path
    registry: Registry
    parties: Sequence[str] = ("JPN", "KOR", "USA")
    nodes: dict[str, NodeProcess] = field(default_factory=dict)
    registry_dirs: Sequence[str] = ()
    link_under: Sequence[str] = ()  # instruments the nodes route tracks under (--link-under)
    serve_args: dict[str, list[str]] = field(default_factory=dict)  # more, per party

    # -- set-up ------------------------------------------------------------------------------

    def create(self, *, now: Any, database_urls: dict[str, str] | None = None) -> None:
        """Initialise every node, its demo user, and the peering between all of them."""
        self.root.mkdir(parents=True, exist_ok=True)
        for party in self.parties:
            data = self.root / party
            url = (database_urls or {}).get(party)
            init_node(data, party, self.registry, None, now=now, database_url=url)
            self.nodes[party] = NodeProcess(party, data, free_port())
        for party, proc in self.nodes.items():
            node = open_node(
                party=party,
                registry=self.registry,
                database_url=load_config(proc.data_dir).database_url,
            )
            _, proc.token = node.add_user(
                name="officer",
                roles=["officer", "release-authority", "auditor"],
                clearance=TOP_CLEARANCE.get(party),
                need_to_know=DEMO_TOPICS,
            )
            fed = _federation(node, proc.data_dir)
            for other, peer in self.nodes.items():
                if other == party:
                    continue
                config = load_config(peer.data_dir)
                fed.add_peer(
                    other,
                    peer.url,
                    signing_key=config.signing_public_key.to_text(),
                    encryption_key=config.encryption_public_key.to_text(),
                    actor=None,
                )
            node.store.dispose()
        self.save()

    def save(self) -> None:
        state = {
            p: {"data_dir": str(n.data_dir), "port": n.port, "token": n.token}
            for p, n in self.nodes.items()
        }
        (self.root / "cluster.json").write_text(json.dumps(state, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, root: Path, registry: Registry) -> Cluster:
        state = json.loads((root / "cluster.json").read_text(encoding="utf-8"))
        cluster = cls(root=root, registry=registry, parties=tuple(state))
        for party, info in state.items():
            cluster.nodes[party] = NodeProcess(
                party, Path(info["data_dir"]), int(info["port"]), str(info["token"])
            )
        return cluster

    # -- processes ---------------------------------------------------------------------------

    def start(
        self,
        parties: Iterable[str] | None = None,
        *,
        clock: str | None = None,
        without: Sequence[str] = (),
        wait: float = 30.0,
    ) -> None:
        for party in parties or self.nodes:
            self._spawn(self.nodes[party], clock, without)
        for party in parties or self.nodes:
            self.wait_ready(party, wait)

    def _spawn(self, proc: NodeProcess, clock: str | None, without: Sequence[str]) -> None:
        command = [sys.executable, "-m", "gsomia.cli"]
        for directory in self.registry_dirs:
            command += ["--registry", directory]
        command += ["node", "serve", "--data", str(proc.data_dir), "--port", str(proc.port)]
        if clock:
            command += ["--clock", clock]
        for event in without:
            command += ["--without", event]
        for instrument in self.link_under:
            command += ["--link-under", instrument]
        command += self.serve_args.get(proc.party, [])
        proc.log_file = proc.data_dir / "serve.log"
        log = proc.log_file.open("ab")
        env = {k: v for k, v in os.environ.items() if k != PASSPHRASE_ENV}
        proc.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()

    def wait_ready(self, party: str, timeout: float = 30.0) -> None:
        proc = self.nodes[party]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.process is not None and proc.process.poll() is not None:
                tail = proc.log_file.read_text(errors="replace")[-800:] if proc.log_file else ""
                raise PeerUnreachableError(f"the {party} node exited: {tail.strip()}")
            try:
                if httpx.get(proc.url + "/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # polling a starting server, bounded by the deadline
        raise PeerUnreachableError(f"the {party} node did not come up within {timeout:.0f} s")

    def stop(self, parties: Iterable[str] | None = None, *, kill: bool = False) -> None:
        """Stop nodes: all signalled first, then each waited for (SIGKILL after 15 s)."""
        running = [self.nodes[p] for p in (parties or self.nodes) if self.nodes[p].running]
        for proc in running:
            assert proc.process is not None
            proc.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        for proc in running:
            assert proc.process is not None
            try:
                proc.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.process.kill()
                proc.process.wait()

    def pids(self) -> dict[str, int]:
        return {p: n.process.pid for p, n in self.nodes.items() if n.process is not None}

    # -- helpers -------------------------------------------------------------------------------

    def wait_for_share(
        self, party: str, share_id: str, *, until: Sequence[str], timeout: float = 30.0
    ) -> dict[str, Any]:
        """Poll a share until its status is one of ``until`` (or the deadline passes)."""
        deadline = time.monotonic() + timeout
        with self.nodes[party].client() as client:
            while True:
                share: dict[str, Any] = client.get(f"/api/v1/shares/{share_id}").json()
                if share.get("status") in until or time.monotonic() > deadline:
                    return share
                time.sleep(0.01)


def _federation(node: Any, data_dir: Path) -> Federation:
    return Federation.keyed_by(node, load_config(data_dir))
