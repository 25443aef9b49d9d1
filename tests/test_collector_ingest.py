"""Decoding on the collector: the fast path agrees with the SDK's decoder; the rate limit."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from typing import Any

import orjson
import pytest
from _collector_support import close_message, datagram, start_message
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry_sdk._errors import DecodeError
from telemetry_sdk._wire import Component, decode
from telemetry_sdk.collector._ingest import fast_parse, parse, record_from_message
from telemetry_sdk.collector._ratelimit import RateLimiter

RECEIVED = 1_795_305_800


def slow(data: bytes) -> Any:
    """What ``_wire.decode`` with orjson (as the collector is told to decode) makes of it."""
    try:
        return record_from_message(decode(data, loads=orjson.loads), RECEIVED)
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
component_names = st.sampled_from(["minflow.Config", "x.Executor", "a b", "", "é.Ü", "\n"])
components = st.lists(
    st.one_of(
        component_names,
        st.fixed_dictionaries(
            {"c": component_names},
            optional={
                "app_count": st.integers(-2, 5) | st.booleans(),
                "app_fails": st.integers(-2, 5),
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
    correlator = draw(st.sampled_from([str(uuid.uuid4()), "not-a-uuid", str(uuid.uuid4()).upper()]))
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
            data[key] = draw(json_values | st.sampled_from([0, 1, 3, 4, 1.5, -1, True, "1.0"]))
        elif action == "drop":
            data.pop(key, None)
        else:
            data["components"] = draw(components)
    return data


class TestFastPath:
    @settings(max_examples=600, deadline=None)
    @given(wire_dicts(), st.sampled_from([b"1", b""]))
    def test_agrees_with_the_sdk_decoder(self, data: dict[str, Any], prefix: bytes) -> None:
        """The fast path accepts only what the SDK's decoder accepts, with the same record."""
        payload = prefix + json.dumps(data).encode()
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


class TestRateLimiter:
    def test_burst_then_rate(self) -> None:
        """A source may send a burst at once, then only at the sustained rate."""
        limiter = RateLimiter(rate=4.0, burst=5)
        assert [limiter.allow("a", 100.0) for _ in range(7)] == [True] * 5 + [False] * 2
        assert limiter.allow("a", 100.125) is False  # half a token so far
        assert limiter.allow("a", 100.25) is True
        assert [limiter.allow("a", 200.0) for _ in range(6)] == [True] * 5 + [False]

    def test_sources_are_independent(self) -> None:
        """One flooding source does not use up another's allowance."""
        limiter = RateLimiter(rate=1.0, burst=2)
        for _ in range(10):
            limiter.allow("flood", 0.0)
        assert limiter.allow("other", 0.0) is True

    def test_zero_disables(self) -> None:
        """A rate of 0 turns the limit off."""
        assert RateLimiter(rate=0.0, burst=1).enabled is False

    def test_memory_is_bounded(self) -> None:
        """Spoofed source addresses cannot grow the limiter without bound."""
        limiter = RateLimiter(rate=1.0, burst=1)
        for i in range(70_000):
            limiter.allow(i, 0.0)
        assert len(limiter._buckets) <= 65_536


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
        """Importing the package and the CLI, or parsing a collector command, loads no collector."""
        code = (
            "import sys, telemetry_sdk, telemetry_sdk.cli; "
            "telemetry_sdk.cli.build_parser().parse_args(['collector', '--udp', '127.0.0.1:0']); "
            "print(sorted(m for m in sys.modules "
            "if m.startswith('telemetry_sdk.collector') or m == 'orjson'))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        )
        assert result.stdout.strip() == "[]"

    def test_cli_defaults_are_loopback(self) -> None:
        """Unless told otherwise the collector listens on loopback only, with a rate limit."""
        from telemetry_sdk.collector._cli import build_parser, settings_from_args

        settings = settings_from_args(build_parser().parse_args(["collector"]))
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
            "rate_limited": 0, "deleted_run": 0, "kernel_dropped": 0, "queue_dropped": 0,
            "write_lost": 0, "stop_lost": 0, "lost": 0,
        }  # fmt: skip
        store = SQLiteStore.open(tmp_path / "e.db", readonly=True)
        try:
            assert store.leaderboard("minflow") == [
                {"rank": 1, "project": "embedded", "points": 300, "runs": 300}
            ]
        finally:
            store.close()
