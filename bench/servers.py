"""The servers under test: started in their own process groups, always stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from load import pinned

STOP_GRACE_SECONDS = 5.0


@dataclass
class Server:
    """A running server process and where it answers."""

    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start(
    name: str, command: list[str], *, port: int, cwd: Path, cpu: int | None
) -> Server:
    """Start `command` in a new session, its output going to a log file in `cwd`."""
    log = cwd / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            pinned(command, cpu),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(name, process, f"http://127.0.0.1:{port}", log)


def wait_ready(server: Server, path: str, timeout: float = 30.0) -> None:
    """Return once `path` answers 200; raise RuntimeError if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.process.returncode}:\n"
                f"{server.log_tail()}"
            )
        try:
            if httpx.get(server.base_url + path, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} not ready after {timeout:.0f} s")


def stop(server: Server) -> None:
    """Terminate the server's whole process group, killing it if it lingers."""
    if server.process.poll() is not None:
        return
    for sent in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(server.process.pid, sent)
        except ProcessLookupError:
            return
        try:
            server.process.wait(timeout=STOP_GRACE_SECONDS)
            return
        except subprocess.TimeoutExpired:
            continue
