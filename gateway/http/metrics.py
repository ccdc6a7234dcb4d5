"""Prometheus metrics of one app: API calls by route and status, latencies, and message
and queue figures read from the database on each scrape.

The registry belongs to the :class:`ApiMetrics` object built by the app
factory (never the process-wide default registry), so two apps in one process
or test never share counters. Labels are route templates, methods, statuses
and reason codes only: never an address, a message id or content.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.http.queries import MetricsSnapshot, metrics_snapshot

__all__ = ["CONTENT_TYPE_LATEST", "ApiMetrics"]


class _DatabaseFigures:
    """A collector yielding the last snapshot (collectors are synchronous; SQL is not)."""

    def __init__(self) -> None:
        self.snapshot = MetricsSnapshot(0, {}, {})

    def collect(self) -> Iterable[Metric]:
        snap = self.snapshot
        accepted = CounterMetricFamily(
            "pli_messages_accepted", "Messages accepted (audit trail, all instances)"
        )
        accepted.add_metric([], snap.accepted)
        yield accepted
        refused = CounterMetricFamily(
            "pli_messages_refused",
            "Messages or recipients refused, by result and reason",
            labels=["result", "reason"],
        )
        for (result, reason), count in sorted(snap.refused.items()):
            refused.add_metric([result, reason], count)
        yield refused
        queue = GaugeMetricFamily(
            "pli_outbound_queue", "Outbound queue rows by state", labels=["state"]
        )
        for state in sorted({"queued", "delivered", "failed", *snap.queue}):
            queue.add_metric([state], snap.queue.get(state, 0))
        yield queue


class ApiMetrics:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.registry = CollectorRegistry()
        self.calls = Counter(
            "pli_http_requests",
            "HTTP API calls",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pli_http_request_duration_seconds",
            "HTTP API call latency",
            ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self._db = _DatabaseFigures()
        self.registry.register(self._db)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.calls.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    async def render(self) -> bytes:
        """The exposition text, after refreshing the database figures."""
        self._db.snapshot = await metrics_snapshot(self._engine)
        return generate_latest(self.registry)
