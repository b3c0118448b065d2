"""Rotating many secrets at once: in batches, under a rate limit.

Batches of `batch_size` rotations run concurrently; batch k does not start
before k * batch_size / per_second seconds have passed since the first, so a
pattern that names hundreds of secrets never bursts at the backends (and the
generators' upstreams). Every secret gets its own result; one failure does not
stop the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from service.errors import TokenBrokerError
from service.rotation.records import Rotation


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
    now: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> list[BulkResult]:
    """Rotate every name; answer one result per name, in order."""
    started = now()
    results: list[BulkResult] = []
    for first in range(0, len(names), batch_size):
        wait = started + first / per_second - now()
        if wait > 0:
            await sleep(wait)
        batch = names[first : first + batch_size]
        results.extend(await asyncio.gather(*(_one(name, rotate) for name in batch)))
    return results


async def _one(name: str, rotate: Callable[[str], Awaitable[Rotation]]) -> BulkResult:
    try:
        return BulkResult(name, rotation=await rotate(name))
    except TokenBrokerError as error:
        return BulkResult(name, error=error)
