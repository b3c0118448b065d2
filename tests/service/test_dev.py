"""Dev mode's admin: the secret printed and written is always the one that works."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from service import dev
from service.app import create_app
from service.broker import Broker
from tests.service.conftest import FakeClock

ROOT = Path(__file__).resolve().parents[2]
FIRST = "first-dev-admin-secret-0123"
SECOND = "second-dev-admin-secret-4567"


@contextmanager
def dev_broker(folder: Path, clock: FakeClock) -> Iterator[Broker]:
    """A dev-mode broker over `folder`, as `serve --dev` builds it."""
    broker = Broker(
        dev.dev_settings(folder, None), public_url="http://dev.test", clock=clock
    )
    try:
        yield broker
    finally:
        broker.close()


def token_status(broker: Broker, secret: str) -> int:
    """The token endpoint's status for the admin with `secret`."""

    async def ask() -> int:
        transport = httpx.ASGITransport(app=create_app(broker))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://dev.test"
        ) as http:
            answer = await http.post(
                "/v1/dev/token",
                auth=(dev.ADMIN_SERVICE, secret),
                data={"grant_type": "client_credentials"},
            )
        return answer.status_code

    return asyncio.run(ask())


def test_a_restart_with_another_admin_secret_makes_it_the_working_one(
    tmp_path: Path, clock: FakeClock
) -> None:
    """The new secret works at once; the old one stops."""
    folder = tmp_path / ".tokenbroker"
    with dev_broker(folder, clock) as broker:
        dev.ensure_dev_admin(broker, folder, FIRST)

    with dev_broker(folder, clock) as broker:
        shown, new = dev.ensure_dev_admin(broker, folder, SECOND)
        statuses = (token_status(broker, SECOND), token_status(broker, FIRST))

    written = json.loads((folder / "admin.json").read_text())["client_secret"]
    assert (shown, new, written) == (SECOND, True, SECOND)
    assert statuses == (200, 401)


def test_a_restart_with_the_same_admin_secret_keeps_the_credential(
    tmp_path: Path, clock: FakeClock
) -> None:
    folder = tmp_path / ".tokenbroker"
    with dev_broker(folder, clock) as broker:
        dev.ensure_dev_admin(broker, folder, FIRST)

    with dev_broker(folder, clock) as broker:
        shown, new = dev.ensure_dev_admin(broker, folder, FIRST)
        status = token_status(broker, FIRST)

    assert (shown, new, status) == (FIRST, False, 200)


def test_a_short_dev_admin_secret_is_refused_before_anything_is_created(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--dev",
         "--dev-admin-secret", "fifteen-chars-x"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)},
    )  # fmt: skip

    assert done.returncode == 2
    assert "--dev-admin-secret: a client secret has at least 16" in done.stderr
    assert not (tmp_path / ".tokenbroker").exists()
