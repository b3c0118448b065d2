"""Who may read which version of a secret, through the whole application.

A rotation's pending version is the rotation's own (case C01): a reader may
not see it, whichever way the read names it, cached or not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backends.base import Stage
from service.sensitive import Sensitive
from tests.service.conftest import FakeClock
from tests.service.harness import LocalBroker, local_broker

POLICY = """\
services:
  reader:
    secrets:
      read: ["c0*/**"]
  rotator:
    secrets:
      read: ["c0*/**"]
      rotate: ["c0*/**"]
"""
SECRET = "c01/s"
PENDING_VALUE = "<PW2-pending>"


@pytest.fixture
def local(tmp_path: Path, clock: FakeClock) -> Iterator[LocalBroker]:
    with local_broker(tmp_path, clock) as broker:
        assert broker.put_policy("dev", "apps", POLICY).status_code == 200
        yield broker


@pytest.fixture
def pending(local: LocalBroker) -> str:
    """The version a rotation stuck after `create` left pending; v1 is current."""
    admin = local.bearer(local.admin_token("dev"))
    written = local.call(
        "PUT", f"/v1/dev/secrets/{SECRET}", headers=admin, json={"value": "<PW1>"}
    )
    assert written.status_code == 200, written.text
    backend = local.broker.environments["dev"].default_backend
    info = backend.write(
        SECRET, Sensitive.from_text(PENDING_VALUE), binary=False, stage=Stage.PENDING
    )
    return info.version


def _read(local: LocalBroker, who: str, **params: str) -> httpx.Response:
    token = local.token("dev", who, local.credential("dev", who))
    return local.call(
        "GET", f"/v1/dev/secrets/{SECRET}", headers=local.bearer(token), params=params
    )


def test_a_reader_cannot_read_a_pending_version_by_its_number(
    local: LocalBroker, pending: str
) -> None:
    """`?version=` of a version that is only pending is 403, with no value."""
    response = _read(local, "reader", version=pending)

    assert response.status_code == 403
    assert PENDING_VALUE not in response.text


def test_a_rotator_reads_a_pending_version_by_its_number(
    local: LocalBroker, pending: str
) -> None:
    """With the rotate permission the pending version reads, marked pending."""
    body = _read(local, "rotator", version=pending).json()

    assert (body["version"], body["stage"], body["value"]) == (
        pending, "pending", PENDING_VALUE,
    )  # fmt: skip


def test_a_pending_version_in_the_cache_is_still_refused_to_a_reader(
    local: LocalBroker, pending: str
) -> None:
    """The rotator's read caches the version; the reader's cache hit is 403."""
    assert _read(local, "rotator", version=pending).status_code == 200

    response = _read(local, "reader", version=pending)

    assert response.status_code == 403
    assert PENDING_VALUE not in response.text


def test_a_reader_still_reads_the_current_version_by_its_number(
    local: LocalBroker, pending: str
) -> None:
    """Only the pending version is withheld: current reads by its id as before."""
    body = _read(local, "reader", version="1").json()

    assert (body["version"], body["stage"], body["value"]) == ("1", "current", "<PW1>")
