"""Rotating many secrets at once: in batches, under a rate limit per backend.

Names are grouped by the backend that holds them (`backend_of`); each group is
paced on its own, so a slow or throttled store slows only its own secrets.
Within a group, batches of `batch_size` rotations run concurrently, and batch k
does not start before k * batch_size / per_second seconds have passed since the
group's first, so a pattern that names hundreds of secrets never bursts at a
store (or at the generators' upstreams). Every name gets its own result, in the
order given; one failure, of any kind, does not stop the others and is never
left out.

Pacing follows `now` and `sleep`, which must tell the same time: the process's
monotonic clock by default. Tests pass both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

from service.errors import TokenBrokerError
from service.rotation.records import Rotation

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class BulkResult:
    """The outcome for one secret of a bulk rotation."""

    name: str
    rotation: Rotation | None = None
    error: TokenBrokerError | None = None


async def rotate_in_batches(
    names: Sequence[str],
    rotate: Callable[[str], Awaitable[Rotation]],
    *,
    batch_size: int,
    per_second: float,
    backend_of: Callable[[str], str] = lambda _name: "",
    now: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> list[BulkResult]:
    """Rotate every name; answer one result per name, in the order given."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(backend_of(name), []).append(name)

    async def paced(group: list[str]) -> list[BulkResult]:
        started = now()
        results: list[BulkResult] = []
        for first in range(0, len(group), batch_size):
            wait = started + first / per_second - now()
            if wait > 0:
                await sleep(wait)
            batch = group[first : first + batch_size]
            results.extend(await asyncio.gather(*(_one(n, rotate) for n in batch)))
        return results

    done = await asyncio.gather(*(paced(group) for group in groups.values()))
    by_name = {result.name: result for results in done for result in results}
    return [by_name[name] for name in names]


async def _one(name: str, rotate: Callable[[str], Awaitable[Rotation]]) -> BulkResult:
    try:
        return BulkResult(name, rotation=await rotate(name))
    except TokenBrokerError as error:
        return BulkResult(name, error=error)
    except Exception as error:
        # Reported, not raised: the other secrets' results must still come back.
        log.error(
            "rotation_bulk_item_failed", secret=name, error_type=type(error).__name__
        )
        return BulkResult(
            name, error=TokenBrokerError("the rotation failed; see the broker's log")
        )
