"""Prometheus metrics of rotation.

`tokenbroker_rotations_total{env,outcome}` counts this process's outcomes. The
per-secret gauges are read from the store at scrape time, so every process
reports the same values whichever of them did the work:

- `tokenbroker_secret_current_version_age_seconds{env,secret}`
- `tokenbroker_rotation_next_run_timestamp_seconds{env,secret}`
- `tokenbroker_rotation_failures_in_row{env,secret}`
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from service.clock import Clock

log = structlog.get_logger(__name__)


class RotationMetrics:
    """Registers rotation metrics in a registry of the broker's."""

    def __init__(
        self,
        registry: CollectorRegistry,
        clock: Clock,
        secrets: Callable[[], list[Any]],
    ) -> None:
        self.rotations = Counter(
            "tokenbroker_rotations",
            "Rotations that reached an outcome, by outcome.",
            ["env", "outcome"],
            registry=registry,
        )
        registry.register(_SecretGauges(clock, secrets))

    def outcome(self, env: str, outcome: str) -> None:
        self.rotations.labels(env=env, outcome=outcome).inc()


class _SecretGauges(Collector):
    def __init__(self, clock: Clock, secrets: Callable[[], list[Any]]) -> None:
        self._clock = clock
        self._secrets = secrets

    def describe(self) -> list[Metric]:
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        try:
            rows = self._secrets()
        except SQLAlchemyError as error:
            log.warning("rotation_metrics_unavailable", error_type=type(error).__name__)
            rows = []
        age, next_run, failures = families
        now = self._clock.now()
        for row in rows:
            labels = [row.env, row.secret]
            if row.current_since is not None:
                age.add_metric(labels, now - row.current_since.timestamp())
            if row.due_at is not None:
                next_run.add_metric(labels, row.due_at.timestamp())
            failures.add_metric(labels, row.failures_in_row)
        yield from families

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        labels = ["env", "secret"]
        return (
            GaugeMetricFamily(
                "tokenbroker_secret_current_version_age_seconds",
                "Seconds since the current version became current.",
                labels=labels,
            ),
            GaugeMetricFamily(
                "tokenbroker_rotation_next_run_timestamp_seconds",
                "When the next scheduled rotation is due (Unix time).",
                labels=labels,
            ),
            GaugeMetricFamily(
                "tokenbroker_rotation_failures_in_row",
                "Failed rotation attempts since the last success.",
                labels=labels,
            ),
        )
