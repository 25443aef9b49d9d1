"""Decoding on the collector: the fast path agrees with the SDK's decoder; the rate limit."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from _collector_support import close_message, datagram, start_message
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry_sdk._errors import DecodeError
from telemetry_sdk._wire import Component, decode
from telemetry_sdk.collector._ingest import fast_parse, parse, record_from_message
from telemetry_sdk.collector._ratelimit import Limit, RateLimiter, network_prefix

RECEIVED = 1_795_305_800


def slow(data: bytes) -> Any:
    """What the SDK's ``_wire.decode`` makes of a datagram received at ``RECEIVED``."""
    try:
        return record_from_message(decode(data, received=RECEIVED), RECEIVED)
    except DecodeError as exc:
        return exc.reason


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
#: Counts at and beyond the schema's bounds (2**64 is beyond what orjson parses).
BIG_COUNTS = [2**31 - 1, 2**31, 2**53, 2**64, 3.0]
#: Times around the bounds: 1970, just before 2020, 2020, a day after receipt, 2099.
TIMES = [86_400, 1_577_836_799, 1_577_836_800, RECEIVED + 86_400, RECEIVED + 86_401, 4_070_908_800]
correlator_texts = [
    "2f1e5a40-af61-11ef-9cd2-0242ac120002",  # version 1
    "00000000-0000-0000-0000-000000000000",
    "7c886a00-1111-4222-c333-123456789abc",  # not the RFC 4122 variant
    "not-a-uuid",
]
component_names = st.sampled_from(["minflow.Config", "x.Executor", "a b", "", "é.Ü", "\n"])
components = st.lists(
    st.one_of(
        component_names,
        st.fixed_dictionaries(
            {"c": component_names},
            optional={
                "app_count": st.integers(-2, 5) | st.booleans() | st.sampled_from(BIG_COUNTS),
                "app_fails": st.integers(-2, 5) | st.sampled_from(BIG_COUNTS),
                "executors_len": json_values,
                "c.d": st.text(max_size=3),
            },
        ),
        json_values,
    ),
    max_size=4,
)


@st.composite
def wire_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """Start or close messages as JSON objects: mostly valid, often subtly not."""
    correlator = draw(
        st.sampled_from([str(uuid.uuid4()), str(uuid.uuid4()).upper(), *correlator_texts])
    )
    if draw(st.booleans()):
        message = start_message(
            correlator=str(uuid.uuid4()),
            tracking_level=draw(st.integers(1, 3)),
            project_name=draw(st.sampled_from([None, "proj", "<b>x</b>"])),
            components=draw(st.sampled_from([None, (Component("a.B", {"n": 1}), Component("c"))])),
            start=draw(st.sampled_from([None, 1795305801])),
        )
    else:
        product = draw(st.sampled_from(["minflow", None]))
        message = close_message(
            str(uuid.uuid4()),
            product=product,
            version=None if product is None else "1.4.0",
            tracking_level=draw(st.sampled_from([3, None])),
        )
    data: dict[str, Any] = json.loads(datagram(message)[1:])
    if draw(st.booleans()):
        data["correlator"] = correlator
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["set", "drop", "components"]))
        key = draw(
            st.sampled_from(
                [*data, "project_name", "start", "end", "tracking_level", "python_v", "x_v",
                 "execution_time", "components_truncated", "product", "extra"]
            )
        )  # fmt: skip
        if action == "set":
            data[key] = draw(
                json_values
                | st.sampled_from([0, 1, 3, 4, 1.5, -1, True, "1.0", 31_536_000.5, *TIMES])
            )
        elif action == "drop":
            data.pop(key, None)
        else:
            data["components"] = draw(components)
    return data


class TestFastPath:
    @settings(max_examples=600, deadline=None)
    @given(wire_dicts(), st.sampled_from([b"1", b""]), st.none() | st.integers(0, 20))
    def test_agrees_with_the_sdk_decoder(
        self, data: dict[str, Any], prefix: bytes, repeat: int | None
    ) -> None:
        """The fast path accepts only what the SDK's decoder accepts, with the same record."""
        payload = prefix + json.dumps(data).encode()
        if repeat is not None and data:
            # Write one key twice: first with the drawn value, then with the real one.
            key = list(data)[repeat % len(data)]
            text = json.dumps(data)
            payload = prefix + ("{" + json.dumps(key) + ": 1, " + text[1:]).encode()
        expected = slow(payload)
        fast = fast_parse(payload, RECEIVED)
        if fast is not None:
            assert fast == expected
        assert parse_result(payload) == expected

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300))
    def test_agrees_on_arbitrary_bytes(self, payload: bytes) -> None:
        """On arbitrary bytes the collector's verdict is the SDK decoder's verdict."""
        assert parse_result(b"1" + payload) == slow(b"1" + payload)
        assert parse_result(payload) == slow(payload)

    def test_takes_the_common_messages(self) -> None:
        """Ordinary start and close messages take the fast path."""
        start = start_message(tracking_level=3, components=(Component("a.B", {"n": 1}),),
                              project_name="p", start=1795305801)  # fmt: skip
        for message in (start, close_message(start.correlator)):
            assert fast_parse(datagram(message), RECEIVED) == slow(datagram(message))


def parse_result(payload: bytes) -> Any:
    try:
        return parse(payload, RECEIVED)
    except DecodeError as exc:
        return exc.reason


def per_address(rate: float, burst: int) -> RateLimiter:
    return RateLimiter(address=Limit(rate, burst))


class TestRateLimiter:
    def test_burst_then_rate(self) -> None:
        """A source may send a burst at once, then only at the sustained rate."""
        limiter = per_address(4.0, 5)
        assert [limiter.allow("a", 100.0) for _ in range(7)] == [None] * 5 + ["address"] * 2
        assert limiter.allow("a", 100.125) == "address"  # half a token so far
        assert limiter.allow("a", 100.25) is None
        assert [limiter.allow("a", 200.0) for _ in range(6)] == [None] * 5 + ["address"]

    def test_sources_are_independent(self) -> None:
        """One flooding source does not use up another's allowance."""
        limiter = per_address(1.0, 2)
        for _ in range(10):
            limiter.allow("10.0.0.1", 0.0)
        assert limiter.allow("10.0.0.2", 0.0) is None

    def test_zero_disables(self) -> None:
        """A rate of 0 turns a limit off; a limiter with every limit off is disabled."""
        assert RateLimiter().enabled is False
        assert per_address(0.0, 1).enabled is False
        assert RateLimiter(total=Limit(1.0, 1)).enabled is True

    def test_invalid_limits_are_refused(self) -> None:
        """Negative rates, empty bursts and impossible prefix lengths are refused."""
        for make in (
            lambda: Limit(-1.0, 1),
            lambda: Limit(1.0, 0),
            lambda: RateLimiter(ipv4_prefix=33),
            lambda: RateLimiter(ipv6_prefix=0),
        ):
            with pytest.raises(ValueError):
                make()

    def test_memory_is_bounded(self) -> None:
        """Spoofed source addresses cannot grow the limiter without bound."""
        limiter = RateLimiter(address=Limit(1.0, 1), prefix=Limit(1.0, 1))
        for i in range(70_000):
            limiter.allow(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 0.0)
        assert len(limiter._addresses.buckets) <= 65_536
        assert len(limiter._prefix_of) <= 65_536

    def test_a_network_shares_one_prefix_bucket(self) -> None:
        """Many addresses of one /24 together get the prefix's allowance, no more."""
        limiter = RateLimiter(address=Limit(1.0, 5), prefix=Limit(1.0, 20))
        verdicts = [limiter.allow(f"192.0.2.{i}", 0.0) for i in range(1, 101)]
        assert verdicts.count(None) == 20
        assert set(verdicts[20:]) == {"prefix"}
        assert limiter.allow("192.0.3.1", 0.0) is None  # the next /24 is another network

    def test_a_dropped_datagram_charges_no_bucket(self) -> None:
        """A datagram the prefix limit drops does not use up its address's tokens."""
        limiter = RateLimiter(address=Limit(1.0, 3), prefix=Limit(1.0, 1))
        assert limiter.allow("192.0.2.1", 0.0) is None
        assert [limiter.allow("192.0.2.2", 0.0) for _ in range(3)] == ["prefix"] * 3
        assert limiter._addresses.buckets["192.0.2.2"][0] == 3.0

    def test_the_global_cap_holds_across_networks(self) -> None:
        """The cap over all sources drops what many networks together send beyond it."""
        limiter = RateLimiter(address=Limit(100.0, 100), total=Limit(10.0, 50))
        verdicts = [limiter.allow(f"10.{i}.0.1", 0.0) for i in range(200)]
        assert verdicts.count(None) == 50
        assert set(verdicts[50:]) == {"global"}
        assert [limiter.allow("10.0.0.1", 1.0) for _ in range(11)] == [None] * 10 + ["global"]

    @pytest.mark.parametrize(
        ("a", "b", "same"),
        [
            ("192.0.2.1", "192.0.2.254", True),
            ("192.0.2.1", "192.0.3.1", False),
            ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", True),
            ("2001:db8:1:2::1", "2001:db8:1:3::1", False),
            ("::ffff:192.0.2.1", "192.0.2.9", True),
            ("fe80::1%eth0", "fe80::2%eth1", True),
            ("not-an-address", "not-an-address-either", False),
        ],
    )
    def test_network_prefixes(self, a: str, b: str, same: bool) -> None:
        """Addresses in one /24 (IPv4) or /64 (IPv6) share a network; others do not."""
        assert (network_prefix(a) == network_prefix(b)) is same

    def test_prefix_lengths_are_configurable(self) -> None:
        """With /16 and /48, wider networks share one bucket."""
        assert network_prefix("10.1.2.3", 16) == network_prefix("10.1.200.3", 16)
        assert network_prefix("10.1.2.3", 16) != network_prefix("10.2.2.3", 16)
        assert network_prefix("2001:db8:1:2::1", 24, 48) == network_prefix(
            "2001:db8:1:ff::1", 24, 48
        )


@pytest.mark.slow
class TestRateLimitedCollector:
    def test_a_flooding_source_is_limited_and_counted(self, tmp_path: Any) -> None:
        """With --rate, a source beyond its burst is dropped and counted as rate-limited."""
        from _collector_support import CollectorProcess

        collector = CollectorProcess(tmp_path, "--rate", "1", "--burst", "20").start()
        try:
            collector.send(*(datagram(start_message()) for _ in range(200)))
            metrics = collector.wait_processed(20)
            limited = metrics["telemetry_collector_rate_limited_total"]
            assert metrics["telemetry_collector_accepted_total"] + limited == 200
            assert 150 <= limited <= 180  # 20 in the burst, plus about one a second
            assert collector.get("/api/stats?product=minflow").json()["runs"] == 200 - limited
        finally:
            collector.stop()


class TestPackage:
    def test_public_names(self) -> None:
        """The collector's public names are listed, sorted, in ``__all__`` and importable."""
        import telemetry_sdk.collector as collector

        assert collector.__all__ == sorted(collector.__all__)
        for name in collector.__all__:
            assert getattr(collector, name) is not None

    def test_core_and_cli_do_not_import_the_collector(self) -> None:
        """`import telemetry_sdk` and the CLI module never import the collector or orjson."""
        code = (
            "import sys, telemetry_sdk, telemetry_sdk.cli, telemetry_sdk._collector_cli; "
            "print(sorted(m for m in sys.modules "
            "if m.startswith('telemetry_sdk.collector') or m == 'orjson'))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        )
        assert result.stdout.strip() == "[]"

    def test_cli_defaults_are_loopback(self) -> None:
        """Unless told otherwise the collector listens on loopback only, with a rate limit."""
        import argparse

        from telemetry_sdk._collector_cli import add_collector_parsers
        from telemetry_sdk.collector._commands import settings_from_args

        parser = argparse.ArgumentParser()
        add_collector_parsers(parser.add_subparsers())
        settings = settings_from_args(parser.parse_args(["collector"]))
        assert settings.udp == ("127.0.0.1", 50077)
        assert settings.http == ("127.0.0.1", 8000)
        assert (settings.rate, settings.burst) == (20, 200)
        assert settings.admin_token is None


class TestDefaultRateLimit:
    def test_one_source_cannot_flood_a_collector_with_default_settings(self, tmp_path: Any) -> None:
        """Out of the box, a source gets its burst and then 20 datagrams/s; the rest is counted."""
        import socket

        from telemetry_sdk.collector import Collector, CollectorSettings

        settings = CollectorSettings(
            udp=("127.0.0.1", 0), http=None, db=tmp_path / "r.db", writer_process=False
        )
        began = time.monotonic()
        with Collector(settings) as collector, socket.socket(type=socket.SOCK_DGRAM) as sock:
            for _ in range(1000):
                sock.sendto(datagram(start_message()), collector.udp_address)
            deadline = time.monotonic() + 10
            while collector.metrics.received < 1000 and time.monotonic() < deadline:
                time.sleep(0.01)
            elapsed = time.monotonic() - began
        summary = collector.metrics.summary()
        assert summary["received"] == 1000
        assert summary["accepted"] + summary["rate_limited"] == 1000
        assert 200 <= summary["accepted"] <= 200 + 20 * elapsed + 1
        assert summary["written"] == summary["accepted"]


class TestEmbedded:
    @pytest.mark.parametrize("writer_process", [False, True])
    def test_embedded_collector_writes_what_it_accepted(
        self, tmp_path: Any, writer_process: bool
    ) -> None:
        """A Collector embedded in a program stores every datagram it accepted by stop()."""
        import socket

        from telemetry_sdk.collector import Collector, CollectorSettings, SQLiteStore

        settings = CollectorSettings(
            udp=("127.0.0.1", 0),
            http=None,
            db=tmp_path / "e.db",
            writer_process=writer_process,
            rate=0,
        )
        messages = [start_message(project_name="embedded") for _ in range(300)]
        with Collector(settings) as collector, socket.socket(type=socket.SOCK_DGRAM) as sock:
            for message in messages:
                sock.sendto(datagram(message), collector.udp_address)
            sock.sendto(b"junk", collector.udp_address)
            deadline = time.monotonic() + 10
            while collector.metrics.received < 301 and time.monotonic() < deadline:
                time.sleep(0.01)
        assert collector.metrics.summary() == {
            "received": 301, "accepted": 300, "written": 300, "rejected": 1,
            "rate_limited": 0, "queue_dropped": 0, "lost": 0,
        }  # fmt: skip
        store = SQLiteStore.open(tmp_path / "e.db", readonly=True)
        try:
            assert store.leaderboard("minflow") == [
                {"rank": 1, "project": "embedded", "points": 300, "runs": 300}
            ]
        finally:
            store.close()
