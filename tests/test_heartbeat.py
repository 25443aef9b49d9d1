"""Heartbeats: a level-3 run still open after each interval sends a progress message."""

from __future__ import annotations

import gc
import json
import math
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path

import pytest

from telemetry_sdk import Config, ConfigurationError, Product, UsageTracker, _transport
from telemetry_sdk._locallog import read_log
from telemetry_sdk._timer import Timer
from telemetry_sdk._wire import CloseMessage, ProgressMessage, StartMessage, decode
from telemetry_sdk.testing import UDPListener, capture_datagrams

REPO = Path(__file__).resolve().parent.parent
#: The shortest interval allowed, so the tests wait as little as they can.
INTERVAL = 1.0


def product(listener: UDPListener) -> Product:
    return Product(name="minflow", version="1.4.0", endpoint=listener.endpoint)


def config(log: Path, *, level: int = 3, interval: float | None = INTERVAL) -> Config:
    return Config(
        usage_tracking=level, project_name="proj-x", log_path=log, heartbeat_interval=interval
    )


def progress(listener: UDPListener, correlator: str) -> list[ProgressMessage]:
    return [
        m
        for m in listener.messages()
        if isinstance(m, ProgressMessage) and m.correlator == correlator
    ]


def wait_for_progress(
    listener: UDPListener, correlator: str, count: int, timeout: float = 5.0
) -> list[ProgressMessage]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = progress(listener, correlator)
        if len(found) >= count:
            return found
        time.sleep(0.02)
    return progress(listener, correlator)


@pytest.fixture
def listener():
    with capture_datagrams() as listening:
        yield listening


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "usage.jsonl"


class TestConfig:
    @pytest.mark.parametrize("value", [1, 1.0, 2.5, 3600, 86400.0, None])
    def test_accepted_intervals(self, value):
        """Seconds >= 1 (int or float) and None are accepted; numbers are kept as floats."""
        interval = Config(heartbeat_interval=value).heartbeat_interval
        assert interval == value
        assert interval is None or type(interval) is float

    def test_the_default_is_an_hour(self):
        """Without a value, a run beats once an hour."""
        assert Config().heartbeat_interval == 3600.0

    @pytest.mark.parametrize(
        "value", [0, 0.5, 0.999, -1, True, False, "60", math.nan, math.inf, [60]]
    )
    def test_bad_intervals_raise_configuration_error(self, value):
        """Below 1 s, not a number, a bool or not finite: a ConfigurationError naming the rule."""
        with pytest.raises(ConfigurationError, match="heartbeat_interval must be"):
            Config(heartbeat_interval=value)


class TestProgressMessages:
    @pytest.mark.slow
    def test_an_open_run_sends_numbered_progress_with_its_counts(self, listener, log):
        """After each interval: same correlator, version and level, seq 1, 2, time and counts."""
        tracker = UsageTracker(config(log), product(listener))
        tracker.start()
        tracker.record_app()
        tracker.record_app(failed=True)
        (first,) = wait_for_progress(listener, tracker.correlator, 1)
        for _ in range(3):
            tracker.record_app()
        found = wait_for_progress(listener, tracker.correlator, 2)
        tracker.close()
        second = found[1]
        assert (first.heartbeat, second.heartbeat) == (1, 2)
        for message in (first, second):
            assert (message.product, message.version) == ("minflow", "1.4.0")
            assert message.tracking_level == 3
            assert message.project_name == "proj-x"
        assert (first.app_count, first.app_fails) == (2, 1)
        assert (second.app_count, second.app_fails) == (5, 1)
        assert 1.0 <= first.execution_time < 1.9
        assert 2.0 <= second.execution_time < 2.9
        assert round(second.execution_time, 3) == second.execution_time
        close = [m for m in listener.wait_for(4) if decode(m).correlator == tracker.correlator]
        assert isinstance(decode(close[-1]), CloseMessage)

    @pytest.mark.slow
    def test_each_heartbeat_is_logged_with_payload_and_outcome(self, listener, log):
        """The log holds each progress message's exact datagram and its outcome, by number."""
        tracker = UsageTracker(config(log), product(listener))
        tracker.start()
        wait_for_progress(listener, tracker.correlator, 2)
        tracker.close()
        sent = listener.datagrams
        records = [r for r in read_log(log) if r["kind"] == "progress"]
        payloads = [r for r in records if r["event"] == "payload"]
        outcomes = [r for r in records if r["event"] == "outcome"]
        assert [r["seq"] for r in payloads][:2] == [1, 2]
        assert [r["seq"] for r in outcomes][:2] == [1, 2]
        assert all(r["outcome"] == "sent" for r in outcomes)
        for record in payloads[:2]:
            datagram = record["payload"].encode()
            assert datagram in sent
            assert len(datagram) <= 1232

    @pytest.mark.slow
    def test_a_closed_run_sends_no_more_heartbeats(self, listener, log):
        """close() before the first interval: start and close arrive, and nothing after."""
        with UsageTracker(config(log), product(listener)) as tracker:
            tracker.record_app()
        time.sleep(INTERVAL + 0.5)
        kinds = [type(m) for m in listener.messages() if m.correlator == tracker.correlator]
        assert kinds == [StartMessage, CloseMessage]

    @pytest.mark.slow
    @pytest.mark.parametrize(("level", "interval"), [(1, INTERVAL), (2, INTERVAL), (3, None)])
    def test_no_heartbeats_below_level_3_or_without_an_interval(
        self, listener, log, level, interval
    ):
        """Levels 1 and 2 never beat; neither does level 3 with heartbeat_interval=None."""
        tracker = UsageTracker(config(log, level=level, interval=interval), product(listener))
        tracker.start()
        time.sleep(INTERVAL + 0.5)
        assert progress(listener, tracker.correlator) == []
        tracker.close()
        assert not any(r["kind"] == "progress" for r in read_log(log))

    @pytest.mark.slow
    def test_many_open_runs_share_the_one_worker(self, listener, log):
        """Twenty open runs each beat, with no thread added beyond the worker."""
        first = UsageTracker(config(log), product(listener))
        first.start()
        assert _transport.flush(2.0)
        threads = threading.active_count()
        trackers = [UsageTracker(config(log), product(listener)) for _ in range(20)]
        for tracker in trackers:
            tracker.start()
        for tracker in [first, *trackers]:
            assert len(wait_for_progress(listener, tracker.correlator, 1)) >= 1
        assert threading.active_count() == threads
        for tracker in [first, *trackers]:
            tracker.close()

    @pytest.mark.slow
    def test_preview_mode_prints_heartbeats_and_sends_none(
        self, listener, log, monkeypatch, capsys
    ):
        """With _DEBUG=1 each heartbeat is printed and logged as preview, never sent."""
        monkeypatch.setenv("MINFLOW_USAGE_TRACKING_DEBUG", "1")
        tracker = UsageTracker(config(log), product(listener))
        tracker.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
            r["kind"] == "progress" and r["event"] == "outcome" for r in read_log(log)
        ):
            time.sleep(0.05)
        tracker.close()
        assert listener.datagrams == []
        outcomes = [r for r in read_log(log) if r["kind"] == "progress" and r["event"] == "outcome"]
        assert outcomes
        assert outcomes[0]["outcome"] == "preview"
        assert "minflow progress message, not sent" in capsys.readouterr().err


class TestCommand:
    @pytest.mark.slow
    def test_telemetry_sdk_log_shows_each_heartbeat_with_its_outcome(self, listener, log):
        """'telemetry-sdk log' joins each numbered heartbeat with its own outcome."""
        tracker = UsageTracker(config(log), product(listener))
        tracker.start()
        wait_for_progress(listener, tracker.correlator, 2)
        tracker.close()
        shown = subprocess.run(
            [sys.executable, "-m", "telemetry_sdk", "log", "--path", str(log)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.splitlines()
        beats = [line for line in shown if " progress " in line]
        assert " progress 1 " in beats[0]
        assert " progress 2 " in beats[1]
        assert all(" sent level 3 " in line for line in beats[:2])


EXIT_SCRIPT = """
import sys, time
from telemetry_sdk import Config, Product, UsageTracker
product = Product(name="minflow", version="1.4.0", endpoint=sys.argv[1])
config = Config(usage_tracking=3, log_path=sys.argv[2], heartbeat_interval=1.0)
tracker = UsageTracker(config, product)
tracker.start()
tracker.record_app()
time.sleep(float(sys.argv[3]))
began = time.monotonic()
if sys.argv[4] == "close":
    tracker.close()
print(time.monotonic() - began)
"""


@pytest.mark.slow
class TestExit:
    def run(self, listener: UDPListener, log: Path, sleep: float, close: str) -> None:
        """Run the script: start, one app, ``sleep`` seconds, then close() or not."""
        subprocess.run(
            [
                sys.executable,
                "-c",
                textwrap.dedent(EXIT_SCRIPT),
                listener.endpoint,
                str(log),
                str(sleep),
                close,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )

    def test_a_run_left_open_sends_its_heartbeat_then_its_close_at_exit(self, listener, log):
        """Exit without close(): start, the heartbeat so far and the close, each logged."""
        self.run(listener, log, 1.4, "no-close")
        messages = [decode(d) for d in listener.wait_for(3)]
        assert [type(m) for m in messages] == [StartMessage, ProgressMessage, CloseMessage]
        assert messages[1].app_count == 1
        records = read_log(log)
        assert [(r["kind"], r["event"]) for r in records] == [
            (kind, event)
            for kind in ("start", "progress", "close")
            for event in ("payload", "outcome")
        ]

    def test_close_as_a_heartbeat_comes_due_leaves_no_heartbeat_after_it(self, listener, log):
        """close() at the moment a heartbeat is due: the close is the run's last message."""
        self.run(listener, log, INTERVAL, "close")
        listener.wait_for(2)
        time.sleep(0.2)
        messages = [decode(d) for d in listener.datagrams]
        assert isinstance(messages[0], StartMessage)
        assert isinstance(messages[-1], CloseMessage)
        assert all(isinstance(m, ProgressMessage) for m in messages[1:-1])
        records = read_log(log)
        payloads = [(r["kind"], r.get("seq")) for r in records if r["event"] == "payload"]
        outcomes = [(r["kind"], r.get("seq")) for r in records if r["event"] == "outcome"]
        assert payloads == outcomes
        assert payloads[-1] == ("close", None)


FORK_SCRIPT = """
import os, sys, time
from telemetry_sdk import Config, Product, UsageTracker
product = Product(name="minflow", version="1.4.0", endpoint=sys.argv[1])
config = Config(usage_tracking=3, log_path=sys.argv[2], heartbeat_interval=1.0)
tracker = UsageTracker(config, product)
tracker.start()
pid = os.fork()
if pid == 0:
    time.sleep(1.5)   # the parent's run is not the child's: no heartbeat from here
    os._exit(0)
time.sleep(1.5)
os.waitpid(pid, 0)
tracker.close()
"""


@pytest.mark.slow
class TestFork:
    def test_a_forked_child_sends_none_of_the_parents_heartbeats(self, listener, log):
        """Only the parent beats for its run: one heartbeat, not one per process."""
        subprocess.run(
            [sys.executable, "-c", FORK_SCRIPT, listener.endpoint, str(log)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        listener.wait_for(3)
        time.sleep(0.2)
        kinds = [type(decode(d)) for d in listener.datagrams]
        assert kinds == [StartMessage, ProgressMessage, CloseMessage]


class TestOneTimer:
    def test_items_come_due_in_order_and_are_rescheduled(self):
        """Each item is due at its time, then one interval later."""
        timer: Timer[str] = Timer()
        timer.add("a", 10.0, 5.0)
        timer.add("b", 12.0, 1.0)
        assert timer.wait(0.0) == 10.0
        assert timer.due(9.9) == []
        assert timer.due(10.0) == ["a"]
        assert timer.due(12.0) == ["b"]
        assert timer.wait(12.0) == 1.0
        assert timer.due(15.0) == ["b", "a"]

    def test_missed_beats_are_skipped_not_repeated(self):
        """An item far behind is due once, then on its schedule after now."""
        timer: Timer[str] = Timer()
        timer.add("a", 1.0, 1.0)
        assert timer.due(5.5) == ["a"]
        assert timer.wait(5.5) == 0.5

    def test_cancel_stops_an_item_and_nothing_means_no_wait(self):
        """A cancelled item is never due; with nothing scheduled the wait is None."""
        timer: Timer[str] = Timer()
        timer.add("a", 1.0, 1.0)
        timer.cancel("a")
        timer.cancel("never added")
        assert timer.due(10.0) == []
        assert timer.wait(10.0) is None
        assert len(timer) == 0

    def test_cancelled_items_are_not_kept_alive(self):
        """The timer lets go of a cancelled item at once (a closed run is freed)."""

        class Run:
            pass

        timer: Timer[Run] = Timer()
        runs = [Run() for _ in range(500)]
        refs = [weakref.ref(r) for r in runs]
        for i, r in enumerate(runs):
            timer.add(r, 1000.0 + i, 3600.0)
        for r in runs:
            timer.cancel(r)
        del runs, r
        gc.collect()
        assert all(ref() is None for ref in refs)
        assert len(timer._heap) <= 64


class TestWire:
    def test_round_trip(self):
        """A progress message decodes to itself."""
        from telemetry_sdk._wire import encode

        message = ProgressMessage(
            correlator="7c886a00-1111-4222-8333-444455556666",
            product="minflow",
            version="1.4.0",
            tracking_level=3,
            project_name="p" * 64,
            heartbeat=2**31 - 1,
            execution_time=31_536_000.0,
            app_count=2**31 - 1,
            app_fails=2**31 - 1,
        )
        payload, same = encode(message)
        assert same is message
        assert decode(payload) == message
        assert len(payload) <= 1232
        data = json.loads(payload[1:])
        assert list(data) == [
            "correlator",
            "minflow_v",
            "tracking_level",
            "project_name",
            "heartbeat",
            "execution_time",
            "app_count",
            "app_fails",
        ]

    @pytest.mark.parametrize(
        ("change", "reason"),
        [
            ({"tracking_level": 2}, "tracking_level 3"),
            ({"heartbeat": 0}, "heartbeat must be"),
            ({"app_fails": 3}, "more than app_count"),
            ({"app_count": -1}, "app_count must be"),
            ({"execution_time": -1.0}, "execution_time"),
        ],
    )
    def test_bad_progress_messages_are_refused(self, change, reason):
        """Wrong level, sequence, counts or time: a DecodeError saying which."""
        from telemetry_sdk import DecodeError

        data = {
            "correlator": "7c886a00-1111-4222-8333-444455556666",
            "minflow_v": "1.4.0",
            "tracking_level": 3,
            "heartbeat": 1,
            "execution_time": 1.5,
            "app_count": 2,
            "app_fails": 1,
            **change,
        }
        with pytest.raises(DecodeError, match=reason):
            decode(b"1" + json.dumps(data).encode())

    def test_a_progress_message_needs_its_product_version(self):
        """Without '<product>_v' a progress message is refused (unlike Parsl's close)."""
        from telemetry_sdk import DecodeError

        data = {
            "correlator": "7c886a00-1111-4222-8333-444455556666",
            "tracking_level": 3,
            "heartbeat": 1,
            "execution_time": 1.5,
            "app_count": 2,
            "app_fails": 1,
        }
        with pytest.raises(DecodeError):
            decode(b"1" + json.dumps(data).encode())
