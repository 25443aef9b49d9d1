"""What ``/healthz`` answers: whether the collector is really keeping what it receives.

Healthy (200) means: the writer runs, its last write did not fail, the queue is below
``HealthPolicy.queue_fraction`` of its cap, and either nothing is waiting or a batch was
committed in the last ``HealthPolicy.stale_seconds``. Anything else is 503 with every
reason that applies, so a load balancer or an operator sees the cause, not only the symptom.
"""

from __future__ import annotations

import time
from typing import Any

from attrs import Attribute, field, frozen

from .._errors import ConfigurationError
from ._metrics import Metrics

__all__ = ["REASONS", "Health", "HealthPolicy", "assess"]

#: The reasons, in the order they are reported.
WRITER_DOWN = "writer_down"
WRITES_FAILING = "writes_failing"
QUEUE_NEAR_FULL = "queue_near_full"
WRITES_STALLED = "writes_stalled"
REASONS = (WRITER_DOWN, WRITES_FAILING, QUEUE_NEAR_FULL, WRITES_STALLED)


def _check_fraction(_: object, attribute: Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        msg = f"{attribute.name} must be a number in (0, 1], got {value!r}"
        raise ConfigurationError(msg)


def _check_seconds(_: object, attribute: Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
        msg = f"{attribute.name} must be a number of seconds > 0, got {value!r}"
        raise ConfigurationError(msg)


@frozen(kw_only=True)
class HealthPolicy:
    """The thresholds of ``assess``."""

    #: Unhealthy when more than this fraction of ``max_queued`` datagrams are waiting.
    queue_fraction: float = field(default=0.8, validator=_check_fraction)
    #: Unhealthy when datagrams wait and nothing was committed for this long (seconds).
    stale_seconds: float = field(default=30.0, validator=_check_seconds)


@frozen
class Health:
    """The answer: ``ok``, the HTTP status to send, and its JSON body."""

    ok: bool
    body: dict[str, Any]

    @property
    def status(self) -> int:
        """200 when healthy, 503 otherwise."""
        return 200 if self.ok else 503


def assess(
    metrics: Metrics,
    *,
    writer_alive: bool,
    max_queued: int,
    policy: HealthPolicy | None = None,
    now: float | None = None,
) -> Health:
    """Decide the collector's health from its writer and its counters."""
    policy = policy or HealthPolicy()
    now = time.time() if now is None else now
    ingest = metrics.ingest
    last_ok = ingest.last_write_ok
    last_error = ingest.last_write_error
    waiting = metrics.waiting
    reasons: list[str] = []
    if not writer_alive:
        reasons.append(WRITER_DOWN)
    if last_error > last_ok:
        reasons.append(WRITES_FAILING)
    if waiting > policy.queue_fraction * max_queued:
        reasons.append(QUEUE_NEAR_FULL)
    if waiting > 0 and now - max(last_ok, metrics.started) > policy.stale_seconds:
        reasons.append(WRITES_STALLED)
    body: dict[str, Any] = {
        "status": "unhealthy" if reasons else "ok",
        "reasons": reasons,
        "writer": "up" if writer_alive else "down",
        "queue": {"waiting": waiting, "cap": max_queued},
        "last_write_success_age_seconds": round(now - last_ok, 3) if last_ok else None,
        "last_write_error_age_seconds": round(now - last_error, 3) if last_error else None,
        "held_closes": ingest.held_closes,
        "lost": metrics.lost,
    }
    return Health(not reasons, body)
