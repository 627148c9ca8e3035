"""Prometheus metrics on a registry of our own (one per runtime, so tests stay apart).

Under ``tidings serve --processes N`` (``PROMETHEUS_MULTIPROC_DIR`` set before the
processes start), every process writes its values to files in that directory and
``/metrics``, whichever process answers, reads them all: counters and histograms are
summed over the processes, and the database gauges show the latest value set.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from tidings.connectors.smpp.stats import SmppSnapshot
    from tidings.messaging.status_changes import MessageState
    from tidings.webhooks.sender import WebhookResult

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
# Methods as labels; anything else is "other", so a client cannot grow the label set.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._smpp: SmppCollector | None = None
        self.messages_created = Counter("tidings_messages_created", "Messages accepted",
                                        ["channel", "direction"], registry=self.registry)
        self.messages_by_status = Gauge("tidings_messages_by_status",
                                        "Messages in each status", ["status"],
                                        registry=self.registry,
                                        multiprocess_mode="mostrecent")
        self.status_changes = Counter(
            "tidings_message_status_changes", "Applied status changes (this process)",
            ["status"], registry=self.registry)
        self.queue_depth = Gauge("tidings_queue_depth", "Outbox jobs waiting", ["kind"],
                                 registry=self.registry, multiprocess_mode="mostrecent")
        self.dispatch_latency = Histogram(
            "tidings_dispatch_latency_seconds", "From accepted to submitted to the carrier",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.webhook_latency = Histogram(
            "tidings_webhook_latency_seconds", "From the event to its successful delivery",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.webhook_attempts = Counter("tidings_webhook_attempts", "Webhook attempts",
                                        ["result"], registry=self.registry)
        self.connector_errors = Counter(
            "tidings_connector_errors", "Errors a carrier reported about a connector",
            ["connector", "code"], registry=self.registry)

        self.http_requests = Counter(
            "tidings_http_requests", "HTTP requests answered, by route template and status",
            ["method", "route", "status"], registry=self.registry)
        self.http_duration = Histogram(
            "tidings_http_request_duration_seconds", "Time to answer, by route template",
            ["method", "route"], buckets=REQUEST_BUCKETS, registry=self.registry)
        self._http_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One answered request; ``route`` is the route's template, never the raw path."""
        children = self._http_children.get((method, route, status))
        if children is None:  # labels() takes a lock and builds a key: once per label set
            label = method if method in HTTP_METHODS else "other"
            children = (self.http_requests.labels(label, route, str(status)),
                        self.http_duration.labels(label, route))
            self._http_children[(method, route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_moves(self, moved: Mapping[str, int]) -> None:
        for status, count in moved.items():
            self.status_changes.labels(status).inc(count)

    def observe_dispatch(self, messages: Iterable[MessageState], now: datetime) -> None:
        for message in messages:
            if message.status == "sent":
                self.dispatch_latency.observe((now - message.created_at).total_seconds())

    def observe_webhook(self, event_created_at: datetime, result: WebhookResult,
                        now: datetime) -> None:
        self.webhook_attempts.labels("ok" if result.ok else "failed").inc()
        if result.ok:
            self.webhook_latency.observe((now - event_created_at).total_seconds())

    def watch_smpp(self, connectors: Callable[[], Iterable[tuple[str, SmppSnapshot]]],
                   gateway: Callable[[], SmppSnapshot | None]) -> None:
        """Report the SMPP connectors' and the gateway's snapshots on each scrape."""
        self._smpp = SmppCollector(connectors, gateway)
        self.registry.register(self._smpp)

    def render(self) -> bytes:
        shared = os.environ.get(MULTIPROCESS_ENV)
        if not shared:
            return generate_latest(self.registry)
        every_process = CollectorRegistry()
        MultiProcessCollector(every_process, path=shared)  # type: ignore[no-untyped-call]
        if self._smpp is not None:  # read live from this process's connectors
            every_process.register(self._smpp)
        return generate_latest(every_process)


MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def share_between_processes(data_dir: Path) -> Path:
    """Make the processes about to start write their metrics to one fresh directory
    under ``data_dir``, so that any of them can report all (call before they start:
    ``prometheus_client`` reads the variable when it is imported)."""
    shared = data_dir / "metrics-multiprocess"
    shutil.rmtree(shared, ignore_errors=True)  # counts of an earlier start would add up
    shared.mkdir(parents=True)
    os.environ[MULTIPROCESS_ENV] = str(shared)
    return shared


class SmppCollector(Collector):
    """SMPP binds, windows and counts, read from the connectors when scraped: the send
    path pays one dict update per PDU, not a Prometheus label lookup."""

    def __init__(self, connectors: Callable[[], Iterable[tuple[str, SmppSnapshot]]],
                 gateway: Callable[[], SmppSnapshot | None]) -> None:
        self._connectors, self._gateway = connectors, gateway

    def collect(self) -> Iterator[Metric]:
        yield from self._families("tidings_smpp", "the SMSC", list(self._connectors()))
        snapshot = self._gateway()
        yield from self._families("tidings_smpp_gateway", "clients",
                                  [("gateway", snapshot)] if snapshot else [])

    @staticmethod
    def _families(prefix: str, peer: str,
                  snapshots: list[tuple[str, SmppSnapshot]]) -> Iterator[Metric]:
        labels = ["connector"] if prefix == "tidings_smpp" else []
        binds = GaugeMetricFamily(f"{prefix}_binds", f"Binds up with {peer}", labels=labels)
        window = GaugeMetricFamily(f"{prefix}_window_in_use",
                                   f"Our requests awaiting {peer}'s answer", labels=labels)
        by_status = CounterMetricFamily(
            f"{prefix}_submits", "submit_sm answered, by command status (no_answer: none)",
            labels=[*labels, "status"])
        deliveries = CounterMetricFamily(f"{prefix}_deliveries",
                                         "deliver_sm (receipts, messages), by result",
                                         labels=[*labels, "result"])
        for name, snapshot in snapshots:
            own = [name] if labels else []
            binds.add_metric(own, snapshot.binds)
            window.add_metric(own, snapshot.window_in_use)
            for status, count in snapshot.by_status.items():
                by_status.add_metric([*own, status], count)
            for result, count in snapshot.deliveries.items():
                deliveries.add_metric([*own, result], count)
        yield from (binds, window, by_status, deliveries)
