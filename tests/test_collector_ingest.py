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
    def test_a_repeated_key_is_caught_even_when_the_rest_is_cached(self) -> None:
        """A clean message fills the caches; its twin with a repeated key is still refused."""
        clean = bad_close(app_count=7, app_fails=0)
        assert fast_parse(clean, RECEIVED) is not None
        text = clean.decode()
        for twin in (
            text.replace('"app_fails": 0', '"app_fails": 9, "app_fails": 0'),
            text.replace('"end":', '"end": 1, "end":'),
        ):
            assert fast_parse(twin.encode(), RECEIVED) is None
            assert parse_result(twin.encode()) == "duplicate_key"

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


CORRELATOR = "3b3f2a52-5c1e-4e55-9a43-0c1b1b0f6d61"


def bad_close(**changes: Any) -> bytes:
    """A Parsl-style close datagram with ``changes`` (``app_count``/``app_fails`` go inside)."""
    counts = {"app_count": 4, "app_fails": 1}
    for key in ("app_count", "app_fails"):
        if key in changes:
            counts[key] = changes.pop(key)
    data = {
        "correlator": CORRELATOR,
        "end": RECEIVED - 5,
        "execution_time": 2,
        "components": [{"c": "parsl.dataflow.dflow.DataFlowKernel", **counts}],
        **changes,
    }
    return b"1" + json.dumps(data).encode()


#: Values that broke no rule before the schema had bounds (issue 8, finding 4), each with
#: the reason it is now rejected for.
BOUNDS_CORPUS: list[tuple[str, bytes, str]] = [
    ("negative count", bad_close(app_count=-5), "count"),
    ("count of 2**64", bad_close(app_count=2**64), "count"),
    ("count of 2**31", bad_close(app_count=2**31), "count"),
    ("fails of 2**53", bad_close(app_count=2**53, app_fails=2**53), "count"),
    ("bool count", bad_close(app_count=True), "count"),
    ("bool fails", bad_close(app_fails=False), "count"),
    ("fails over count", bad_close(app_count=3, app_fails=4), "fails_over_count"),
    ("UUID version 1", bad_close(correlator="2f1e5a40-af61-11ef-9cd2-0242ac120002"), "correlator"),
    ("all-zero UUID", bad_close(correlator="00000000-0000-0000-0000-000000000000"), "correlator"),
    ("1970", bad_close(end=86_400), "timestamp"),
    ("2099", bad_close(end=4_070_908_800), "timestamp"),
    ("over a day ahead", bad_close(end=RECEIVED + 86_401), "timestamp"),
    ("over a year", bad_close(execution_time=31_536_001), "duration"),
    ("bool duration", bad_close(execution_time=True), "duration"),
    (
        "duplicate key",
        b'1{"correlator": "3b3f2a52-5c1e-4e55-9a43-0c1b1b0f6d61", "end": 1795305790, '
        b'"execution_time": 2, "end": 1795305791}',
        "duplicate_key",
    ),
    (
        "duplicate key in a component",
        b'1{"correlator":"3b3f2a52-5c1e-4e55-9a43-0c1b1b0f6d61","end":1795305790,'
        b'"execution_time":2,"components":[{"c":"x","app_count":5,"app_fails":0,"app_count":1}]}',
        "duplicate_key",
    ),
]


class TestBoundsCorpus:
    @pytest.mark.parametrize(("name", "payload", "reason"), BOUNDS_CORPUS)
    def test_the_sdk_decoder_rejects_with_the_reason(
        self, name: str, payload: bytes, reason: str
    ) -> None:
        """Each out-of-bounds datagram is rejected by the one schema, for its own reason."""
        assert slow(payload) == reason, name
        assert fast_parse(payload, RECEIVED) is None
        assert parse_result(payload) == reason

    def test_the_same_close_within_bounds_is_accepted(self) -> None:
        """The corpus' base message is valid: only the changed value is rejected."""
        record = parse(bad_close(), RECEIVED)
        assert (record.app_count, record.app_fails) == (4, 1)
        assert fast_parse(bad_close(), RECEIVED) == record


class Counted:
    """A component whose usage information is whatever the test says."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info

    def usage_information(self) -> dict[str, Any]:
        return self.info


class TestSenderMatchesCollector:
    @settings(max_examples=300, deadline=None)
    @given(
        apps=st.integers(0, 2**70),
        fails=st.integers(0, 2**70),
        seconds=st.floats(allow_nan=True, allow_infinity=True),
        wall=st.floats(0, 2**33, allow_nan=False),
        info=st.dictionaries(
            st.sampled_from(["app_count", "app_fails", "n", "c", "bad key"]),
            st.integers(-(2**64), 2**64) | st.booleans() | st.floats() | st.text(max_size=5),
            max_size=4,
        ),
    )
    def test_the_sdk_never_sends_what_its_collector_rejects(
        self, apps: int, fails: int, seconds: float, wall: float, info: dict[str, Any]
    ) -> None:
        """Whatever the counts, run time, clock and component details, the collector accepts."""
        from telemetry_sdk import Config, Product
        from telemetry_sdk._collect import build_close, build_start
        from telemetry_sdk._config import Level
        from telemetry_sdk._wire import encode
        from telemetry_sdk._wire_rules import EPOCH_MAX, EPOCH_MIN

        product = Product(name="minflow", version="1.0", endpoint="udp://127.0.0.1:9")
        config = Config(usage_tracking=3, components=[Counted(info)])
        correlator = str(uuid.uuid4())
        clock_ok = EPOCH_MIN <= int(wall) < EPOCH_MAX
        received = int(wall) if clock_ok else RECEIVED
        start, _ = encode(build_start(product, config, Level.EXECUTION, correlator, wall))
        assert parse(start, received).start == (int(wall) if clock_ok else None)
        if not clock_ok:
            return  # a close needs an end time; with no sane clock nothing is built
        close_message, _ = encode(
            build_close(
                product, config, correlator,
                end=wall, execution_time=seconds, app_count=apps, app_fails=fails,
            )
        )  # fmt: skip
        record = parse(close_message, received)
        assert record.app_count == min(apps, 2**31 - 1)
        assert record.app_fails == min(fails, record.app_count)

    def test_a_component_reporting_bad_counts_is_named_without_them(self) -> None:
        """Details that break the count rules are left out; the component is still named."""
        from telemetry_sdk._collect import describe

        for info in ({"app_count": -1}, {"app_count": 1, "app_fails": 2}, {"app_fails": True}):
            component = describe(Counted(info))
            assert component.name.endswith("Counted")
            assert component.info == {}


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
            metrics = wait_settled(collector, 200)
            limited = limited_by(metrics)["address"]
            assert metrics["telemetry_collector_accepted_total"] + limited == 200
            assert 150 <= limited <= 180  # 20 in the burst, plus about one a second
            assert collector.get("/api/stats?product=minflow").json()["runs"] == 200 - limited
        finally:
            collector.stop()


def send_from(source: str, target: tuple[str, int], payloads: list[bytes]) -> None:
    """Send ``payloads`` from a socket bound to ``source`` (any 127.x.y.z is this machine)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        for payload in payloads:
            sock.sendto(payload, target)


def wait_settled(collector: Any, sent: int) -> dict[str, float]:
    """Wait until every datagram sent was received and then limited, rejected or written."""
    from _collector_support import wait_for

    def settled() -> dict[str, float] | None:
        m = collector.metrics()
        handled = sum(
            v for k, v in m.items()
            if k.startswith(("telemetry_collector_rejected_total",
                             "telemetry_collector_rate_limited_total"))
        ) + m["telemetry_collector_accepted_total"]  # fmt: skip
        done = (
            m["telemetry_collector_received_total"] == sent
            and handled == sent
            and m["telemetry_collector_written_total"] == m["telemetry_collector_accepted_total"]
        )
        return m if done else None

    return wait_for(settled, 20, f"{sent} datagrams to settle")


def limited_by(metrics: dict[str, float]) -> dict[str, float]:
    return {
        limit: metrics[f'telemetry_collector_rate_limited_total{{limit="{limit}"}}']
        for limit in ("address", "prefix", "global")
    }


@pytest.mark.slow
class TestLimitsOnARealCollector:
    def test_many_addresses_of_one_network_share_its_limit(self, tmp_path: Any) -> None:
        """100 addresses of one /24, each within its own limit, together get the /24's only."""
        from _collector_support import CollectorProcess

        collector = CollectorProcess(
            tmp_path, "--rate", "5", "--burst", "10", "--prefix-rate", "1",
            "--prefix-burst", "50", "--global-rate", "0",
        ).start()  # fmt: skip
        sources = [f"127.0.0.{i}" for i in range(2, 102)]
        try:
            began = time.monotonic()
            for source in sources:
                send_from(source, collector.udp, [datagram(start_message()) for _ in range(10)])
            metrics = wait_settled(collector, 1000)
            elapsed = time.monotonic() - began
            accepted = metrics["telemetry_collector_accepted_total"]
            assert 50 <= accepted <= 50 + elapsed + 1
            assert limited_by(metrics) == {"address": 0, "prefix": 1000 - accepted, "global": 0}
            assert collector.get("/api/stats?product=minflow").json()["runs"] == accepted
        finally:
            assert collector.stop() == 0
        log = collector.log()
        assert not [s for s in sources if s in log]

    def test_the_global_cap_holds_across_networks(self, tmp_path: Any) -> None:
        """Twenty /24s, each within its own limits, are held together to the global cap."""
        from _collector_support import CollectorProcess

        collector = CollectorProcess(
            tmp_path, "--rate", "100", "--burst", "100", "--global-rate", "1",
            "--global-burst", "60",
        ).start()  # fmt: skip
        sources = [f"127.0.{i}.1" for i in range(1, 21)]
        try:
            began = time.monotonic()
            for source in sources:
                send_from(source, collector.udp, [datagram(start_message()) for _ in range(20)])
            metrics = wait_settled(collector, 400)
            elapsed = time.monotonic() - began
            accepted = metrics["telemetry_collector_accepted_total"]
            assert 60 <= accepted <= 60 + elapsed + 1
            assert limited_by(metrics) == {"address": 0, "prefix": 0, "global": 400 - accepted}
        finally:
            assert collector.stop() == 0
        log = collector.log()
        assert not [s for s in sources if s in log]

    def test_each_out_of_bounds_value_is_rejected_and_counted(self, tmp_path: Any) -> None:
        """Every datagram of the bounds corpus is refused by a real collector, by reason."""
        from _collector_support import CollectorProcess

        collector = CollectorProcess(tmp_path).start()
        try:
            # The corpus' times are relative to RECEIVED; rebase them on the collector's clock.
            shift = int(time.time()) - RECEIVED
            payloads = [rebase(payload, shift) for _, payload, _ in BOUNDS_CORPUS]
            collector.send(*payloads, bad_close(end=RECEIVED - 5 + shift))
            metrics = collector.wait_processed(len(payloads) + 1)
            expected: dict[str, float] = {}
            for _, _, reason in BOUNDS_CORPUS:
                expected[reason] = expected.get(reason, 0) + 1
            found = {
                name.split('"')[1]: value
                for name, value in metrics.items()
                if name.startswith("telemetry_collector_rejected_total{") and value
            }
            assert found == expected
            assert metrics["telemetry_collector_accepted_total"] == 1
        finally:
            assert collector.stop() == 0

    def test_a_huge_failure_count_cannot_poison_the_failure_rate(self, tmp_path: Any) -> None:
        """A close claiming 2**53 failures is rejected; the product's failure rate stays true."""
        from _collector_support import CollectorProcess, wait_for

        collector = CollectorProcess(tmp_path).start()
        try:
            honest = start_message(tracking_level=3, start=int(time.time()) - 10)
            collector.send(datagram(honest), datagram(close_message(
                honest.correlator, end=int(time.time()),
                components=(Component("minflow", {"app_count": 10, "app_fails": 1}),),
            )))  # fmt: skip
            attacker = start_message(tracking_level=3, start=int(time.time()) - 10)
            poison = json.loads(
                datagram(close_message(attacker.correlator, end=int(time.time())))[1:]
            )
            poison["components"][0].update(app_count=2**53, app_fails=2**53)
            collector.send(datagram(attacker), b"1" + json.dumps(poison).encode())
            metrics = collector.wait_processed(4)
            assert metrics['telemetry_collector_rejected_total{reason="count"}'] == 1
            stats = wait_for(
                lambda: (
                    (s := collector.get("/api/stats?product=minflow").json())["apps"]["runs"] and s
                )
            )
            assert stats["apps"] == {"runs": 1, "apps": 10, "failures": 1, "failure_rate": 0.1}
        finally:
            assert collector.stop() == 0


def rebase(payload: bytes, shift: int) -> bytes:
    """``payload`` with its close time moved by ``shift`` seconds (when it is near RECEIVED)."""
    for near in (RECEIVED - 5, RECEIVED + 86_401, 1795305790):
        payload = payload.replace(str(near).encode(), str(near + shift).encode())
    return payload


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
        limiter = settings.rate_limiter()
        assert (limiter.address, limiter.prefix, limiter.total) == (
            Limit(20, 200), Limit(200, 2000), Limit(20_000, 100_000)
        )  # fmt: skip
        assert (limiter.ipv4_prefix, limiter.ipv6_prefix) == (24, 64)

    def test_cli_sets_every_rate_limit(self) -> None:
        """Each limit has a flag; prefix limits follow --rate/--burst unless given."""
        from telemetry_sdk.collector._cli import build_parser, settings_from_args

        parser = build_parser()

        def limiter(*flags: str) -> RateLimiter:
            return settings_from_args(parser.parse_args(["collector", *flags])).rate_limiter()

        assert limiter("--rate", "0").enabled is True  # the global cap stays
        assert limiter("--rate", "0", "--global-rate", "0").enabled is False
        assert limiter("--rate", "3", "--burst", "4").prefix == Limit(30, 40)
        custom = limiter(
            "--prefix-rate", "7", "--prefix-burst", "8", "--ipv4-prefix", "16",
            "--ipv6-prefix", "48", "--global-rate", "9", "--global-burst", "10",
        )  # fmt: skip
        assert (custom.prefix, custom.total) == (Limit(7, 8), Limit(9, 10))
        assert (custom.ipv4_prefix, custom.ipv6_prefix) == (16, 48)
        for bad in (["--ipv4-prefix", "33"], ["--ipv6-prefix", "0"], ["--global-burst", "0"]):
            with pytest.raises(SystemExit):
                parser.parse_args(["collector", *bad])


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
            assert [r.to_json() for r in store.leaderboard("minflow")] == [
                {"rank": 1, "project": "embedded", "points": 300, "runs": 300}
            ]
        finally:
            store.close()
