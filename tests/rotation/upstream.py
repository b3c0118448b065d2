"""A small HTTPS upstream that mints, applies, verifies and revokes credentials.

It speaks the `http` generator's protocol, checks every request's signature,
and can be told to fail a route a number of times. Served on loopback by
uvicorn in a thread; its certificate comes from a throwaway CA.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.rotation.signing import SIGNATURE_HEADER, verify
from service.sensitive import Sensitive
from tests.backends.azure_fake.certs import write_server_files


@dataclass
class UpstreamState:
    key: Sensitive
    minted: dict[str, str] = field(default_factory=dict)
    applied: set[str] = field(default_factory=set)
    revoked: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    bad_signatures: int = 0
    failures: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    bodies: list[bytes] = field(default_factory=list)


def build_app(state: UpstreamState) -> Starlette:
    async def handle(request: Request) -> JSONResponse:
        route = request.url.path.strip("/")
        body = await request.body()
        state.calls.append(route)
        state.bodies.append(body)
        if not verify(state.key, request.headers.get(SIGNATURE_HEADER, ""), body):
            state.bad_signatures += 1
            return JSONResponse({"error": "bad signature"}, status_code=401)
        if state.failures[route]:
            return JSONResponse({"error": "<SECRET_VALUE>"},
                                status_code=state.failures[route].pop(0))  # fmt: skip
        data = json.loads(body)
        if route == "mint":
            key = request.headers["idempotency-key"]
            value = state.minted.setdefault(key, "up-" + secrets.token_hex(16))
            return JSONResponse({"value": value, "ref": "cred-" + key[:8]})
        if route == "apply":
            state.applied.add(data["value"])
            return JSONResponse({})
        if route == "verify":
            return JSONResponse({"valid": data["value"] in state.applied})
        state.revoked.append(data)
        return JSONResponse({})

    routes = [Route(f"/{name}", handle, methods=["POST"])
              for name in ("mint", "apply", "verify", "revoke")]  # fmt: skip
    return Starlette(routes=routes)


class Upstream:
    """The upstream running on a free loopback port over HTTPS."""

    def __init__(self, folder: Path) -> None:
        files = write_server_files(folder)
        self.ca_file = files.ca_bundle
        self.key_file = folder / "hmac.key"
        key = secrets.token_hex(32)
        self.key_file.write_text(key + "\n")
        self.state = UpstreamState(Sensitive.from_text(key))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"https://127.0.0.1:{port}"
        config = uvicorn.Config(
            build_app(self.state), host="127.0.0.1", port=port,
            ssl_certfile=str(files.certificate), ssl_keyfile=str(files.private_key),
            log_config=None, access_log=False, lifespan="off", ws="none",
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the upstream did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]
