"""Counters of the collector: plain data, rendered for Prometheus by ``_prometheus``.

The receiver (in the service's process) counts what arrives; the ingest side (decoding and
writing, possibly in a child process) keeps its counters in ``IngestStats``, a flat list of
numbers that the child sends back to the parent after every batch; the HTTP server counts the
connections and requests it refuses in ``HTTPStats``.
"""

from __future__ import annotations

from attrs import define, field

__all__ = [
    "HTTP_REFUSALS",
    "INGEST_SLOTS",
    "LATENCY_BUCKETS",
    "REASONS",
    "HTTPStats",
    "IngestStats",
    "Metrics",
]

#: Upper bounds (seconds) of the write latency histogram.
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: Why a datagram can be rejected (``DecodeError.reason``).
REASONS = ("size", "protocol", "encoding", "json", "schema", "unknown_field")

# Slots of ``IngestStats.values``.
_BATCHES, _WRITTEN, _ERRORS, _LOST, _LATENCY_SUM, _ACCEPTED = range(6)
_REJECTED = 6
_BUCKETS = _REJECTED + len(REASONS)
INGEST_SLOTS = _BUCKETS + len(LATENCY_BUCKETS) + 1


@define
class IngestStats:
    """What decoding and writing counted, as a flat list of numbers (easy to ship)."""

    values: list[float] = field(factory=lambda: [0.0] * INGEST_SLOTS)

    def accept(self, messages: int) -> None:
        """Count valid messages handed to the store."""
        self.values[_ACCEPTED] += messages

    def reject(self, reason: str) -> None:
        """Count one rejected datagram."""
        index = REASONS.index(reason) if reason in REASONS else REASONS.index("schema")
        self.values[_REJECTED + index] += 1

    def observe(self, seconds: float, messages: int) -> None:
        """Count one committed batch of ``messages`` that took ``seconds``."""
        index = 0
        while index < len(LATENCY_BUCKETS) and seconds > LATENCY_BUCKETS[index]:
            index += 1
        values = self.values
        values[_BUCKETS + index] += 1
        values[_LATENCY_SUM] += seconds
        values[_WRITTEN] += messages
        values[_BATCHES] += 1

    def fail(self, messages: int) -> None:
        """Count one batch of ``messages`` that could not be written."""
        self.values[_ERRORS] += 1
        self.values[_LOST] += messages

    def _int(self, slot: int) -> int:
        return int(self.values[slot])

    @property
    def accepted(self) -> int:
        """Valid messages."""
        return self._int(_ACCEPTED)

    @property
    def rejected(self) -> dict[str, int]:
        """Rejected datagrams by reason."""
        return {r: self._int(_REJECTED + i) for i, r in enumerate(REASONS)}

    @property
    def write_batches(self) -> int:
        """Batches committed."""
        return self._int(_BATCHES)

    @property
    def written(self) -> int:
        """Messages committed."""
        return self._int(_WRITTEN)

    @property
    def write_errors(self) -> int:
        """Batches that failed."""
        return self._int(_ERRORS)

    @property
    def lost(self) -> int:
        """Messages in failed batches."""
        return self._int(_LOST)

    def latency(self) -> tuple[list[int], float]:
        """Batches per latency bucket, and the total seconds."""
        counts = self.values[_BUCKETS : _BUCKETS + len(LATENCY_BUCKETS) + 1]
        return [int(v) for v in counts], float(self.values[_LATENCY_SUM])


#: Why the HTTP server can refuse a connection or a request (``HTTPStats.refuse``).
HTTP_REFUSALS = (
    "header_timeout",
    "too_many_connections",
    "headers_too_large",
    "too_many_headers",
    "malformed",
    "body",
    "server_error",
)


@define
class HTTPStats:
    """What the HTTP server counts: open connections and refusals by reason."""

    connections: int = 0
    refused: dict[str, int] = field(factory=lambda: dict.fromkeys(HTTP_REFUSALS, 0))

    def refuse(self, reason: str) -> None:
        """Count one connection or request refused for ``reason`` (one of ``HTTP_REFUSALS``)."""
        self.refused[reason] += 1


@define
class Metrics:
    """What the collector counts: the receiver's counters and the ingest side's."""

    received: int = 0
    rate_limited: int = 0
    #: Datagrams dropped because too many were waiting to be decoded and written.
    queue_dropped: int = 0
    #: Datagrams handed to the ingest side.
    queued: int = 0
    ingest: IngestStats = field(factory=IngestStats)
    http: HTTPStats = field(factory=HTTPStats)

    @property
    def accepted(self) -> int:
        """Valid messages."""
        return self.ingest.accepted

    @property
    def written(self) -> int:
        """Messages committed to the store."""
        return self.ingest.written

    @property
    def rejected_total(self) -> int:
        """Every rejected datagram, whatever the reason."""
        return sum(self.ingest.rejected.values())

    @property
    def depth(self) -> int:
        """Datagrams received and queued but not yet decoded (and written)."""
        ingest = self.ingest
        return max(0, self.queued - ingest.accepted - sum(ingest.rejected.values()))

    def summary(self) -> dict[str, int]:
        """The main counters, for the final log line."""
        ingest = self.ingest
        return {
            "received": self.received,
            "accepted": ingest.accepted,
            "written": ingest.written,
            "rejected": self.rejected_total,
            "rate_limited": self.rate_limited,
            "queue_dropped": self.queue_dropped,
            "lost": ingest.lost,
        }
