"""OpenTelemetry: one real span per tracked run, for users who opt in with a variable."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from telemetry_sdk import (
    Config,
    Environment,
    Product,
    TrackingSettingWarning,
    UsageTracker,
    _consent,
    _otel,
    _transport,
)
from telemetry_sdk._wire import decode
from telemetry_sdk.testing import UDPListener, capture_datagrams

REPO = Path(__file__).resolve().parent.parent
VARIABLE = "MINFLOW_USAGE_TRACKING_OTEL"
_hook_names = itertools.count()

HOOK_MODULE = """
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
calls = []

def setup():
    calls.append(1)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider

def broken():
    calls.append(1)
    raise RuntimeError("no collector configured")
"""


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    """Each test sets spans up afresh and sees the once-per-process warnings."""
    _consent._reset_warnings()
    _otel._tracers.clear()
    _otel._hooks.clear()
    yield
    _consent._reset_warnings()
    _otel._tracers.clear()
    _otel._hooks.clear()


@pytest.fixture
def hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A real hook module on ``sys.path``; its ``setup`` records spans in memory."""
    name = f"otel_hook_{next(_hook_names)}"
    (tmp_path / f"{name}.py").write_text(HOOK_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    module = importlib.import_module(name)
    yield module
    sys.modules.pop(name, None)


@pytest.fixture
def listener() -> Iterator[UDPListener]:
    with capture_datagrams() as listening:
        yield listening


def product(listener: UDPListener) -> Product:
    return Product(name="minflow", version="1.4.0", endpoint=listener.endpoint)


def run(listener: UDPListener, tmp_path: Path, level: int, *, apps: int = 0) -> UsageTracker:
    config = Config(
        usage_tracking=level,
        project_name="proj-x",
        components=[Environment(root=tmp_path, environ={"CI": "true"})],
        log_path=tmp_path / "log" / "usage.jsonl",
    )
    with UsageTracker(config, product(listener)) as tracker:
        for i in range(apps):
            tracker.record_app(failed=i == 0)
    return tracker


class TestSpanPerRun:
    def test_level_3_run_is_one_span_with_fields_and_counts(
        self, listener, tmp_path, hook, monkeypatch
    ):
        """A level-3 run is one '<product>.run' span with the message fields and app counts."""
        monkeypatch.setenv(VARIABLE, f"{hook.__name__}:setup")
        tracker = run(listener, tmp_path, 3, apps=3)
        (span,) = hook.exporter.get_finished_spans()
        assert span.name == "minflow.run"
        attributes = dict(span.attributes or {})
        assert attributes["usage.correlator"] == tracker.correlator
        assert attributes["usage.version"] == "1.4.0"
        assert attributes["usage.tracking_level"] == 3
        assert attributes["usage.project_name"] == "proj-x"
        assert attributes["usage.components"] == ("telemetry_sdk.Environment",)
        assert attributes["usage.component.telemetry_sdk.Environment.ci"] == "generic"
        assert (attributes["usage.app_count"], attributes["usage.app_fails"]) == (3, 1)
        assert "usage.start" in attributes
        assert "usage.end" in attributes
        assert span.start_time is not None
        assert span.end_time is not None
        assert span.start_time <= span.end_time

    def test_level_1_span_carries_level_1_fields_only(self, listener, tmp_path, hook, monkeypatch):
        """At level 1 the span has the correlator and versions, no components and no counts."""
        monkeypatch.setenv(VARIABLE, f"{hook.__name__}:setup")
        tracker = run(listener, tmp_path, 1, apps=2)
        (span,) = hook.exporter.get_finished_spans()
        attributes = dict(span.attributes or {})
        assert attributes["usage.correlator"] == tracker.correlator
        assert attributes["usage.python_v"]
        assert not [k for k in attributes if "component" in k or "app_" in k]
        assert "usage.start" not in attributes

    def test_level_2_span_has_components_but_no_counts(self, listener, tmp_path, hook, monkeypatch):
        """At level 2 the span names the components and has no execution details."""
        monkeypatch.setenv(VARIABLE, f"{hook.__name__}:setup")
        run(listener, tmp_path, 2)
        (span,) = hook.exporter.get_finished_spans()
        attributes = dict(span.attributes or {})
        assert attributes["usage.components"] == ("telemetry_sdk.Environment",)
        assert not [k for k in attributes if k in {"usage.start", "usage.app_count"}]

    def test_the_span_is_a_child_of_the_hosts_current_span(
        self, listener, tmp_path, hook, monkeypatch
    ):
        """A run started inside the host's span becomes its child."""
        monkeypatch.setenv(VARIABLE, f"{hook.__name__}:setup")
        host_exporter = InMemorySpanExporter()
        host_provider = TracerProvider()
        host_provider.add_span_processor(SimpleSpanProcessor(host_exporter))
        with host_provider.get_tracer("host").start_as_current_span("workflow") as outer:
            run(listener, tmp_path, 3)
        (span,) = hook.exporter.get_finished_spans()
        assert span.parent is not None
        assert span.parent.span_id == outer.get_span_context().span_id
        assert span.context is not None
        assert span.context.trace_id == outer.get_span_context().trace_id

    def test_messages_are_unchanged_by_spans(self, listener, tmp_path, hook, monkeypatch):
        """With spans on, the start and close datagrams still arrive as before."""
        monkeypatch.setenv(VARIABLE, f"{hook.__name__}:setup")
        tracker = run(listener, tmp_path, 3, apps=1)
        messages = [decode(d) for d in listener.wait_for(2)]
        assert {m.correlator for m in messages} == {tracker.correlator}

    def test_close_before_the_worker_built_the_start_still_ends_the_span(
        self, listener, tmp_path, hook, monkeypatch
    ):
        """If close() comes first, the worker creates the span and ends it at close()'s time."""
        monkeypatch.setenv(VARIABLE, f"{hook.__name__}:setup")
        config = Config(usage_tracking=3, log_path=tmp_path / "usage.jsonl")
        blocker = UsageTracker(Config(usage_tracking=1), product(listener))
        tracker = UsageTracker(config, product(listener))
        # Holding the lock under which the worker decides each outcome keeps it busy with
        # another run's start message, ahead of this run's.
        with _transport._state.settle_lock:
            blocker.start()
            tracker.start()
            tracker.close(timeout=0)
            assert hook.exporter.get_finished_spans() == ()
        assert _transport.flush(2.0)
        blocker.close()
        (span,) = [
            s
            for s in hook.exporter.get_finished_spans()
            if dict(s.attributes or {})["usage.correlator"] == tracker.correlator
        ]
        attributes = dict(span.attributes or {})
        assert attributes["usage.correlator"] == tracker.correlator
        assert attributes["usage.app_count"] == 0

    @pytest.mark.slow
    def test_each_heartbeat_adds_an_event_with_its_counts(
        self, listener, tmp_path, hook, monkeypatch
    ):
        """A run open past one interval gets a 'usage.heartbeat' event with number and counts."""
        monkeypatch.setenv(VARIABLE, f"{hook.__name__}:setup")
        config = Config(usage_tracking=3, log_path=tmp_path / "usage.jsonl", heartbeat_interval=1.0)
        tracker = UsageTracker(config, product(listener))
        tracker.start()
        tracker.record_app()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
            b'"heartbeat":1' in d for d in listener.datagrams
        ):
            time.sleep(0.02)
        assert _transport.flush(2.0)
        tracker.close()
        (span,) = hook.exporter.get_finished_spans()
        (event,) = [e for e in span.events if e.name == "usage.heartbeat"]
        attributes = dict(event.attributes or {})
        assert attributes["usage.heartbeat"] == 1
        assert attributes["usage.app_count"] == 1
        assert attributes["usage.app_fails"] == 0
        assert 1.0 <= float(attributes["usage.execution_time"]) < 2.0
        assert span.start_time is not None
        assert event.timestamp > span.start_time


class TestConsent:
    @pytest.mark.parametrize(
        ("level", "extra"),
        [(0, {}), (3, {"DO_NOT_TRACK": "1"}), (3, {"MINFLOW_USAGE_TRACKING": "0"})],
    )
    def test_no_span_where_the_effective_level_is_0(
        self, listener, tmp_path, hook, monkeypatch, level, extra
    ):
        """Level 0, from the config or an outside setting: no span, and the hook is not called."""
        monkeypatch.setenv(VARIABLE, f"{hook.__name__}:setup")
        for name, value in extra.items():
            monkeypatch.setenv(name, value)
        run(listener, tmp_path, level)
        assert hook.exporter.get_finished_spans() == ()
        assert hook.calls == []

    def test_preview_mode_makes_no_span(self, listener, tmp_path, hook, monkeypatch, capsys):
        """With _DEBUG=1 nothing is exported: no span, and the hook is never called."""
        monkeypatch.setenv(VARIABLE, f"{hook.__name__}:setup")
        monkeypatch.setenv("MINFLOW_USAGE_TRACKING_DEBUG", "1")
        tracker = run(listener, tmp_path, 3, apps=2)
        assert hook.calls == []
        assert hook.exporter.get_finished_spans() == ()
        assert tracker.decision is not None
        assert f"{VARIABLE}: '{hook.__name__}:setup' -> no spans in preview mode" in (
            tracker.decision.sources
        )
        assert "not sent" in capsys.readouterr().err

    @pytest.mark.parametrize(
        ("value", "effect"),
        [
            (None, "not set -> no spans"),
            ("0", "'0' -> no spans"),
            ("1", "'1' -> a span per run, to the process's global TracerProvider"),
            ("file", "'file' -> a span per run, as JSON lines in spans.jsonl beside the local log"),
            ("pkg.mod:setup", "'pkg.mod:setup' -> a span per run, to the TracerProvider set up"),
            ("yes please", "'yes please' is not a span setting"),
        ],
    )
    def test_the_variable_is_one_of_the_decisions_sources(
        self, listener, value, effect, monkeypatch
    ):
        """tracker.decision.sources says what the OTel variable asks for, set or not."""
        if value is not None:
            monkeypatch.setenv(VARIABLE, value)
        decision = _consent.decide(Config(usage_tracking=3), product(listener))
        (line,) = [line for line in decision.sources if line.startswith(VARIABLE)]
        assert line.startswith(f"{VARIABLE}: {effect}")

    @pytest.mark.parametrize("value", ["", "0", "off", "false", " no "])
    def test_off_values_make_no_span_and_no_warning(self, listener, tmp_path, value, monkeypatch):
        """Unset-like values leave spans off silently."""
        monkeypatch.setenv(VARIABLE, value)
        tracker = run(listener, tmp_path, 3)
        assert tracker._run is not None
        assert tracker._run.span is None


class TestHook:
    def test_the_hook_is_called_once_per_process(self, listener, tmp_path, hook, monkeypatch):
        """Several runs call the setup function once and each get their own span."""
        monkeypatch.setenv(VARIABLE, f"{hook.__name__}:setup")
        correlators = {run(listener, tmp_path, 3).correlator for _ in range(3)}
        assert hook.calls == [1]
        spans = hook.exporter.get_finished_spans()
        assert {dict(s.attributes or {})["usage.correlator"] for s in spans} == correlators

    def test_a_raising_hook_turns_spans_off_with_one_warning(
        self, listener, tmp_path, hook, monkeypatch
    ):
        """A hook that raises gives one warning; runs go on and their messages arrive."""
        monkeypatch.setenv(VARIABLE, f"{hook.__name__}:broken")
        with pytest.warns(TrackingSettingWarning, match="no collector configured") as warned:
            first, second = (run(listener, tmp_path, 3) for _ in range(2))
        assert len(warned) == 1
        assert "spans are off" in str(warned[0].message)
        assert hook.calls == [1]
        got = {decode(d).correlator for d in listener.wait_for(4)}
        assert got == {first.correlator, second.correlator}

    def test_a_hook_that_cannot_be_imported_warns(self, listener, tmp_path, monkeypatch):
        """A module that does not exist gives one warning naming the problem."""
        monkeypatch.setenv(VARIABLE, "no_such_module_here:setup")
        with pytest.warns(TrackingSettingWarning, match="cannot be imported"):
            tracker = run(listener, tmp_path, 3)
        assert tracker._run is not None
        assert tracker._run.span is None
        assert len(listener.wait_for(2)) == 2

    @pytest.mark.parametrize("value", ["yes please", "module:", ":function", "a b:c", "2"])
    def test_a_bad_value_warns_once(self, listener, tmp_path, value, monkeypatch):
        """A value that is not 1, file or module:function warns and turns spans off."""
        monkeypatch.setenv(VARIABLE, value)
        with pytest.warns(TrackingSettingWarning, match="not a span setting"):
            tracker = run(listener, tmp_path, 3)
        assert tracker._run is not None
        assert tracker._run.span is None
        assert len(listener.wait_for(2)) == 2


class TestFileHook:
    def test_spans_are_written_as_json_lines_beside_the_log(self, listener, tmp_path, monkeypatch):
        """'file' appends one JSON line per run to spans.jsonl in the local log's folder."""
        monkeypatch.setenv(VARIABLE, "file")
        trackers = [run(listener, tmp_path, 3, apps=2), run(listener, tmp_path, 2)]
        path = tmp_path / "log" / "spans.jsonl"
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert [line["name"] for line in lines] == ["minflow.run", "minflow.run"]
        assert [line["attributes"]["usage.correlator"] for line in lines] == [
            t.correlator for t in trackers
        ]
        assert lines[0]["attributes"]["usage.app_count"] == 2
        assert "usage.app_count" not in lines[1]["attributes"]
        assert lines[0]["resource"]["attributes"] == {"service.name": "minflow"}
        assert path.stat().st_mode & 0o777 == 0o600

    def test_the_global_provider_is_left_alone(self, listener, tmp_path, monkeypatch):
        """The file hook uses a provider of its own, not the process's global one."""
        monkeypatch.setenv(VARIABLE, "file")
        before = trace.get_tracer_provider()
        run(listener, tmp_path, 1)
        assert trace.get_tracer_provider() is before


GLOBAL_SCRIPT = """
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
from telemetry_sdk import Config, Product, UsageTracker
product = Product(name="minflow", version="1.4.0", endpoint="udp://127.0.0.1:9")
with UsageTracker(Config(usage_tracking=3), product) as tracker:
    tracker.record_app()
spans = exporter.get_finished_spans()
print(json.dumps([[s.name, dict(s.attributes)["usage.correlator"] == tracker.correlator]
                  for s in spans]))
"""

MISSING_SCRIPT = """
import json, sys, warnings
sys.modules["opentelemetry"] = None   # what a missing package looks like to an import
from telemetry_sdk import Config, Product, UsageTracker
product = Product(name="minflow", version="1.4.0", endpoint="udp://127.0.0.1:9")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for _ in range(2):
        with UsageTracker(Config(usage_tracking=3), product) as tracker:
            tracker.record_app()
print(json.dumps([str(w.message) for w in caught]))
"""

EXIT_SCRIPT = """
from telemetry_sdk import Config, Product, UsageTracker
product = Product(name="minflow", version="1.4.0", endpoint="udp://127.0.0.1:9")
tracker = UsageTracker(Config(usage_tracking=3), product)
tracker.start()
tracker.record_app()
print(tracker.correlator)
# no close(): the exit hook ends the run and its span
"""

IMPORT_SCRIPT = """
import json, sys
import telemetry_sdk
from telemetry_sdk import Config, Product, UsageTracker
product = Product(name="minflow", version="1.4.0", endpoint="udp://127.0.0.1:9")
with UsageTracker(Config(usage_tracking=3), product) as tracker:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.startswith("opentelemetry"))))
"""


FORK_SCRIPT = """
import os, sys, threading
from telemetry_sdk import Config, Product, UsageTracker
product = Product(name="minflow", version="1.4.0", endpoint="udp://127.0.0.1:9")
tracker = UsageTracker(Config(usage_tracking=3), product)
tracker.start()
span = tracker._run.span
held, release = threading.Event(), threading.Event()
def hold():
    with span._lock, tracker._run.lock:
        held.set()
        release.wait()
thread = threading.Thread(target=hold)
thread.start()
held.wait()
pid = os.fork()
if pid == 0:
    print("child", span._lock.locked(), tracker._run.lock.locked(), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
release.set()
thread.join()
tracker.close()
print("parent", span._lock.locked(), flush=True)
"""


@pytest.mark.slow
class TestProcesses:
    def python(self, script: str, tmp_path: Path, **variables: str) -> str:
        env = {k: v for k, v in os.environ.items() if "USAGE_TRACKING" not in k}
        env.update(
            PYTHONPATH=str(REPO),
            XDG_STATE_HOME=str(tmp_path / "state"),
            XDG_CONFIG_HOME=str(tmp_path / "config"),
            **variables,
        )
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return result.stdout

    def test_1_uses_the_global_tracer_provider(self, tmp_path):
        """'1' records the run's span on the provider the process set globally."""
        out = self.python(GLOBAL_SCRIPT, tmp_path, **{VARIABLE: "1"})
        assert json.loads(out) == [["minflow.run", True]]

    def test_a_missing_package_warns_once_and_tracking_goes_on(self, tmp_path):
        """Without opentelemetry, one warning names the extra to install; nothing raises."""
        out = self.python(MISSING_SCRIPT, tmp_path, **{VARIABLE: "1"})
        (message,) = json.loads(out)
        assert "telemetry-sdk[otel]" in message
        log = (tmp_path / "state" / "minflow" / "usage.jsonl").read_text().splitlines()
        assert len(log) == 8  # two runs: start and close, each a payload and an outcome line

    def test_the_exit_hook_ends_the_span_of_a_run_never_closed(self, tmp_path):
        """A script that never calls close() still writes its span, with the app counts."""
        correlator = self.python(EXIT_SCRIPT, tmp_path, **{VARIABLE: "file"}).strip()
        path = tmp_path / "state" / "minflow" / "spans.jsonl"
        (line,) = [json.loads(text) for text in path.read_text().splitlines()]
        assert line["attributes"]["usage.correlator"] == correlator
        assert line["attributes"]["usage.app_count"] == 1

    def test_a_forked_child_gets_unheld_span_and_run_locks(self, tmp_path):
        """Locks a parent's thread held at fork are fresh in the child (no deadlock there)."""
        out = self.python(FORK_SCRIPT, tmp_path, **{VARIABLE: "file"}).splitlines()
        assert out == ["child False False", "parent False"]

    def test_import_never_imports_opentelemetry(self, tmp_path):
        """Without the variable, importing and tracking load no opentelemetry module."""
        assert json.loads(self.python(IMPORT_SCRIPT, tmp_path)) == []
