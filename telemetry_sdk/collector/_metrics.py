"""Counters of the collector: plain data, rendered for Prometheus by ``_prometheus``.

The receiver (in the service's process) counts what arrives; the ingest side (decoding and
writing, possibly in a child process) keeps its counters in ``IngestStats``, a flat list of
numbers that the child sends back to the parent after every batch. A writer process that
is restarted starts counting from zero: the parent adds what its predecessors counted
(``IngestStats.combined``). The HTTP server counts the connections and requests it refuses
in ``HTTPStats``.
"""

from __future__ import annotations

import time

from attrs import define, field

from .._wire_rules import REASONS
from ._ratelimit import LIMITS

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

# Slots of ``IngestStats.values``.
_BATCHES, _WRITTEN, _ERRORS, _LOST, _LATENCY_SUM, _ACCEPTED, _DELETED_RUN = range(7)
_REJECTED = 7
_BUCKETS = _REJECTED + len(REASONS)
_MORE = _BUCKETS + len(LATENCY_BUCKETS) + 1
# Counters, then two times (epoch seconds; the latest wins) and a gauge (the current wins).
_EXPIRED, _LAST_OK, _LAST_ERROR, _HELD = range(_MORE, _MORE + 4)
INGEST_SLOTS = _MORE + 4
_LATEST = (_LAST_OK, _LAST_ERROR)
_CURRENT = (_HELD,)


@define
class IngestStats:
    """What decoding and writing counted, as a flat list of numbers (easy to ship)."""

    values: list[float] = field(factory=lambda: [0.0] * INGEST_SLOTS)

    @staticmethod
    def combined(before: list[float], current: list[float]) -> list[float]:
        """What earlier writer processes counted (``before``) together with the current one."""
        out = [a + b for a, b in zip(before, current, strict=True)]
        for slot in _LATEST:
            out[slot] = max(before[slot], current[slot])
        for slot in _CURRENT:
            out[slot] = current[slot]
        return out

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
        values[_LAST_OK] = time.time()

    def fail(self, messages: int) -> None:
        """Count one batch of ``messages`` that could not be written."""
        self.values[_ERRORS] += 1
        self.values[_LOST] += messages
        self.values[_LAST_ERROR] = time.time()

    def write_ok(self) -> None:
        """Note that a write (other than a batch) committed."""
        self.values[_LAST_OK] = time.time()

    def failed_attempt(self) -> None:
        """Note that a write failed (it may still succeed when retried)."""
        self.values[_LAST_ERROR] = time.time()

    def drop_deleted(self, messages: int) -> None:
        """Count valid messages dropped because their run was deleted (not accepted)."""
        self.values[_DELETED_RUN] += messages

    def expire(self, closes: int, held: int) -> None:
        """Count held Parsl closes that expired; ``held`` are still waiting."""
        self.values[_EXPIRED] += closes
        self.values[_HELD] = held

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
    def deleted_run(self) -> int:
        """Valid messages dropped because their run was deleted (not accepted, not written)."""
        return self._int(_DELETED_RUN)

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

    @property
    def held_closes_expired(self) -> int:
        """Parsl closes dropped because their start did not come in time."""
        return self._int(_EXPIRED)

    @property
    def held_closes(self) -> int:
        """Parsl closes held, waiting for their start (as of the last expiry check)."""
        return self._int(_HELD)

    @property
    def last_write_ok(self) -> float:
        """When a batch was last committed (epoch seconds; 0: never)."""
        return self.values[_LAST_OK]

    @property
    def last_write_error(self) -> float:
        """When a write last failed (epoch seconds; 0: never)."""
        return self.values[_LAST_ERROR]

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
    #: Datagrams dropped by each rate limit (``_ratelimit.LIMITS``: address, prefix, global).
    rate_limited_by: dict[str, int] = field(factory=lambda: dict.fromkeys(LIMITS, 0))
    #: Datagrams dropped because too many were waiting to be decoded and written.
    queue_dropped: int = 0
    #: Datagrams handed to the ingest side.
    queued: int = 0
    #: Datagrams handed to the ingest side and not yet committed (or rejected).
    waiting: int = 0
    #: Datagrams the kernel dropped because the socket's receive buffer was full
    #: (Linux: the socket's ``drops`` in ``/proc/net/udp``; 0 elsewhere).
    kernel_dropped: int = 0
    #: Datagrams still waiting when a stop gave up on the writer (never written).
    stop_lost: int = 0
    #: Times the writer process was restarted after it died.
    writer_restarts: int = 0
    #: Whether the writer is running.
    writer_up: bool = False
    #: The socket's receive buffer as granted by the kernel, in bytes.
    receive_buffer_bytes: int = 0
    #: When the collector started (epoch seconds).
    started: float = field(factory=time.time)
    ingest: IngestStats = field(factory=IngestStats)
    http: HTTPStats = field(factory=HTTPStats)

    @property
    def rate_limited(self) -> int:
        """Datagrams dropped by any rate limit."""
        return sum(self.rate_limited_by.values())

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
        """Datagrams received and queued but not yet decoded and committed."""
        return self.waiting

    @property
    def lost(self) -> int:
        """Every datagram lost to a fault: kernel buffer, queue full, failed write, stop."""
        return self.kernel_dropped + self.queue_dropped + self.ingest.lost + self.stop_lost

    def summary(self) -> dict[str, int]:
        """The main counters, for the final log line; ``lost`` is the sum of the losses."""
        ingest = self.ingest
        return {
            "received": self.received,
            "accepted": ingest.accepted,
            "written": ingest.written,
            "rejected": self.rejected_total,
            "rate_limited": self.rate_limited,
            "deleted_run": ingest.deleted_run,
            "kernel_dropped": self.kernel_dropped,
            "queue_dropped": self.queue_dropped,
            "write_lost": ingest.lost,
            "stop_lost": self.stop_lost,
            "lost": self.lost,
        }
