"""The broker's own Prometheus metrics, in the registry `GET /metrics` serves.

- `tokenbroker_http_requests_total{method,route,status}`: by route template
  (`/v1/{env}/secrets/{name:path}`), never by raw path, so that secret names
  neither leak into metrics nor multiply their series.
- `tokenbroker_token_issue_seconds` and `tokenbroker_secret_read_seconds`:
  latency histograms of the two hot paths, per environment.
- `tokenbroker_backend_calls_total{env,backend,operation,outcome}`: every call
  into a secret store; the outcome is `ok` or the broker's error code.
- `tokenbroker_cache_lookups_total{cache,result}`: `hit` or `miss`.
- `tokenbroker_audit_records_total` and `tokenbroker_audit_batch_size`: what
  the audit writer commits, and how many records share one commit.

Rotation registers its own metrics (service/rotation/metrics.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from prometheus_client import CollectorRegistry, Counter, Histogram

from backends.base import SecretBackend
from service.errors import TokenBrokerError
from service.http import Scope

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
TOKEN_ROUTE = ("POST", "/v1/{env}/token")
SECRET_READ_ROUTE = ("GET", "/v1/{env}/secrets/{name:path}")
UNMATCHED = "unmatched"
BACKEND_OPERATIONS = ("read", "write", "promote", "set_enabled", "versions", "list",
                      "check")  # fmt: skip


class BrokerMetrics:
    """The counters and histograms of one broker process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "tokenbroker_http_requests",
            "HTTP requests by route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.token_issue = Histogram(
            "tokenbroker_token_issue_seconds",
            "Time to answer a token request.",
            ["env"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.secret_read = Histogram(
            "tokenbroker_secret_read_seconds",
            "Time to answer a secret read.",
            ["env"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.backend_calls = Counter(
            "tokenbroker_backend_calls",
            "Calls into secret stores by operation and outcome.",
            ["env", "backend", "operation", "outcome"],
            registry=registry,
        )
        self.cache_lookups = Counter(
            "tokenbroker_cache_lookups",
            "Cache lookups by cache and result (hit or miss).",
            ["cache", "result"],
            registry=registry,
        )
        self.audit_records = Counter(
            "tokenbroker_audit_records",
            "Audit records committed.",
            registry=registry,
        )
        self.audit_batch = Histogram(
            "tokenbroker_audit_batch_size",
            "Audit records committed together in one transaction.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )

    def cache_observer(self, cache: str) -> Callable[[bool], None]:
        """A callback counting one lookup of `cache` as a hit (True) or a miss."""
        hit = self.cache_lookups.labels(cache=cache, result="hit")
        miss = self.cache_lookups.labels(cache=cache, result="miss")
        return lambda found: (hit if found else miss).inc()

    def audit_committed(self, records: int) -> None:
        self.audit_records.inc(records)
        self.audit_batch.observe(records)


class RequestMetrics:
    """Counts requests and times the two hot paths, as `RequestLog` observes
    each finished request (service/http.py)."""

    def __init__(self, metrics: BrokerMetrics) -> None:
        self.metrics = metrics

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or UNMATCHED
        method = scope["method"]
        self.metrics.requests.labels(method, template, str(status)).inc()
        env = str(scope.get("path_params", {}).get("env", ""))
        if (method, template) == TOKEN_ROUTE:
            self.metrics.token_issue.labels(env).observe(seconds)
        elif (method, template) == SECRET_READ_ROUTE:
            self.metrics.secret_read.labels(env).observe(seconds)


def metered(backend: SecretBackend, env: str, metrics: BrokerMetrics) -> SecretBackend:
    """`backend` with its calls counted; it keeps its protocol."""
    return cast(SecretBackend, MeteredBackend(backend, env, metrics))


class MeteredBackend:
    """A secret store whose calls are counted by operation and outcome.

    Everything else (`name`, `max_value_bytes`, backend-specific attributes)
    is the wrapped backend's own.
    """

    def __init__(self, backend: SecretBackend, env: str, metrics: BrokerMetrics):
        self._backend = backend
        self._counters = {
            operation: _Outcomes(metrics, env, backend.name, operation)
            for operation in BACKEND_OPERATIONS
        }

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._backend, name)
        counter = self._counters.get(name)
        if counter is None or not callable(found):
            return found
        return counter.wrap(found)

    def __repr__(self) -> str:
        return f"MeteredBackend({self._backend!r})"


class _Outcomes:
    def __init__(
        self, metrics: BrokerMetrics, env: str, backend: str, operation: str
    ) -> None:
        self._counter = metrics.backend_calls
        self._labels = (env, backend, operation)
        self._ok = metrics.backend_calls.labels(env, backend, operation, "ok")

    def wrap(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            try:
                result = call(*args, **kwargs)
            except TokenBrokerError as error:
                self._counter.labels(*self._labels, error.code).inc()
                raise
            except Exception:
                self._counter.labels(*self._labels, "unexpected").inc()
                raise
            self._ok.inc()
            return result

        return counted
