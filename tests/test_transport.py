"""Delivery: resolution under a deadline, refused and unreachable destinations, exit paths."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from telemetry_sdk import Config, Product, UsageTracker, _transport
from telemetry_sdk._locallog import read_log
from telemetry_sdk._wire import decode
from telemetry_sdk.testing import capture_datagrams

REPO = Path(__file__).resolve().parent.parent


def outcomes(log: Path, correlator: str) -> list[tuple[str, str, str | None]]:
    return [
        (r["kind"], r["outcome"], r.get("reason"))
        for r in read_log(log, correlator)
        if r["event"] == "outcome"
    ]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "usage.jsonl"


@pytest.fixture
def fake_resolver(monkeypatch):
    """Resolve the reserved name ``collector.test`` to 127.0.0.1 without any DNS traffic."""
    real = socket.getaddrinfo
    calls: list[str] = []

    def resolve(host, port, *args, **kwargs):
        calls.append(host)
        if host == "collector.test":
            return real("127.0.0.1", port, *args, **kwargs)
        if host == "unknown.test":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        raise AssertionError(f"unexpected look-up of {host!r}")

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return calls


class TestResolution:
    def test_a_host_name_is_resolved_once_per_process(self, fake_resolver, log):
        """Two runs to the same host name look it up once, and both are delivered."""
        _transport._state.resolutions.pop(_endpoint("collector.test"), None)
        with capture_datagrams() as listener:
            endpoint = f"udp://collector.test:{listener.port}"
            product = Product(name="minflow", version="1.0", endpoint=endpoint)
            for _ in range(2):
                with UsageTracker(Config(usage_tracking=3, log_path=log), product):
                    pass
            assert len(listener.wait_for(4)) == 4
        assert fake_resolver == ["collector.test"]

    def test_a_name_that_does_not_resolve_is_a_logged_failure(self, fake_resolver, log):
        """A failed look-up is an outcome in the log, for start and close, not an exception."""
        product = Product(name="minflow", version="1.0", endpoint="udp://unknown.test:50077")
        with UsageTracker(Config(usage_tracking=3, log_path=log), product) as tracker:
            pass
        result = outcomes(log, tracker.correlator)
        assert [(kind, outcome) for kind, outcome, _ in result] == [
            ("start", "failed"),
            ("close", "failed"),
        ]
        assert all("name resolution failed" in (reason or "") for _, _, reason in result)
        assert fake_resolver == ["unknown.test"]

    def test_ip_literals_are_not_looked_up(self, fake_resolver, log):
        """An IP-literal endpoint never calls the resolver."""
        with capture_datagrams() as listener:
            product = Product(name="minflow", version="1.0", endpoint=listener.endpoint)
            with UsageTracker(Config(usage_tracking=1, log_path=log), product):
                pass
            assert len(listener.wait_for(1)) == 1
        assert fake_resolver == []


class TestUnreachable:
    def test_refused_destination_does_not_affect_the_host(self, log):
        """Sending to a closed port on 127.0.0.1 (ICMP refused) is logged, never raised."""
        product = Product(name="minflow", version="1.0", endpoint="udp://127.0.0.1:9")
        began = time.monotonic()
        for _ in range(3):
            with UsageTracker(Config(usage_tracking=3, log_path=log), product) as tracker:
                tracker.record_app()
        assert time.monotonic() - began < 3.0
        result = outcomes(log, tracker.correlator)
        assert [kind for kind, _, _ in result] == ["start", "close"]
        for _, outcome, reason in result:
            assert outcome in {"sent", "failed"}
            assert outcome == "sent" or "Errno" in (reason or "")

    def test_ipv6_destination_without_listener_is_handled(self, log):
        """An IPv6 loopback destination works or fails cleanly, whatever the machine's IPv6."""
        product = Product(name="minflow", version="1.0", endpoint="udp://[::1]:9")
        with UsageTracker(Config(usage_tracking=1, log_path=log), product) as tracker:
            pass
        ((kind, outcome, _),) = outcomes(log, tracker.correlator)
        assert kind == "start"
        assert outcome in {"sent", "failed"}


class TestQueue:
    def test_a_full_queue_drops_and_logs_dropped(self, log, monkeypatch):
        """When the queue is full the message is dropped, counted and logged as dropped."""
        with capture_datagrams() as listener:
            product = Product(name="minflow", version="1.0", endpoint=listener.endpoint)
            monkeypatch.setattr(_transport, "MAX_QUEUE", 0)
            dropped_before = _transport._state.dropped
            first = UsageTracker(Config(usage_tracking=1, log_path=log), product)
            first.start()
            assert _transport._state.dropped == dropped_before + 1
            monkeypatch.setattr(_transport, "MAX_QUEUE", 1000)
            with UsageTracker(Config(usage_tracking=1, log_path=log), product) as second:
                pass
            first.close()
            assert [decode(d).correlator for d in listener.wait_for(1)] == [second.correlator]
        assert outcomes(log, first.correlator) == [
            ("start", "dropped", "queue full (1000 messages waiting)")
        ]

    def test_flush_waits_for_queued_messages(self, log):
        """flush() returns True once everything queued so far was handled."""
        with capture_datagrams() as listener:
            product = Product(name="minflow", version="1.0", endpoint=listener.endpoint)
            trackers = [
                UsageTracker(Config(usage_tracking=1, log_path=log), product) for _ in range(20)
            ]
            for tracker in trackers:
                tracker.start()
            assert _transport.flush(5.0)
            handled = [r for r in read_log(log) if r["event"] == "outcome"]
            assert len(handled) == 20
            assert len(listener.wait_for(20)) == 20
            for tracker in trackers:
                tracker.close()

    def test_the_worker_is_a_single_daemon_thread(self, log):
        """All sending happens on one daemon thread, whatever the number of runs."""
        with capture_datagrams() as listener:
            product = Product(name="minflow", version="1.0", endpoint=listener.endpoint)
            for _ in range(5):
                with UsageTracker(Config(usage_tracking=3, log_path=log), product):
                    pass
        workers = [t for t in threading.enumerate() if t.name == "telemetry-sdk-worker"]
        assert len(workers) == 1
        assert workers[0].daemon


class TestPreview:
    def test_preview_mode_prints_and_logs_without_sending(self, log, monkeypatch, capsys):
        """In preview mode each message is printed and logged as preview; nothing is sent."""
        monkeypatch.setenv("MINFLOW_USAGE_TRACKING_DEBUG", "1")
        with capture_datagrams() as listener:
            product = Product(name="minflow", version="1.0", endpoint=listener.endpoint)
            with UsageTracker(Config(usage_tracking=3, log_path=log), product) as tracker:
                assert tracker.decision is not None
                assert tracker.decision.debug
            assert listener.wait_for(1, timeout=0.3) == []
        records = read_log(log, tracker.correlator)
        printed = capsys.readouterr().err
        for record in records:
            if record["event"] == "payload":
                assert record["payload"] in printed
        assert [r["outcome"] for r in records if r["event"] == "outcome"] == [
            "preview",
            "preview",
        ]


class TestLogFailure:
    def test_unwritable_log_still_sends(self, tmp_path, caplog):
        """If the log file cannot be written, the message is still sent and a warning logged."""
        blocker = tmp_path / "file"
        blocker.write_text("not a directory")
        with capture_datagrams() as listener:
            product = Product(name="minflow", version="1.0", endpoint=listener.endpoint)
            config = Config(usage_tracking=1, log_path=blocker / "usage.jsonl")
            with UsageTracker(config, product):
                pass
            assert len(listener.wait_for(1)) == 1
        assert any("cannot write the usage log" in r.getMessage() for r in caplog.records)


def _endpoint(host: str) -> object:
    from telemetry_sdk._config import Endpoint

    return Endpoint(host, 50077)


HANGING_RESOLVER = """
    import json, socket, sys, time
    def never_answers(*args, **kwargs):
        time.sleep(3600)
    socket.getaddrinfo = never_answers
    from telemetry_sdk import Config, Product, UsageTracker
    product = Product(name="minflow", version="1.0", endpoint="udp://collector.test:50077")
    tracker = UsageTracker(Config(usage_tracking=3, log_path=sys.argv[1]), product)
    began = time.monotonic()
    tracker.start()
    tracker.record_app()
    started = time.monotonic() - began
    if sys.argv[2] == "close":
        began = time.monotonic()
        tracker.close()
        print(json.dumps({"start": started, "close": time.monotonic() - began}))
    else:
        print(json.dumps({"start": started}))
"""


@pytest.mark.slow
class TestHangingResolver:
    @pytest.mark.parametrize("ending", ["close", "exit"])
    def test_exit_stays_bounded_when_dns_never_answers(self, log, ending):
        """With a resolver that never answers, start, close and process exit stay bounded."""
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        began = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(HANGING_RESOLVER), str(log), ending],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            check=False,
        )
        elapsed = time.monotonic() - began
        assert result.returncode == 0, result.stderr
        timings = json.loads(result.stdout)
        assert timings["start"] < 0.1
        assert timings.get("close", 0.0) < 1.5
        assert elapsed < 3.0
        records = [r for r in read_log(log) if r["event"] == "outcome"]
        assert [(r["kind"], r["outcome"]) for r in records] == [
            ("start", "failed"),
            ("close", "failed"),
        ]
        # Python 3.12+ cannot start the resolver thread once the main thread has ended.
        assert records[0]["reason"].startswith(
            ("name resolution timed out", "name not resolved before exit")
        )


EXIT_WITHOUT_WORKER = """
    import sys
    from telemetry_sdk import Config, Product, UsageTracker, _transport
    def no_threads(state):
        return False
    _transport._start_worker = no_threads  # as if threads could not be started
    product = Product(name="minflow", version="1.0", endpoint=sys.argv[1])
    tracker = UsageTracker(Config(usage_tracking=3, log_path=sys.argv[2]), product)
    tracker.start()
    tracker.record_app(failed=True)
"""

EXIT_UNRESOLVED = """
    import socket, sys, threading
    from telemetry_sdk import Config, Product, UsageTracker, _transport
    def no_threads(state):
        return False
    _transport._start_worker = no_threads
    def must_not_resolve(*args, **kwargs):
        raise AssertionError("resolved at exit")
    socket.getaddrinfo = must_not_resolve
    product = Product(name="minflow", version="1.0", endpoint="udp://collector.test:50077")
    tracker = UsageTracker(Config(usage_tracking=3, log_path=sys.argv[1]), product)
    tracker.start()
"""


@pytest.mark.slow
class TestExitWithoutWorker:
    def test_messages_are_sent_directly_when_no_thread_can_start(self, log):
        """Without a worker (as during interpreter exit) both messages are sent inline."""
        with capture_datagrams() as listener:
            result = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    textwrap.dedent(EXIT_WITHOUT_WORKER),
                    listener.endpoint,
                    str(log),
                ],
                capture_output=True,
                text=True,
                timeout=20,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                check=False,
            )
            assert result.returncode == 0, result.stderr
            start, close = (decode(d) for d in listener.wait_for(2))
        assert dict(close.components[0].info) == {"app_count": 1, "app_fails": 1}
        assert start.correlator == close.correlator

    def test_a_name_is_never_resolved_at_exit(self, log):
        """At exit an unresolved host name is logged as failed instead of looked up."""
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(EXIT_UNRESOLVED), str(log)],
            capture_output=True,
            text=True,
            timeout=20,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "resolved at exit" not in result.stderr
        records = [r for r in read_log(log) if r["event"] == "outcome"]
        assert [(r["kind"], r["outcome"], r["reason"]) for r in records] == [
            ("start", "failed", "name not resolved before exit"),
            ("close", "failed", "name not resolved before exit"),
        ]
        payloads = [json.loads(r["payload"][1:]) for r in read_log(log) if r["event"] == "payload"]
        assert [("end" in p) for p in payloads] == [False, True]


class TestTestingHelpers:
    def test_listener_collects_decodes_and_releases_its_port(self, log):
        """capture_datagrams() hands out a loopback endpoint and closes it afterwards."""
        with capture_datagrams() as listener:
            assert listener.endpoint.startswith("udp://127.0.0.1:")
            product = Product(name="minflow", version="1.0", endpoint=listener.endpoint)
            with UsageTracker(Config(usage_tracking=3, log_path=log), product) as tracker:
                pass
            assert len(listener.wait_for(2)) == 2
            assert [m.correlator for m in listener.messages()] == [tracker.correlator] * 2
            port = listener.port
        rebound = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rebound.bind(("127.0.0.1", port))
        finally:
            rebound.close()
        assert not any(t.name == "telemetry-sdk-test-listener" for t in threading.enumerate())

    def test_listener_is_released_when_the_block_raises(self):
        """The listener's socket and thread are released even if the test body fails."""
        with pytest.raises(KeyError), capture_datagrams() as listener:
            raise KeyError("boom")
        assert listener._sock is not None
        assert listener._sock.fileno() == -1

    def test_wait_for_returns_what_arrived_by_the_deadline(self):
        """wait_for() does not raise on a timeout; it returns what arrived."""
        with capture_datagrams() as listener:
            began = time.monotonic()
            assert listener.wait_for(1, timeout=0.1) == []
            assert time.monotonic() - began < 2.0


FIFO_HOST = """
    import json, sys, time
    from telemetry_sdk import Config, Product, UsageTracker
    product = Product(name="minflow", version="1.0", endpoint=sys.argv[1])
    closes = []
    for _ in range(20):
        with UsageTracker(Config(usage_tracking=3, log_path=sys.argv[2]), product) as tracker:
            tracker.record_app()
            began = time.monotonic()
        closes.append(time.monotonic() - began)
    print(json.dumps(sorted(closes)))
"""


@pytest.mark.slow
class TestLogNeverBlocks:
    def test_a_fifo_log_path_is_refused_and_every_message_still_goes_out(self, tmp_path):
        """With a FIFO nobody reads as the log, all 40 datagrams are sent, close() does not wait,
        and one warning says why nothing is written."""
        fifo = tmp_path / "usage.jsonl"
        os.mkfifo(fifo)
        with capture_datagrams() as listener:
            result = subprocess.run(
                [sys.executable, "-c", textwrap.dedent(FIFO_HOST), listener.endpoint, str(fifo)],
                capture_output=True,
                text=True,
                timeout=30,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                check=False,
            )
            assert result.returncode == 0, result.stderr
            assert len(listener.wait_for(40)) == 40
        closes = json.loads(result.stdout)
        assert closes[len(closes) // 2] < 0.1
        assert result.stderr.count("cannot write the usage log") == 1
        assert "a FIFO" in result.stderr

    def test_sending_and_close_do_not_wait_for_a_stalled_log_write(self, log, monkeypatch):
        """While a log write hangs (a stalled filesystem), datagrams still go out and close()
        returns promptly; the lines are written once the filesystem answers again."""
        from telemetry_sdk import _logfile

        stalled = threading.Event()
        release = threading.Event()
        real_append = _logfile.LogFile.append

        def hung_append(self, data):
            stalled.set()
            release.wait(30)
            real_append(self, data)

        monkeypatch.setattr(_logfile.LogFile, "append", hung_append)
        try:
            with capture_datagrams() as listener:
                product = Product(name="minflow", version="1.0", endpoint=listener.endpoint)
                timings = []
                for _ in range(5):
                    tracker = UsageTracker(Config(usage_tracking=3, log_path=log), product)
                    tracker.start()
                    began = time.monotonic()
                    tracker.close()
                    timings.append(time.monotonic() - began)
                assert stalled.is_set()
                assert len(listener.wait_for(10)) == 10
            assert max(timings) < 0.4
            assert not log.exists() or read_log(log) == []
        finally:
            release.set()
        assert _transport._state.log.flush(5.0, stall=None)
        assert [r["event"] for r in read_log(log)].count("outcome") == 10
