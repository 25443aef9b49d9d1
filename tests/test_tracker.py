"""UsageTracker end to end: what a listener on 127.0.0.1 receives, and what the log says."""

from __future__ import annotations

import getpass
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import attrs
import pytest

from telemetry_sdk import (
    Config,
    ConfigurationError,
    Level,
    Product,
    UsageTracker,
    _consent,
    _transport,
    _wire,
)
from telemetry_sdk._locallog import read_log
from telemetry_sdk._wire import CloseMessage, StartMessage, decode
from telemetry_sdk.testing import UDPListener, capture_datagrams

REPO = Path(__file__).resolve().parent.parent


@attrs.define
class Provider:
    nodes: int = 2

    def usage_information(self) -> dict[str, int]:
        return {"nodes": self.nodes}


@attrs.define
class Executor:
    provider: Provider = attrs.Factory(Provider)


def product(listener: UDPListener) -> Product:
    return Product(name="minflow", version="1.4.0", endpoint=listener.endpoint)


def run(listener: UDPListener, log: Path, level: int, *, apps: int = 0, fails: int = 0) -> str:
    config = Config(
        usage_tracking=level, project_name="proj-x", components=[Executor()], log_path=log
    )
    with UsageTracker(config, product(listener)) as tracker:
        for i in range(apps):
            tracker.record_app(failed=i < fails)
    return tracker.correlator


def keys(datagram: bytes) -> set[str]:
    assert datagram[:1] == b"1"
    return set(json.loads(datagram[1:]))


@pytest.fixture
def listener():
    with capture_datagrams() as listening:
        yield listening


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "usage.jsonl"


class TestLevels:
    def test_level_1_sends_versions_only(self, listener, log):
        """Level 1: one start datagram with versions and platform; no components, no times."""
        correlator = run(listener, log, 1)
        (datagram,) = listener.wait_for(1)
        assert keys(datagram) == {
            "correlator",
            "minflow_v",
            "python_v",
            "platform.system",
            "tracking_level",
            "project_name",
        }
        message = decode(datagram)
        assert isinstance(message, StartMessage)
        assert (message.correlator, message.version, message.tracking_level) == (
            correlator,
            "1.4.0",
            1,
        )
        assert listener.wait_for(2, timeout=0.3) == [datagram]

    def test_level_2_adds_component_names(self, listener, log):
        """Level 2: the start datagram adds the component walk, still no times, no close."""
        run(listener, log, 2, apps=3)
        (datagram,) = listener.wait_for(1)
        assert "components" in keys(datagram)
        assert "start" not in keys(datagram)
        assert json.loads(datagram[1:])["components"] == [
            f"{__name__}.Executor",
            {"c": f"{__name__}.Provider", "nodes": 2},
        ]
        assert len(listener.wait_for(2, timeout=0.3)) == 1

    def test_level_3_sends_start_and_close_with_counts(self, listener, log):
        """Level 3: start with a start time, close with app counts first, one correlator."""
        correlator = run(listener, log, 3, apps=5, fails=2)
        start, close = (decode(d) for d in listener.wait_for(2))
        assert isinstance(start, StartMessage)
        assert isinstance(close, CloseMessage)
        assert start.correlator == close.correlator == correlator
        assert start.start is not None
        assert abs(start.start - time.time()) < 60
        assert close.components[0].name == "minflow"
        assert dict(close.components[0].info) == {"app_count": 5, "app_fails": 2}
        assert [c.name for c in close.components[1:]] == [c.name for c in start.components or ()]
        assert (close.product, close.version, close.tracking_level) == ("minflow", "1.4.0", 3)
        assert 0.0 <= close.execution_time < 5.0
        assert close.project_name == "proj-x"

    def test_level_0_sends_and_logs_nothing(self, listener, log):
        """Level 0: no datagram and no log file."""
        run(listener, log, 0, apps=3)
        assert listener.wait_for(1, timeout=0.3) == []
        assert not log.exists()

    @pytest.mark.parametrize("level", [1, 2, 3])
    def test_every_datagram_is_logged_verbatim_as_sent(self, listener, log, level):
        """Each received payload is in the log, byte for byte, followed by outcome 'sent'."""
        correlator = run(listener, log, level)
        received = listener.wait_for(2 if level == 3 else 1)
        records = read_log(log, correlator)
        payloads = [r["payload"].encode() for r in records if r["event"] == "payload"]
        assert payloads == received
        outcomes = [(r["kind"], r["outcome"]) for r in records if r["event"] == "outcome"]
        kinds = ["start", "close"] if level == 3 else ["start"]
        assert outcomes == [(kind, "sent") for kind in kinds]
        assert {r["destination"] for r in records if r["event"] == "payload"} == {listener.endpoint}

    def test_project_name_is_absent_when_unset(self, listener, log):
        """Without a project name the key is left out of both messages."""
        config = Config(usage_tracking=3, log_path=log)
        with UsageTracker(config, product(listener)):
            pass
        assert all("project_name" not in keys(d) for d in listener.wait_for(2))


class TestLifecycle:
    def test_explicit_start_and_close(self, listener, log):
        """start() and close() without a with block send the same two messages."""
        tracker = UsageTracker(Config(usage_tracking=3, log_path=log), product(listener))
        tracker.start()
        tracker.record_app()
        tracker.close()
        received = [type(decode(d)).__name__ for d in listener.wait_for(2)]
        assert received == ["StartMessage", "CloseMessage"]

    def test_close_is_idempotent_and_start_once(self, listener, log):
        """A second start() or close() sends nothing more."""
        tracker = UsageTracker(Config(usage_tracking=3, log_path=log), product(listener))
        tracker.start()
        tracker.start()
        tracker.close()
        tracker.close()
        assert len(listener.wait_for(3, timeout=0.3)) == 2

    def test_close_without_start_sends_nothing(self, listener, log):
        """A tracker that never started has no run to close."""
        UsageTracker(Config(usage_tracking=3, log_path=log), product(listener)).close()
        assert listener.wait_for(1, timeout=0.3) == []

    def test_level_and_decision(self, listener, log):
        """The tracker reports its effective level and why."""
        tracker = UsageTracker(Config(usage_tracking=2, log_path=log), product(listener))
        assert tracker.level is Level.COMPONENTS
        assert tracker.decision is not None
        assert tracker.decision.level == Level.COMPONENTS
        assert UsageTracker(Config(), product(listener)).level is Level.OFF

    def test_each_run_has_a_fresh_uuid(self, listener):
        """Two trackers never share a correlator."""
        first = UsageTracker(Config(usage_tracking=1), product(listener)).correlator
        second = UsageTracker(Config(usage_tracking=1), product(listener)).correlator
        assert first != second
        assert len(first) == 36

    def test_wrong_argument_types_raise_configuration_error(self, listener):
        """Passing a dict instead of a Config is a configuration error, at once."""
        with pytest.raises(ConfigurationError, match=r"telemetry_sdk\.Config"):
            UsageTracker({"usage_tracking": 3}, product(listener))  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match=r"telemetry_sdk\.Product"):
            UsageTracker(Config(), "minflow")  # type: ignore[arg-type]

    def test_default_log_path_is_under_xdg_state_home(self, listener):
        """Without log_path, messages go to $XDG_STATE_HOME/<product>/usage.jsonl."""
        tracker = UsageTracker(Config(usage_tracking=1), product(listener))
        with tracker:
            pass
        path = Path(os.environ["XDG_STATE_HOME"]) / "minflow" / "usage.jsonl"
        assert [r["event"] for r in read_log(path, tracker.correlator)] == ["payload", "outcome"]

    def test_start_is_announced_once_with_how_to_turn_it_off(self, listener, log, caplog):
        """The first message of a process says where it goes, where it is logged, how to stop."""
        caplog.set_level(logging.INFO, logger="telemetry_sdk")
        _transport._state.announced.discard("minflow")
        run(listener, log, 1)
        run(listener, log, 1)
        listener.wait_for(2)
        _transport.flush()
        announcements = [r.getMessage() for r in caplog.records if "is on at level" in r.message]
        assert len(announcements) == 1
        for part in (listener.endpoint, str(log), "MINFLOW_USAGE_TRACKING=0", "DO_NOT_TRACK=1"):
            assert part in announcements[0]
        assert "telemetry-sdk disable --product minflow" in announcements[0]

    def test_messages_are_on_the_logger(self, listener, log, caplog):
        """Every payload and outcome is also an INFO record of the telemetry_sdk logger."""
        caplog.set_level(logging.INFO, logger="telemetry_sdk")
        correlator = run(listener, log, 3)
        lines = [r.getMessage() for r in caplog.records if correlator in r.getMessage()]
        assert len(lines) == 4
        assert lines[1].endswith(": sent")


class TestLevelZero:
    def test_nothing_is_started_opened_or_written(self, listener, monkeypatch):
        """Level 0 starts no thread, creates no socket and writes no file."""
        created: list[object] = []

        class CountingSocket(socket.socket):
            def __init__(self, *args, **kwargs):
                created.append(args)
                super().__init__(*args, **kwargs)

        monkeypatch.setattr(socket, "socket", CountingSocket)
        threads_before = set(threading.enumerate())
        state = Path(os.environ["XDG_STATE_HOME"])
        with UsageTracker(Config(usage_tracking=0), product(listener)) as tracker:
            tracker.record_app()
            tracker.record_app(failed=True)
        assert created == []
        assert set(threading.enumerate()) <= threads_before
        assert not state.exists() or not any(state.rglob("*"))

    def test_decision_says_the_config_turned_it_off(self, listener, monkeypatch):
        """At level 0 the decision names the config, without consulting anything else."""
        monkeypatch.setenv("DO_NOT_TRACK", "1")
        tracker = UsageTracker(Config(usage_tracking=0), product(listener))
        assert tracker.level is Level.OFF
        assert tracker.decision is not None
        assert tracker.decision.decided_by == "config"
        assert not any("DO_NOT_TRACK" in line for line in tracker.decision.sources)

    def test_outside_setting_of_zero_builds_nothing(self, listener, monkeypatch):
        """When consent lowers the level to 0, the tracker does nothing either."""
        monkeypatch.setenv("DO_NOT_TRACK", "1")
        tracker = UsageTracker(Config(usage_tracking=3), product(listener))
        assert tracker.level is Level.OFF
        assert tracker._run is None
        with tracker:
            tracker.record_app()
        assert listener.wait_for(1, timeout=0.3) == []


class TestConcurrency:
    def test_many_threads_recording_apps_are_all_counted(self, listener, log):
        """Apps recorded from 16 threads at once are counted exactly."""
        tracker = UsageTracker(Config(usage_tracking=3, log_path=log), product(listener))
        barrier = threading.Barrier(16)

        def work(index: int) -> None:
            barrier.wait()
            for i in range(2000):
                tracker.record_app(failed=(i % 4 == 0))

        with tracker:
            threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        close = decode(listener.wait_for(2)[-1])
        assert isinstance(close, CloseMessage)
        assert dict(close.components[0].info) == {"app_count": 32000, "app_fails": 8000}

    def test_many_trackers_in_parallel_each_deliver(self, listener, log):
        """Runs started from several threads at once each deliver their own two messages."""
        correlators: list[str] = []

        def one() -> None:
            correlators.append(run(listener, log, 3, apps=1))

        threads = [threading.Thread(target=one) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        messages = [decode(d) for d in listener.wait_for(16)]
        assert sorted(m.correlator for m in messages) == sorted(correlators * 2)


class RaisingComponent:
    def usage_information(self) -> dict[str, int]:
        raise RuntimeError("cannot describe")


@attrs.define
class Loop:
    me: object = None


class TestBadComponents:
    def test_raising_and_self_referential_components_are_named(self, listener, log):
        """A component that raises or contains itself is sent by name; the host sees nothing."""
        loop = Loop()
        loop.me = [loop, loop]
        config = Config(usage_tracking=3, components=[RaisingComponent(), loop], log_path=log)
        with UsageTracker(config, product(listener)):
            pass
        start, close = (json.loads(d[1:]) for d in listener.wait_for(2))
        expected = [f"{__name__}.RaisingComponent", f"{__name__}.Loop"]
        assert start["components"] == expected
        assert close["components"][1:] == expected

    def test_oversized_component_list_fits_one_datagram(self, listener, log):
        """Hundreds of long component names are truncated to 1,232 bytes and flagged."""
        classes = [type("Component" + "X" * 150 + str(i), (), {}) for i in range(300)]
        config = Config(usage_tracking=3, components=[cls() for cls in classes], log_path=log)
        with UsageTracker(config, product(listener)):
            pass
        datagrams = listener.wait_for(2)
        assert len(datagrams) == 2
        for datagram in datagrams:
            assert len(datagram) <= 1232
            assert json.loads(datagram[1:])["components_truncated"] is True


class TestPrivacy:
    def test_no_host_user_or_path_in_any_payload(self, listener, log):
        """Payloads carry no host name, user name, home directory or working directory."""
        run(listener, log, 3, apps=2, fails=1)
        text = b"".join(listener.wait_for(2)).decode()
        forbidden = {socket.gethostname(), str(Path.home()), os.getcwd(), str(REPO)}
        user = getpass.getuser()
        assert all(item not in text for item in forbidden)
        assert f'"{user}"' not in text
        assert "/" not in text  # no path of any kind


class TestGuard:
    def test_failure_inside_tracking_does_not_reach_the_host(
        self, listener, log, swallowing_guard, monkeypatch, caplog
    ):
        """A bug in message building is logged once as a warning and swallowed."""

        def broken(*args, **kwargs):
            raise RuntimeError("boom")

        monkeypatch.setattr(_wire, "encode", broken)
        with UsageTracker(Config(usage_tracking=3, log_path=log), product(listener)) as tracker:
            tracker.record_app()
        assert listener.wait_for(1, timeout=0.3) == []
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "boom" in warnings[0].getMessage()

    def test_failing_consent_turns_tracking_off(self, listener, swallowing_guard, monkeypatch):
        """If deciding the level fails, tracking is off and the host goes on."""

        def broken(*args, **kwargs):
            raise OSError("settings unreadable")

        monkeypatch.setattr(_consent, "decide", broken)
        with UsageTracker(Config(usage_tracking=3), product(listener)) as tracker:
            tracker.record_app()
        assert tracker.level is Level.OFF
        assert listener.wait_for(1, timeout=0.3) == []


def run_script(code: str, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if "_USAGE_TRACKING" not in k}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


SCRIPT_HEAD = """
    import os, sys, time
    from telemetry_sdk import Config, Product, UsageTracker
    endpoint, log = sys.argv[1], sys.argv[2]
    PRODUCT = Product(name="minflow", version="1.4.0", endpoint=endpoint)
"""

#: Python 3.12's rule, on any version: no thread starts once the main thread has finished.
NO_THREADS_AFTER_MAIN = """
    import threading
    finished = []
    shutdown, thread_start = threading._shutdown, threading.Thread.start
    def no_threads_after_main(self):
        if finished:
            raise RuntimeError("can't create new thread at interpreter shutdown")
        thread_start(self)
    def main_finished():
        finished.append(True)
        shutdown()
    threading.Thread.start = no_threads_after_main
    threading._shutdown = main_finished
"""


@pytest.mark.slow
class TestExit:
    def test_close_is_sent_when_the_script_forgets_close(self, listener, log):
        """A level-3 script that never calls close() still delivers its close message."""
        result = run_script(
            SCRIPT_HEAD
            + """
    tracker = UsageTracker(Config(usage_tracking=3, log_path=log), PRODUCT)
    tracker.start()
    tracker.record_app(); tracker.record_app(failed=True)
    print(tracker.correlator)
""",
            listener.endpoint,
            str(log),
        )
        assert result.returncode == 0, result.stderr
        start, close = (decode(d) for d in listener.wait_for(2))
        assert start.correlator == close.correlator == result.stdout.strip()
        assert isinstance(close, CloseMessage)
        assert dict(close.components[0].info) == {"app_count": 2, "app_fails": 1}
        outcomes = [r["outcome"] for r in read_log(log) if r["event"] == "outcome"]
        assert outcomes == ["sent", "sent"]

    def test_a_script_that_ends_at_once_still_resolves_and_sends(self, listener, log):
        """With a host name endpoint, start() then an immediate exit delivers both messages.

        On Python 3.12+ no thread can be started once the main thread has finished, so the
        worker may have to look the name up itself.
        """
        endpoint = listener.endpoint.replace("127.0.0.1", "localhost")
        result = run_script(
            SCRIPT_HEAD
            + NO_THREADS_AFTER_MAIN
            + """
    UsageTracker(Config(usage_tracking=3, log_path=log), PRODUCT).start()
""",
            endpoint,
            str(log),
        )
        assert result.returncode == 0, result.stderr
        messages = [decode(d) for d in listener.wait_for(2)]
        assert [type(m) for m in messages] == [StartMessage, CloseMessage]
        outcomes = [r["outcome"] for r in read_log(log) if r["event"] == "outcome"]
        assert outcomes == ["sent", "sent"]

    def test_a_hanging_resolver_at_exit_without_threads_keeps_exit_bounded(self, listener, log):
        """Python 3.12's rule and a resolver that never answers: the process still exits at once."""
        result = run_script(
            SCRIPT_HEAD
            + NO_THREADS_AFTER_MAIN
            + """
    import socket
    socket.getaddrinfo = lambda *args, **kwargs: time.sleep(3600)
    UsageTracker(Config(usage_tracking=3, log_path=log), PRODUCT).start()
    print(time.monotonic())
""",
            "udp://collector.invalid:50077",
            str(log),
        )
        exited = time.monotonic()
        assert result.returncode == 0, result.stderr
        assert exited - float(result.stdout) < 2.0
        assert [r["kind"] for r in read_log(log) if r["event"] == "payload"][:1] == ["start"]

    def test_close_is_sent_when_the_host_dropped_the_tracker(self, listener, log):
        """A started tracker the host no longer references still sends its close at exit."""
        result = run_script(
            SCRIPT_HEAD
            + """
    import gc
    def run():
        tracker = UsageTracker(Config(usage_tracking=3, log_path=log), PRODUCT)
        tracker.start()
        tracker.record_app()
        return tracker.correlator
    print(run())
    gc.collect()
""",
            listener.endpoint,
            str(log),
        )
        assert result.returncode == 0, result.stderr
        messages = [decode(d) for d in listener.wait_for(2)]
        assert [type(m) for m in messages] == [StartMessage, CloseMessage]
        assert {m.correlator for m in messages} == {result.stdout.strip()}

    def test_example_workflow_delivers_both_messages(self, listener, tmp_path):
        """examples/run_workflow.py reports its three apps and one failure at level 3."""
        env = {**os.environ, "XDG_STATE_HOME": str(tmp_path)}
        result = subprocess.run(
            [sys.executable, str(REPO / "examples" / "run_workflow.py"), listener.endpoint],
            capture_output=True,
            text=True,
            timeout=20,
            env=env,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        start, close = (decode(d) for d in listener.wait_for(2))
        assert isinstance(close, CloseMessage)
        assert start.project_name == close.project_name == "minflow-demo"
        assert dict(close.components[0].info) == {"app_count": 3, "app_fails": 1}
        assert start.components is not None
        assert start.components[0].name == "minflow.config.Config"
        log = tmp_path / "minflow" / "usage.jsonl"
        assert len(read_log(log, start.correlator)) == 4


@pytest.mark.slow
class TestFork:
    def test_child_does_not_send_parents_close_and_its_own_tracker_works(self, listener, log):
        """After fork, only the parent closes its run; a run started in the child works."""
        result = run_script(
            SCRIPT_HEAD
            + """
    parent = UsageTracker(Config(usage_tracking=3, log_path=log), PRODUCT)
    parent.start()
    parent.record_app()
    pid = os.fork()
    if pid == 0:
        parent.record_app(); parent.record_app()
        parent.close()  # not the child's run: does nothing
        child = UsageTracker(Config(usage_tracking=3, log_path=log), PRODUCT)
        with child:
            child.record_app(failed=True)
        print("child", child.correlator, flush=True)
        sys.exit(0)  # runs the exit hook in the child too
    _, status = os.waitpid(pid, 0)
    parent.record_app()
    parent.close()
    print("parent", parent.correlator, os.waitstatus_to_exitcode(status), flush=True)
""",
            listener.endpoint,
            str(log),
        )
        assert result.returncode == 0, result.stderr
        lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
        parent_id, child_exit = lines["parent"].split()
        child_id = lines["child"]
        assert child_exit == "0"
        messages = [decode(d) for d in listener.wait_for(4)]
        assert len(listener.wait_for(5, timeout=0.3)) == 4
        closes = {m.correlator: m for m in messages if isinstance(m, CloseMessage)}
        starts = {m.correlator for m in messages if isinstance(m, StartMessage)}
        assert starts == {parent_id, child_id}
        assert set(closes) == {parent_id, child_id}
        assert len(messages) == 4
        assert dict(closes[parent_id].components[0].info) == {"app_count": 2, "app_fails": 0}
        assert dict(closes[child_id].components[0].info) == {"app_count": 1, "app_fails": 1}


#: Workers that each leave a run open; the pool (or process) then ends normally.
MULTIPROCESSING_HOST = """
import multiprocessing, os, sys
from telemetry_sdk import Config, Product, UsageTracker

_run = None


def leave_a_run_open(endpoint, log):
    global _run
    if _run is None:
        product = Product(name="minflow", version="1.4.0", endpoint=endpoint)
        _run = UsageTracker(Config(usage_tracking=3, log_path=log), product)
        _run.start()
        os.write(1, f"{_run.correlator}\\n".encode())  # one write: workers share stdout
    _run.record_app()
    return os.getpid()


if __name__ == "__main__":
    method, shape, endpoint, log = sys.argv[1:5]
    context = multiprocessing.get_context(method)
    if shape == "pool":
        pool = context.Pool(3)
        pool.starmap(leave_a_run_open, [(endpoint, log)] * 12, chunksize=1)
        pool.close()
        pool.join()
    elif shape == "executor":
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(3, mp_context=context) as executor:
            list(executor.map(leave_a_run_open, [endpoint] * 12, [log] * 12))
    else:
        workers = [context.Process(target=leave_a_run_open, args=(endpoint, log)) for _ in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
"""


@pytest.mark.slow
class TestMultiprocessing:
    @pytest.mark.parametrize("shape", ["pool", "executor", "process"])
    @pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
    def test_runs_left_open_in_workers_send_their_close(
        self, listener, log, tmp_path, method, shape
    ):
        """A run left open in a worker sends its close when the worker ends normally: a pool's
        close()/join(), a ProcessPoolExecutor's shutdown or a Process returning, under every
        start method."""
        script = tmp_path / "host.py"
        script.write_text(MULTIPROCESSING_HOST)
        env = {k: v for k, v in os.environ.items() if "_USAGE_TRACKING" not in k}
        env["PYTHONPATH"] = str(REPO)
        result = subprocess.run(
            [sys.executable, str(script), method, shape, listener.endpoint, str(log)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        runs = set(result.stdout.split())
        assert runs
        messages = [decode(d) for d in listener.wait_for(2 * len(runs))]
        closes = {m.correlator for m in messages if isinstance(m, CloseMessage)}
        assert closes == runs
        outcomes = sorted(
            (r["correlator"], r["kind"], r["outcome"])
            for r in read_log(log)
            if r["event"] == "outcome"
        )
        expected = sorted((run, kind, "sent") for run in runs for kind in ("start", "close"))
        assert outcomes == expected


#: HOME unset and a user id without a passwd entry: no default log path can be worked out.
UNKNOWN_HOME = """
    import logging, os, sys
    # Loaded before giving up root (the interpreter lives under /root, closed to others).
    import cattrs, ipaddress, json, platform, pwd, socket, uuid
    import telemetry_sdk._collect, telemetry_sdk._consent, telemetry_sdk._locallog
    import telemetry_sdk._settings, telemetry_sdk._transport, telemetry_sdk._wire
    from telemetry_sdk import Config, Product, UsageTracker
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    for name in ("HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME"):
        os.environ.pop(name, None)
    os.setgid(54321)
    os.setuid(54321)
    try:
        pwd.getpwuid(os.getuid())
    except KeyError:
        pass
    else:
        raise SystemExit("uid 54321 has a passwd entry")
    product = Product(name="minflow", version="1.4.0", endpoint=sys.argv[1])
    for _ in range(2):
        with UsageTracker(Config(usage_tracking=3), product) as tracker:
            tracker.record_app()
"""


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="changing to an unknown uid needs root")
class TestUnknownHome:
    def test_runs_still_send_and_report_on_the_logger_with_one_warning(self, listener):
        """With no HOME and no passwd entry, every message is sent and on the logger, and one
        warning says how to set a log path."""
        result = run_script(UNKNOWN_HOME, listener.endpoint)
        assert result.returncode == 0, result.stderr
        messages = [decode(d) for d in listener.wait_for(4)]
        assert len(messages) == 4
        warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
        assert len(warnings) == 1
        assert "Config(log_path=...)" in warnings[0]
        assert "XDG_STATE_HOME" in warnings[0]
        assert result.stderr.count(": sent") == 4


PYENV = Path.home() / ".pyenv" / "versions"
#: Every supported Python: this one, and the others where pyenv has them.
PYTHONS = {
    f"{sys.version_info.major}.{sys.version_info.minor}": Path(sys.executable),
    "3.12": PYENV / "3.12.1" / "bin" / "python",
    "3.13": PYENV / "3.13.0" / "bin" / "python",
}

#: A level-3 script that never calls close(), under a resolver that answers, fails or hangs.
FORGETS_CLOSE = """
    import socket, sys, time
    from telemetry_sdk import Config, Product, UsageTracker
    mode, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    real = socket.getaddrinfo
    def resolver(host, *args, **kwargs):
        if host != "collector.test":
            return real(host, *args, **kwargs)
        if mode == "hang":
            time.sleep(3600)
        if mode == "fail":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real("127.0.0.1", *args, **kwargs)
    socket.getaddrinfo = resolver
    product = Product(name="minflow", version="1.4.0", endpoint=f"udp://collector.test:{port}")
    tracker = UsageTracker(Config(usage_tracking=3, log_path=log), product)
    tracker.start()
    tracker.record_app()
    print(tracker.correlator, time.monotonic(), flush=True)
"""


def pure_packages(tmp_path: Path) -> Path:
    """A folder exposing this interpreter's pure-Python attrs, cattrs, typing_extensions."""
    import attr
    import cattrs
    import typing_extensions

    folder = tmp_path / "site"
    folder.mkdir()
    for module in (attr, attrs, cattrs):
        source = Path(module.__file__).parent
        (folder / source.name).symlink_to(source)
    source = Path(typing_extensions.__file__)
    (folder / source.name).symlink_to(source)
    return folder


@pytest.mark.slow
class TestEveryPython:
    @pytest.mark.parametrize("resolver", ["answers", "fail", "hang"])
    @pytest.mark.parametrize("version", sorted(PYTHONS))
    def test_each_message_and_its_outcome_are_logged_when_close_is_forgotten(
        self, listener, tmp_path, version, resolver
    ):
        """On 3.11, 3.12 and 3.13, whatever the resolver does, a script that exits without
        close() logs both messages and an outcome for each, and exits at once."""
        python = PYTHONS[version]
        if not python.exists():
            pytest.skip(f"Python {version} is not installed at {python}")
        env = {k: v for k, v in os.environ.items() if "_USAGE_TRACKING" not in k}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(pure_packages(tmp_path))])
        port = listener.endpoint.rsplit(":", 1)[1]
        for attempt in range(4):
            log = tmp_path / f"usage-{attempt}.jsonl"
            result = subprocess.run(
                [str(python), "-c", textwrap.dedent(FORGETS_CLOSE), resolver, port, str(log)],
                capture_output=True,
                text=True,
                timeout=30,
                env=env,
                check=False,
            )
            exited = time.monotonic()
            assert result.returncode == 0, result.stderr
            correlator, ended = result.stdout.split()
            assert exited - float(ended) < 2.0
            lines = [(r["kind"], r["event"]) for r in read_log(log, correlator)]
            assert lines == [
                ("start", "payload"),
                ("start", "outcome"),
                ("close", "payload"),
                ("close", "outcome"),
            ], f"attempt {attempt}: {lines}"
            outcomes = {r["outcome"] for r in read_log(log) if r["event"] == "outcome"}
            assert outcomes == ({"sent"} if resolver == "answers" else {"failed"})
        if resolver == "answers":
            assert len(listener.wait_for(8)) == 8
