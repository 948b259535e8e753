"""Prometheus metrics of one server (`/metrics`), in the text format, via prometheus_client.

Each `WebhooksServer` owns its registry (several apps in one process, as in tests, never clash).
Counters are updated where things happen; the queue depth and dead jobs are read from the inbox
when scraped, so every replica reports the shared truth.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.deliveries = Counter(
            "spacehooks_deliveries_total",
            "Webhook requests by endpoint and outcome (stored, duplicate, unhandled, refused, "
            "invalid).",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        self.handler_seconds = Histogram(
            "spacehooks_handler_duration_seconds",
            "Time a handler attempt took.",
            ["handler", "outcome"],
            registry=self.registry,
            buckets=(0.005, 0.025, 0.1, 0.5, 1, 5, 30, 120, 600),
        )
        self.retries = Counter(
            "spacehooks_job_retries_total",
            "Failed attempts to be retried.",
            ["handler"],
            registry=self.registry,
        )
        self.jobs = Gauge(
            "spacehooks_jobs", "Jobs in the inbox by status.", ["status"], registry=self.registry
        )
        self.client_calls = Counter(
            "spacehooks_client_requests_total",
            "Requests of the embedded clients by service and HTTP status code.",
            ["service", "status"],
            registry=self.registry,
        )

    def observer(self, service: str) -> Callable[[str, str, int], None]:
        """A callback for `HttpClient.observer` counting one service's answers by status."""
        counter = self.client_calls

        def observe(_method: str, _path: str, status: int) -> None:
            counter.labels(service, str(status)).inc()

        return observe

    def render(self, job_counts: dict[str, int]) -> bytes:
        for status in ("queued", "running", "succeeded", "dead"):
            self.jobs.labels(status).set(job_counts.get(status, 0))
        return generate_latest(self.registry)
