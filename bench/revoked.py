"""A dev-mode store holding many revoked tokens, made before the broker starts.

The revocation check must cost the same however many tokens are revoked: the
bench measures a secret read with a reused (valid) token against a broker
whose store holds `count` revoked tokens of the same environment, all still
unexpired so that none is pruned during the run, through the store's own bulk
path (`RevocationStore.record_many`). They are recorded as an hour old, as
revocations that accumulated before the broker started: the steady state,
not the seconds after a burst, when every process reads the burst again on
each poll of its lookback window (service/revocation_feed.py).
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from provision import ENV

from service.dev import FOLDER
from service.revocation_set import Kind, Revocation
from service.revocation_store import RevocationStore
from service.store.database import open_store

# Long enough that no entry expires (and is pruned) while the bench runs.
KEPT_SECONDS = 3600.0
RECORDED_AGO_SECONDS = 3600.0
CHUNK = 50_000


class _AnHourAgo:
    """The clock the seeded rows are recorded by."""

    def now(self) -> float:
        return time.time() - RECORDED_AGO_SECONDS


def seed(broker_folder: Path, count: int) -> float:
    """Write `count` revoked tokens into the dev store under `broker_folder`;
    answer the seconds it took."""
    started = time.monotonic()
    store_folder = broker_folder / FOLDER
    store_folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    engine = open_store(f"sqlite:///{(store_folder / 'state.db').resolve()}")
    store = RevocationStore(engine, _AnHourAgo())
    now = time.time()
    try:
        for start in range(0, count, CHUNK):
            batch = [
                Revocation(
                    ENV,
                    Kind.TOKEN,
                    secrets.token_urlsafe(16),
                    now - RECORDED_AGO_SECONDS,
                    now + KEPT_SECONDS,
                )
                for _ in range(min(CHUNK, count - start))
            ]
            store.record_many(batch, actor="bench", reason="bench seed")
    finally:
        engine.dispose()
    return time.monotonic() - started
