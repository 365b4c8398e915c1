"""Prometheus metrics of one app: requests by route template and status, latency, jobs by state."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class JobsByState(Collector):
    """Reads job counts from the database at scrape time, so every replica reports the same truth."""

    def __init__(self, count_jobs: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        self.count_jobs = count_jobs

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily("ember_jobs", "Jobs in the database by kind and state.", labels=["kind", "state"])
        for (kind, state), count in sorted(self.count_jobs().items()):
            family.add_metric([kind, state], count)
        yield family


class Metrics:
    def __init__(self, count_jobs: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ember_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ember_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(JobsByState(count_jobs))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
