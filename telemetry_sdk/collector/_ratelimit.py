"""Token buckets per source address, per network prefix, and one over all sources.

Anyone can send from many addresses of one network (a /24 of IPv4, a /64 of IPv6 is what
one customer usually holds), so each address, each prefix and the collector as a whole
have their own bucket; a datagram passes only if every bucket it falls in has a token.
Addresses and prefixes are held in memory only (bounded), never stored or logged.
"""

from __future__ import annotations

import socket
from collections.abc import Hashable

from attrs import define, field, frozen, validators

__all__ = ["LIMITS", "Limit", "RateLimiter", "network_prefix"]

#: The limits a datagram can be dropped by, most specific first: the metric's ``limit`` label.
LIMITS = ("address", "prefix", "global")
#: Buckets kept per table at most; the source seen longest ago is forgotten first (a
#: forgotten source comes back with a full bucket, so memory is bounded, not the rate).
_MAX_SOURCES = 65_536
_V4_MAPPED = "::ffff:"


@frozen
class Limit:
    """``rate`` datagrams per second with bursts of up to ``burst``; a rate of 0 is no limit."""

    rate: float = field(validator=validators.ge(0))
    burst: int = field(validator=validators.ge(1))

    @property
    def enabled(self) -> bool:
        """Whether this limit applies at all."""
        return self.rate > 0


_OFF = Limit(0.0, 1)


def network_prefix(address: str, ipv4_bits: int = 24, ipv6_bits: int = 64) -> Hashable:
    """The network ``address`` belongs to: its first ``ipv4_bits`` or ``ipv6_bits`` bits.

    IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``) count as IPv4; a scope (``%eth0``) is
    ignored. An address that is not IP is its own network.
    """
    host = address.partition("%")[0]
    try:
        if ":" in host and not (host.startswith(_V4_MAPPED) and "." in host):
            packed = socket.inet_pton(socket.AF_INET6, host)
            return 6, int.from_bytes(packed, "big") >> (128 - ipv6_bits)
        packed = socket.inet_pton(socket.AF_INET, host.removeprefix(_V4_MAPPED))
        return 4, int.from_bytes(packed, "big") >> (32 - ipv4_bits)
    except (OSError, ValueError):
        return address


@define
class _Table:
    """Token buckets by key: ``key -> [tokens, last refill time]``."""

    limit: Limit
    buckets: dict[Hashable, list[float]] = field(factory=dict)

    def refilled(self, key: Hashable, now: float) -> list[float]:
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= _MAX_SOURCES:
                # dicts keep insertion order: forget the key seen longest ago.
                del self.buckets[next(iter(self.buckets))]
            bucket = self.buckets[key] = [float(self.limit.burst), now]
        else:
            tokens = bucket[0] + (now - bucket[1]) * self.limit.rate
            bucket[0] = min(float(self.limit.burst), tokens)
            bucket[1] = now
        return bucket


@define
class RateLimiter:
    """Rate limits per source address, per network prefix and over all sources.

    ``allow`` returns ``None`` for a datagram that may pass (taking a token from every
    bucket), or the name of the first limit (``LIMITS`` order) whose bucket is empty, in which
    case no bucket is charged. Call it from one thread (the receiver).
    """

    address: Limit = _OFF
    prefix: Limit = _OFF
    total: Limit = _OFF
    ipv4_prefix: int = field(default=24, validator=[validators.ge(1), validators.le(32)])
    ipv6_prefix: int = field(default=64, validator=[validators.ge(1), validators.le(128)])
    _addresses: _Table = field(init=False)
    _prefixes: _Table = field(init=False)
    #: source address -> its prefix key (computed once per address).
    _prefix_of: dict[str, Hashable] = field(init=False, factory=dict)
    _all: _Table = field(init=False)

    def __attrs_post_init__(self) -> None:
        self._addresses = _Table(self.address)
        self._prefixes = _Table(self.prefix)
        self._all = _Table(self.total)

    @property
    def enabled(self) -> bool:
        """Whether any limit applies."""
        return self.address.enabled or self.prefix.enabled or self.total.enabled

    def allow(self, source: str, now: float) -> str | None:
        """``None`` if a datagram from ``source`` may pass; else the limit that drops it."""
        address = prefix = None
        if self.address.enabled:
            address = self._addresses.refilled(source, now)
            if address[0] < 1.0:
                return "address"
        if self.prefix.enabled:
            key = self._prefix_of.get(source)
            if key is None:
                if len(self._prefix_of) >= _MAX_SOURCES:
                    self._prefix_of.clear()
                key = self._prefix_of[source] = network_prefix(
                    source, self.ipv4_prefix, self.ipv6_prefix
                )
            prefix = self._prefixes.refilled(key, now)
            if prefix[0] < 1.0:
                return "prefix"
        if self.total.enabled:
            overall = self._all.refilled(None, now)
            if overall[0] < 1.0:
                return "global"
            overall[0] -= 1.0
        if address is not None:
            address[0] -= 1.0
        if prefix is not None:
            prefix[0] -= 1.0
        return None
