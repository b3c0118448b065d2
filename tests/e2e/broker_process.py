"""Running the real `tokenbroker serve` process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

START_TIMEOUT_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class BrokerProcess:
    """One broker process; its output goes to files that tests can search."""

    def __init__(self, folder: Path, arguments: Sequence[str], env: dict[str, str]):
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout_path = folder / f"stdout-{self.port}.log"
        self.stderr_path = folder / f"stderr-{self.port}.log"
        command = [
            sys.executable, "-m", "service.cli", "serve", "--port", str(self.port),
            *arguments,
        ]  # fmt: skip
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self._process = subprocess.Popen(
                command,
                cwd=folder,
                stdout=out,
                stderr=err,
                env={**_base_environment(), **env},
                start_new_session=True,
            )
        self._wait_until_healthy()

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"broker exited at start:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"broker did not become healthy:\n{self.output()}")

    def output(self) -> str:
        """Everything the process printed so far, standard output then error."""
        return self.stdout_path.read_text(
            errors="replace"
        ) + self.stderr_path.read_text(errors="replace")

    def stop(self) -> None:
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()


def run_cli(
    folder: Path, *arguments: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a short `tokenbroker` command and answer its outcome."""
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *arguments],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**_base_environment(), **(env or {})},
        timeout=60,
        check=False,
    )


def _base_environment() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR", "PYTHONPATH")
    return {name: os.environ[name] for name in keep if name in os.environ}
