"""What the benchmark scripts share: a server in a child process, served until it answers
``/health`` and stopped afterwards, and the CPU time a process has used."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from gsomia.node.cluster import free_port

__all__ = ["START_DEADLINE", "STOP_DEADLINE", "Server", "child_env", "cpu_seconds", "serve"]

START_DEADLINE = 60.0  # seconds for a server to answer /health
STOP_DEADLINE = 15.0


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("GSOMIA_KEY_PASSPHRASE", None)  # the benchmarks' node keys need no passphrase
    return env


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a process so far (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """One server in a child process: its URL, its process and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: IO[bytes]

    def cpu_seconds(self) -> float | None:
        return cpu_seconds(self.process.pid)

    def log_tail(self) -> str:
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read()[-2000:].decode(errors="replace")


@contextlib.contextmanager
def serve(name: str, command: Sequence[str], workdir: Path) -> Iterator[Server]:
    """Start ``command`` (which takes ``--port``), wait for /health, stop it afterwards."""
    port = free_port()
    log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=child_env(),
    )
    server = Server(name, process, f"http://127.0.0.1:{port}", log)
    try:
        _wait_healthy(server)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_DEADLINE)
        log.close()


def _wait_healthy(server: Server) -> None:
    deadline = time.monotonic() + START_DEADLINE
    with httpx.Client(base_url=server.url, timeout=2.0) as client:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(
                    f"{server.name} exited with {server.process.returncode}: {server.log_tail()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if client.get("/health").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} did not answer /health within {START_DEADLINE}s")
            time.sleep(0.05)  # a poll interval under the deadline above, not a fixed wait
