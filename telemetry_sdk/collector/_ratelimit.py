"""A token bucket per source address, held in memory only (addresses are never stored)."""

from __future__ import annotations

from collections.abc import Hashable

from attrs import define, field

__all__ = ["RateLimiter"]

#: Buckets kept at most; the oldest are forgotten first (a full bucket is the default).
_MAX_SOURCES = 65_536


@define
class RateLimiter:
    """Allow ``rate`` datagrams per second per source, with bursts of up to ``burst``.

    ``rate == 0`` turns the limit off. Call ``allow`` from one thread (the receiver).
    """

    rate: float
    burst: int
    #: source -> [tokens, last refill time]
    _buckets: dict[Hashable, list[float]] = field(factory=dict, init=False)

    @property
    def enabled(self) -> bool:
        """Whether any limit applies."""
        return self.rate > 0

    def allow(self, source: Hashable, now: float) -> bool:
        """Take one token from ``source``'s bucket; ``False`` if it is empty."""
        bucket = self._buckets.get(source)
        if bucket is None:
            if len(self._buckets) >= _MAX_SOURCES:
                # dicts keep insertion order: forget the source seen longest ago.
                del self._buckets[next(iter(self._buckets))]
            bucket = self._buckets[source] = [float(self.burst), now]
        else:
            tokens = bucket[0] + (now - bucket[1]) * self.rate
            bucket[0] = min(float(self.burst), tokens)
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return True
        return False
