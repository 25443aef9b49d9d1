"""The telemetry-sdk command, run as a real process, and what it changes in later runs."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from telemetry_sdk._locallog import LogWriter, outcome_record, payload_record, read_log
from telemetry_sdk._settings import settings_path
from telemetry_sdk._wire import StartMessage, decode

pytestmark = pytest.mark.slow

#: A host application: one level-N run of product NAME sending to 127.0.0.1:PORT.
APP = """
import json, sys
from telemetry_sdk import Config, Product, UsageTracker

name, port, level = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
log_path = sys.argv[4] if len(sys.argv) > 4 else None
product = Product(name=name, version="1.4.0", endpoint=f"udp://127.0.0.1:{port}")
tracker = UsageTracker(Config(usage_tracking=level, log_path=log_path), product)
tracker.start()
tracker.record_app()
tracker.close(timeout=10)
decision = tracker.decision
print(json.dumps({
    "level": int(tracker.level),
    "decided_by": decision.decided_by if decision else None,
    "correlator": tracker.correlator,
}))
"""

#: The same run, recording socket, file and thread activity from construction to close.
#: Loading Python modules (the SDK imports what a level-1-3 tracker needs when the first one
#: is made) is not tracking I/O, so opens of module files are not counted; any other file
#: (the settings file, the local log) is.
AUDITED_APP = """
import json, sys, threading
from telemetry_sdk import Config, Product, UsageTracker

port = int(sys.argv[1])
product = Product(name="minflow", version="1.4.0", endpoint=f"udp://127.0.0.1:{port}")
config = Config(usage_tracking=3)
seen, recording = [], [True]

def hook(event, args):
    if not recording[0] or not event.startswith(("socket.", "open")):
        return
    if event == "open" and str(args[0]).endswith((".py", ".pyc", ".so")):
        return
    seen.append(event)

started = []
thread_start = threading.Thread.start

def counting_start(self):
    if recording[0]:
        started.append(self.name)
    return thread_start(self)

threading.Thread.start = counting_start
sys.addaudithook(hook)
tracker = UsageTracker(config, product)
tracker.start()
tracker.record_app()
tracker.close(timeout=10)
recording[0] = False
print(json.dumps({"level": int(tracker.level), "events": sorted(set(seen)),
                  "threads_started": len(started)}))
"""


class Listener:
    """A UDP socket on 127.0.0.1; ``drain()`` returns what has arrived so far."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]

    def drain(self) -> list[bytes]:
        # Loopback delivery happens inside sendto, so once the sending process has
        # exited, everything it sent is already queued here.
        received = []
        while True:
            try:
                received.append(self.sock.recv(65536))
            except BlockingIOError:
                return received


@pytest.fixture
def listener() -> Iterator[Listener]:
    udp = Listener()
    try:
        yield udp
    finally:
        udp.sock.close()


@pytest.fixture
def second_listener() -> Iterator[Listener]:
    udp = Listener()
    try:
        yield udp
    finally:
        udp.sock.close()


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m telemetry_sdk ARGS`` with the test's environment plus ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "telemetry_sdk", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def app(
    port: int, level: int = 3, name: str = "minflow", log_path: Path | None = None, **env: str
) -> tuple[dict[str, object], str]:
    """Run the host application once; return what it printed and its stderr."""
    args = [sys.executable, "-c", APP, name, str(port), str(level)]
    if log_path is not None:
        args.append(str(log_path))
    done = subprocess.run(
        args, env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout), done.stderr


def config_file() -> Path:
    return settings_path(os.environ)


def log_file(name: str = "minflow") -> Path:
    return Path(os.environ["XDG_STATE_HOME"]) / name / "usage.jsonl"


def assert_one_line_error(done: subprocess.CompletedProcess[str], status: int) -> None:
    assert done.returncode == status
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("telemetry-sdk")


class TestHelpAndUsage:
    @pytest.mark.parametrize(
        "command",
        [[], ["status"], ["disable"], ["enable"], ["log"], ["collector"],
         ["collector", "leaderboard"], ["collector", "delete"], ["demo"]],
    )  # fmt: skip
    def test_help_everywhere(self, command):
        """--help works for the command and every subcommand and exits 0."""
        done = cli(*command, "--help")
        assert done.returncode == 0
        assert done.stdout.startswith(f"usage: telemetry-sdk {' '.join(command)}".rstrip())
        assert "--help" in done.stdout

    @pytest.mark.parametrize(
        "args",
        [
            [],
            ["frobnicate"],
            ["status", "--bogus"],
            ["disable", "--product", "no spaces"],
            ["log", "--product", "9lives"],
            ["enable", "--product"],
        ],
    )
    def test_usage_errors_exit_2_with_one_line(self, args):
        """A usage error exits 2 with a one-line message on stderr and nothing on stdout."""
        done = cli(*args)
        assert_one_line_error(done, 2)
        assert "error:" in done.stderr
        assert done.stdout == ""

    def test_console_script(self):
        """The installed console script runs the same command."""
        script = Path(sys.executable).with_name("telemetry-sdk")
        done = subprocess.run(
            [str(script), "status"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=os.environ.copy(),
        )
        assert done.returncode == 0
        assert done.stdout.startswith("all products:")


class TestStatus:
    def test_log_rotation_limits_and_bad_values(self):
        """status --product shows the log's rotation size and generations, and a bad value."""
        done = cli(
            "status",
            "--product",
            "minflow",
            MINFLOW_USAGE_TRACKING_LOG_MAX_BYTES="65536",
            MINFLOW_USAGE_TRACKING_LOG_BACKUPS="many",
        )
        assert done.returncode == 0
        assert (
            "log rotation: at 65,536 bytes, keeping 5 previous generations "
            "(at most 393,216 bytes)" in done.stdout
        )
        assert "MINFLOW_USAGE_TRACKING_LOG_BACKUPS='many' is not an integer 0-1000" in done.stdout

    def test_nothing_set(self):
        """With nothing set, status says the application's configuration decides."""
        done = cli("status", "--product", "minflow")
        assert done.returncode == 0
        first = done.stdout.splitlines()[0]
        assert first == (
            "minflow: no ceiling from outside the code: "
            "the application's Config.usage_tracking decides"
        )
        assert f"local log: {log_file()}" in done.stdout
        assert f"settings file: {config_file()} (not created yet)" in done.stdout

    def test_shows_each_source_and_the_winner(self):
        """Every source is listed with its value, and the lowest one is named as the ceiling."""
        done = cli("status", "--product", "minflow", DO_NOT_TRACK="1", MINFLOW_USAGE_TRACKING="2")
        lines = done.stdout.splitlines()
        assert lines[0].startswith("minflow: ceiling 0 (off), set by DO_NOT_TRACK")
        assert "  DO_NOT_TRACK: '1' -> 0 (off)" in lines
        assert "  MINFLOW_USAGE_TRACKING: '2' -> 2 (components)" in lines
        assert "  saved setting for minflow: none -> no ceiling" in lines

    def test_product_variable_lowers_the_ceiling(self):
        """<PRODUCT>_USAGE_TRACKING=1 shows as a ceiling of 1 set by that variable."""
        done = cli("status", "--product", "minflow", MINFLOW_USAGE_TRACKING=" 1 ")
        assert done.stdout.splitlines()[0] == (
            "minflow: ceiling 1 (basic), set by MINFLOW_USAGE_TRACKING"
        )

    def test_garbage_is_reported_not_raised(self):
        """An unreadable variable shows as off in status; no traceback, exit 0."""
        done = cli("status", "--product", "minflow", MINFLOW_USAGE_TRACKING="maybe")
        assert done.returncode == 0
        assert "  MINFLOW_USAGE_TRACKING: 'maybe' unreadable -> 0 (off)" in done.stdout
        assert done.stderr == ""

    def test_endpoint_override_is_the_destination(self):
        """The endpoint variable, when set, is shown as the destination."""
        done = cli(
            "status",
            "--product",
            "minflow",
            MINFLOW_USAGE_TRACKING_ENDPOINT="udp://127.0.0.1:4000",
        )
        assert "destination: udp://127.0.0.1:4000 (from MINFLOW_USAGE_TRACKING_ENDPOINT)" in (
            done.stdout
        )

    def test_the_otel_variable_is_shown_and_preview_says_no_spans(self):
        """status shows what <PRODUCT>_USAGE_TRACKING_OTEL asks for, and none in preview."""
        done = cli("status", "--product", "minflow", MINFLOW_USAGE_TRACKING_OTEL="file")
        assert (
            "  MINFLOW_USAGE_TRACKING_OTEL: 'file' -> a span per run, as JSON lines in "
            "spans.jsonl beside the local log"
        ) in done.stdout.splitlines()
        done = cli(
            "status",
            "--product",
            "minflow",
            MINFLOW_USAGE_TRACKING_OTEL="1",
            MINFLOW_USAGE_TRACKING_DEBUG="1",
        )
        lines = done.stdout.splitlines()
        assert "  MINFLOW_USAGE_TRACKING_OTEL: '1' -> no spans in preview mode" in lines
        assert any(line.startswith("preview mode: on") and "no spans" in line for line in lines)
        done = cli("status", OTHER_USAGE_TRACKING_OTEL="1")
        assert "product variables set: OTHER_USAGE_TRACKING_OTEL='1'" in done.stdout

    def test_all_products_view_lists_saved_settings_and_variables(self):
        """Without --product: DO_NOT_TRACK, saved settings and any product variables set."""
        assert cli("disable", "--product", "minflow").returncode == 0
        done = cli("status", OTHER_USAGE_TRACKING="0")
        assert done.returncode == 0
        assert "saved settings for single products: minflow: ceiling 0" in done.stdout
        assert "product variables set: OTHER_USAGE_TRACKING='0'" in done.stdout

    def test_corrupt_settings_file_is_reported(self):
        """A corrupt settings file gets a clear line and counts as disabled; exit 0."""
        config_file().parent.mkdir(parents=True)
        config_file().write_text("{oops")
        done = cli("status", "--product", "minflow")
        assert done.returncode == 0
        assert done.stdout.splitlines()[0].startswith(
            "minflow: ceiling 0 (off), set by saved settings"
        )
        assert f"settings file: {config_file()} is UNREADABLE (not valid JSON" in done.stdout


class TestDisableEnable:
    def test_disable_all_then_enable(self):
        """disable saves a ceiling of 0 for every product; enable removes it."""
        done = cli("disable")
        assert done.returncode == 0
        assert "disabled for every product" in done.stdout
        assert json.loads(config_file().read_text()) == {"version": 1, "ceilings": {"*": 0}}
        assert stat.S_IMODE(config_file().stat().st_mode) == 0o600
        done = cli("enable")
        assert done.returncode == 0
        assert "does not opt anyone in" in done.stdout
        assert json.loads(config_file().read_text()) == {"version": 1, "ceilings": {}}

    def test_enable_one_product_keeps_the_all_products_ceiling(self):
        """enable --product removes only that product's ceiling and says what still applies."""
        assert cli("disable").returncode == 0
        assert cli("disable", "--product", "MinFlow").returncode == 0
        done = cli("enable", "--product", "minflow")
        assert done.returncode == 0
        assert "minflow is still limited to 0 by the saved setting for all products" in done.stdout
        assert json.loads(config_file().read_text())["ceilings"] == {"*": 0}

    def test_enable_with_nothing_saved_writes_nothing(self):
        """enable never creates a settings file when there is nothing to remove."""
        done = cli("enable")
        assert done.returncode == 0
        assert not config_file().exists()

    def test_enable_mentions_do_not_track(self):
        """enable says that DO_NOT_TRACK still keeps tracking off."""
        done = cli("enable", DO_NOT_TRACK="1")
        assert "tracking stays off while DO_NOT_TRACK is set" in done.stdout

    def test_corrupt_file_is_rewritten_and_said_so(self):
        """disable --product on a corrupt file says so and keeps everything disabled."""
        config_file().parent.mkdir(parents=True)
        config_file().write_bytes(b"\x00garbage")
        done = cli("disable", "--product", "minflow")
        assert done.returncode == 0
        assert "was unreadable" in done.stdout
        assert json.loads(config_file().read_text())["ceilings"] == {"*": 0, "minflow": 0}

    def test_enable_clears_a_corrupt_file(self):
        """enable on a corrupt file replaces it with a valid, empty one."""
        config_file().parent.mkdir(parents=True)
        config_file().write_text("[]")
        done = cli("enable")
        assert done.returncode == 0
        assert "was unreadable" in done.stdout
        assert json.loads(config_file().read_text()) == {"version": 1, "ceilings": {}}

    @pytest.mark.parametrize("command", ["disable", "enable"])
    def test_unwritable_location_exits_1(self, tmp_path, command):
        """When the config folder is not writable, exit 1 with one line and no traceback."""
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("")
        if command == "enable":
            # Something to remove, in a place that cannot be written.
            blocker.unlink()
            path = settings_path({"XDG_CONFIG_HOME": str(blocker)})
            path.mkdir(parents=True)  # a folder where the file should be
        done = cli(command, XDG_CONFIG_HOME=str(blocker))
        assert_one_line_error(done, 1)
        assert "cannot save the setting" in done.stderr


class TestLaterRuns:
    def test_disable_and_enable_change_what_a_run_sends(self, listener):
        """A level-3 run sends; after disable it sends nothing; after enable it sends again."""
        before, _ = app(listener.port)
        assert before["level"] == 3
        assert [decode(d).correlator for d in listener.drain()] == [before["correlator"]] * 2

        assert cli("disable").returncode == 0
        during, _ = app(listener.port)
        assert (during["level"], during["decided_by"]) == (0, "saved setting for all products")
        assert listener.drain() == []

        assert cli("enable").returncode == 0
        after, _ = app(listener.port)
        assert after["level"] == 3
        assert len(listener.drain()) == 2

    def test_disable_one_product_leaves_others(self, listener):
        """disable --product minflow silences minflow only."""
        assert cli("disable", "--product", "minflow").returncode == 0
        app(listener.port, name="minflow")
        assert listener.drain() == []
        other, _ = app(listener.port, name="otherflow")
        assert [decode(d).correlator for d in listener.drain()] == [other["correlator"]] * 2

    def test_product_variable_lowers_a_run(self, listener):
        """MINFLOW_USAGE_TRACKING=1 turns a level-3 run into a level-1 run: one start message."""
        run, _ = app(listener.port, MINFLOW_USAGE_TRACKING="1")
        assert (run["level"], run["decided_by"]) == (1, "MINFLOW_USAGE_TRACKING")
        received = [decode(d) for d in listener.drain()]
        assert len(received) == 1
        assert isinstance(received[0], StartMessage)
        assert received[0].tracking_level == 1

    def test_corrupt_settings_file_silences_a_run(self, listener):
        """A corrupt settings file means a run sends nothing and warns on stderr."""
        config_file().parent.mkdir(parents=True)
        config_file().write_text("{oops")
        run, stderr = app(listener.port)
        assert (run["level"], run["decided_by"]) == (0, "saved settings")
        assert "TrackingSettingWarning" in stderr
        assert listener.drain() == []

    def test_endpoint_override_reroutes(self, listener, second_listener):
        """<PRODUCT>_USAGE_TRACKING_ENDPOINT sends to the override, not the product's endpoint."""
        run, _ = app(
            listener.port,
            MINFLOW_USAGE_TRACKING_ENDPOINT=f"udp://127.0.0.1:{second_listener.port}",
        )
        assert listener.drain() == []
        assert [decode(d).correlator for d in second_listener.drain()] == [run["correlator"]] * 2

    def test_invalid_endpoint_override_sends_nowhere(self, listener):
        """An invalid endpoint variable turns the run off with a warning, not a fallback send."""
        run, stderr = app(listener.port, MINFLOW_USAGE_TRACKING_ENDPOINT="127.0.0.1:9")
        assert run["level"] == 0
        assert "MINFLOW_USAGE_TRACKING_ENDPOINT='127.0.0.1:9' is not an endpoint" in stderr
        assert listener.drain() == []


class TestDoNotTrack:
    @pytest.mark.parametrize("dnt", ["1", None])
    def test_no_socket_no_thread_nothing_sent(self, listener, dnt):
        """With DO_NOT_TRACK=1 a level-3 run opens no socket or file and starts no thread.

        The run without it is the control: the same audit sees its socket and thread.
        """
        env = {"DO_NOT_TRACK": dnt} if dnt else {}
        done = subprocess.run(
            [sys.executable, "-c", AUDITED_APP, str(listener.port)],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        result = json.loads(done.stdout)
        received = listener.drain()
        if dnt:
            assert result == {"level": 0, "events": [], "threads_started": 0}
            assert received == []
            assert not log_file().exists()
        else:
            assert result["level"] == 3
            assert "socket.__new__" in result["events"]
            assert result["threads_started"] >= 1
            assert len(received) == 2


class TestPreviewMode:
    def test_prints_exact_payload_and_sends_nothing(self, listener):
        """Preview mode prints each exact payload to stderr, logs it, and sends nothing."""
        run, stderr = app(listener.port, MINFLOW_USAGE_TRACKING_DEBUG="1")
        assert run["level"] == 3
        assert listener.drain() == []
        printed = [
            line.split("): ", 1)[1]
            for line in stderr.splitlines()
            if line.startswith("telemetry-sdk preview (minflow ")
        ]
        records = read_log(log_file(), correlator=str(run["correlator"]))
        logged = [r["payload"] for r in records if r["event"] == "payload"]
        assert printed == logged
        assert len(printed) == 2
        assert decode(printed[0].encode()).correlator == run["correlator"]
        assert [r["outcome"] for r in records if r["event"] == "outcome"] == ["preview"] * 2


class TestLog:
    def test_shows_what_was_sent_newest_last(self, listener):
        """log prints one line per message with time, kind, correlator, outcome and payload."""
        first, _ = app(listener.port)
        second, _ = app(listener.port)
        done = cli("log", "--product", "minflow")
        assert done.returncode == 0
        lines = done.stdout.splitlines()
        assert len(lines) == 4
        assert [line.split()[2:5] for line in lines] == [
            ["start", first["correlator"], "sent"],
            ["close", first["correlator"], "sent"],
            ["start", second["correlator"], "sent"],
            ["close", second["correlator"], "sent"],
        ]
        payloads = [line.split(": ", 1)[1] for line in lines]
        assert [decode(p.encode()).correlator for p in payloads] == [first["correlator"]] * 2 + [
            second["correlator"]
        ] * 2
        assert sorted(d.decode() for d in listener.drain()) == sorted(payloads)

    def test_correlator_filter_and_json(self, listener):
        """--correlator keeps one run; --json prints the raw records of that run."""
        app(listener.port)
        wanted, _ = app(listener.port)
        done = cli("log", "--correlator", str(wanted["correlator"]), "--json")
        records = [json.loads(line) for line in done.stdout.splitlines()]
        assert {r["correlator"] for r in records} == {wanted["correlator"]}
        assert [(r["kind"], r["event"]) for r in records] == [
            ("start", "payload"),
            ("start", "outcome"),
            ("close", "payload"),
            ("close", "outcome"),
        ]

    def test_every_products_log_without_product(self, listener):
        """Without --product, every product's log under the state folder is shown."""
        one, _ = app(listener.port, name="minflow")
        two, _ = app(listener.port, name="otherflow")
        done = cli("log")
        correlators = {line.split()[3] for line in done.stdout.splitlines()}
        assert correlators == {one["correlator"], two["correlator"]}

    def test_custom_log_path(self, listener, tmp_path):
        """--path reads a log that the application put elsewhere with Config.log_path."""
        run, _ = app(listener.port, log_path=tmp_path / "custom.jsonl")
        assert cli("log", "--product", "minflow").stdout == ""
        done = cli("log", "--path", str(tmp_path / "custom.jsonl"))
        assert {line.split()[3] for line in done.stdout.splitlines()} == {run["correlator"]}

    def test_failed_and_dropped_messages_show_why(self, tmp_path):
        """A failed send shows 'failed' and its reason; a dropped one has its own line."""
        path = tmp_path / "usage.jsonl"
        writer = LogWriter()
        ids = {"product": "minflow", "correlator": "7c886a00-0000-4000-8000-000000000001"}
        writer.write(
            path,
            payload_record(
                **ids, kind="start", level=1, destination="udp://127.0.0.1:9", payload=b"1{}"
            ),
        )
        writer.write(path, outcome_record(**ids, kind="start", outcome="failed", reason="no route"))
        writer.write(path, outcome_record(**ids, kind="close", outcome="dropped", reason="full"))
        assert writer.flush()
        lines = cli("log", "--path", str(path)).stdout.splitlines()
        assert len(lines) == 2
        assert lines[0].split(" ", 1)[1] == (
            f"minflow start {ids['correlator']} failed (no route) "
            "level 1 to udp://127.0.0.1:9: 1{}"
        )
        assert lines[1].split(" ", 1)[1] == f"minflow close {ids['correlator']} dropped (full)"

    def test_every_generation_is_read_oldest_first(self, tmp_path):
        """After rotation, log --path prints the kept generations' messages in order."""
        from telemetry_sdk._logsettings import LogLimits

        path = tmp_path / "usage.jsonl"
        writer = LogWriter()
        limits = LogLimits(max_bytes=4096, backups=3)
        for n in range(60):
            ids = {"product": "minflow", "correlator": f"7c886a00-0000-4000-8000-{n:012d}"}
            record = payload_record(
                **ids, kind="start", level=1, destination="udp://127.0.0.1:9", payload=b"1{}"
            )
            writer.write(path, record, limits)
            writer.write(path, outcome_record(**ids, kind="start", outcome="sent"), limits)
        assert writer.flush()
        assert (tmp_path / "usage.jsonl.3").exists()
        lines = cli("log", "--path", str(path)).stdout.splitlines()
        numbers = [int(line.split()[3].rsplit("-", 1)[1]) for line in lines]
        assert numbers == list(range(numbers[0], 60))
        assert all(" sent level 1 " in line for line in lines[1:])
        records = [
            json.loads(r) for r in cli("log", "--path", str(path), "--json").stdout.splitlines()
        ]
        assert records == read_log(path)

    def test_empty_log_says_so(self, tmp_path):
        """A log with no messages prints nothing on stdout and says so on stderr; exit 0."""
        done = cli("log", "--path", str(tmp_path / "none.jsonl"))
        assert done.returncode == 0
        assert done.stdout == ""
        assert "no messages logged" in done.stderr

    def test_unreadable_log_exits_1(self, tmp_path):
        """A log path that is a folder gives exit 1 with one line."""
        done = cli("log", "--path", str(tmp_path))
        assert_one_line_error(done, 1)
        assert "cannot read the log" in done.stderr


#: The command run with HOME unset as a user id without a passwd entry.
NO_HOME_CLI = """
import os, sys
import telemetry_sdk.cli, telemetry_sdk._consent, telemetry_sdk._settings
import telemetry_sdk._locallog, telemetry_sdk._logfile, telemetry_sdk._logsettings
import argparse, gettext, heapq, json, locale, pwd, shutil
telemetry_sdk.cli.build_parser().format_help()  # loads what argparse loads lazily
for name in ("HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME"):
    os.environ.pop(name, None)
os.setgid(54321)
os.setuid(54321)
sys.exit(telemetry_sdk.cli.main(sys.argv[1:]))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="changing to an unknown uid needs root")
class TestUnknownHome:
    @pytest.mark.parametrize("args", [["status"], ["status", "--product", "minflow"], ["log"]])
    def test_no_home_is_one_clear_line_and_exit_1(self, args):
        """With no HOME and no passwd entry the command says what to set, without a traceback."""
        done = subprocess.run(
            [sys.executable, "-c", NO_HOME_CLI, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
            check=False,
        )
        assert_one_line_error(done, 1)
        assert "set HOME" in done.stderr
