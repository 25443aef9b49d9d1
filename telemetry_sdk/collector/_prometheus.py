"""The collector's counters as Prometheus metric families, on a registry of its own.

``Metrics`` stays plain data; ``MetricsExporter`` reads it on every scrape and yields
``prometheus_client`` families named ``telemetry_collector_<thing>[_total]``, with a ``reason``
label where one counter has several causes. The registry is the collector's own, never the
process-wide default, so several collectors in one process (tests) do not collide.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from ._metrics import LATENCY_BUCKETS, Metrics

__all__ = ["MetricsExporter", "exposition", "registry_for"]

_PREFIX = "telemetry_collector_"


def _counter(name: str, text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(_PREFIX + name, text, value=value)


def _by_reason(name: str, text: str, counts: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(_PREFIX + name, text, labels=["reason"])
    for reason, count in counts.items():
        family.add_metric([reason], count)
    return family


class MetricsExporter(Collector):
    """A custom ``prometheus_client`` collector that renders one ``Metrics``."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        """Yield every family from the current counters."""
        metrics = self.metrics
        ingest = metrics.ingest
        yield _counter("received", "Datagrams received.", metrics.received)
        yield _counter("accepted", "Valid messages accepted.", ingest.accepted)
        yield _by_reason("rejected", "Datagrams rejected, by reason.", ingest.rejected)
        limited = CounterMetricFamily(
            _PREFIX + "rate_limited",
            "Datagrams dropped by a rate limit, by limit (address, prefix, global).",
            labels=["limit"],
        )
        for limit, count in metrics.rate_limited_by.items():
            limited.add_metric([limit], count)
        yield limited
        yield _counter(
            "queue_dropped",
            "Datagrams dropped because too many were waiting to be written.",
            metrics.queue_dropped,
        )
        yield GaugeMetricFamily(
            _PREFIX + "queue_depth", "Datagrams waiting to be decoded.", value=metrics.depth
        )
        yield _counter(
            "deleted_run_dropped",
            "Valid messages dropped because their run was deleted (not accepted or written).",
            ingest.deleted_run,
        )
        yield _counter(
            "kernel_dropped",
            "Datagrams the kernel dropped because the receive buffer was full.",
            metrics.kernel_dropped,
        )
        yield _counter(
            "stop_lost",
            "Datagrams not written because a stop gave up waiting for the writer.",
            metrics.stop_lost,
        )
        yield _counter(
            "held_closes_expired",
            "Parsl closes dropped because their start did not arrive in time.",
            ingest.held_closes_expired,
        )
        yield GaugeMetricFamily(
            _PREFIX + "held_closes",
            "Parsl closes held, waiting for their start.",
            value=ingest.held_closes,
        )
        yield _counter(
            "writer_restarts",
            "Times the writer process was restarted after it died.",
            metrics.writer_restarts,
        )
        yield GaugeMetricFamily(
            _PREFIX + "writer_up", "Whether the writer is running.", value=int(metrics.writer_up)
        )
        yield GaugeMetricFamily(
            _PREFIX + "last_write_success_timestamp_seconds",
            "When a batch was last committed (0: never).",
            value=ingest.last_write_ok,
        )
        yield GaugeMetricFamily(
            _PREFIX + "last_write_error_timestamp_seconds",
            "When a write last failed (0: never).",
            value=ingest.last_write_error,
        )
        yield GaugeMetricFamily(
            _PREFIX + "receive_buffer_bytes",
            "The UDP socket's receive buffer as granted by the kernel.",
            value=metrics.receive_buffer_bytes,
        )
        counts, total = ingest.latency()
        yield _counter("write_batches", "Batches committed.", sum(counts))
        yield _counter("written", "Messages committed.", ingest.written)
        yield _counter("write_errors", "Write batches that failed.", ingest.write_errors)
        yield _counter("lost", "Accepted messages lost to failed writes.", ingest.lost)
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(LATENCY_BUCKETS, counts, strict=False):
            running += count
            buckets.append((str(bound), running))
        buckets.append(("+Inf", sum(counts)))
        yield HistogramMetricFamily(
            _PREFIX + "write_batch_seconds",
            "Time to write and commit one batch.",
            buckets=buckets,
            sum_value=total,
        )
        http = metrics.http
        yield GaugeMetricFamily(
            _PREFIX + "http_connections", "Open HTTP connections.", value=http.connections
        )
        yield _by_reason(
            "http_refused",
            "HTTP connections or requests refused, by reason.",
            http.refused,
        )


def registry_for(metrics: Metrics) -> CollectorRegistry:
    """A registry of its own holding only the exporter of ``metrics``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsExporter(metrics))
    return registry


def exposition(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The body and content type for a scrape that sent ``Accept: accept``.

    Plain text format 0.0.4 unless the scraper asks for OpenMetrics.
    """
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
