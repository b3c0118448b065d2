"""Runs the fake vault over HTTPS on 127.0.0.1, in a thread of the test process."""

from __future__ import annotations

import asyncio
import gc
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn

from tests.backends.azure_fake.app import Identity, build_app
from tests.backends.azure_fake.certs import ServerFiles, write_server_files
from tests.backends.azure_fake.state import Vault

START_TIMEOUT = 30.0


class FakeKeyVault:
    """One fake vault and its tenant, served until `stop()`.

    `vault` holds the state and the fault knobs; `identity` the one application
    whose client secret is written to `client_secret_file`, with a trailing
    newline as editors leave it.
    """

    def __init__(
        self, folder: Path, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.files: ServerFiles = write_server_files(folder)
        self.identity = Identity(
            tenant_id=f"tenant-{secrets.token_hex(4)}",
            client_id=f"client-{secrets.token_hex(4)}",
            client_secret=secrets.token_urlsafe(24),
        )
        self.client_secret_file = folder / "client-secret"
        self.client_secret_file.write_text(self.identity.client_secret + "\n")
        self.vault = Vault(clock)
        config = uvicorn.Config(
            build_app(self.vault, self.identity),
            host="127.0.0.1",
            port=0,
            ssl_certfile=str(self.files.certificate),
            ssl_keyfile=str(self.files.private_key),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            http="h11",
            loop="asyncio",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._serve, name="fake-key-vault", daemon=True
        )
        self.port = 0

    @property
    def url(self) -> str:
        """The vault URL to configure: `https://127.0.0.1:PORT`."""
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> FakeKeyVault:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake key vault did not start")
            time.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._server.serve())
            # A client that has not closed its pooled connection yet would keep
            # the TLS shutdown waiting for its close_notify past the loop's end.
            for connection in list(self._server.server_state.connections):
                connection.transport.abort()
            loop.run_until_complete(asyncio.sleep(0.05))
        finally:
            loop.close()

    def stop(self) -> None:
        # Connections that only garbage still holds (a response kept alive by an
        # exception's traceback) close now, so the server sees them end.
        gc.collect()
        self._server.should_exit = True
        self._thread.join(timeout=START_TIMEOUT)
