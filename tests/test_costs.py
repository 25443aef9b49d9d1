"""What the SDK costs its host, checked by behaviour (the figures are in bench/sdk_bench.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with the repository importable."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """The test process' environment, with private state and config folders."""
    env = {k: v for k, v in os.environ.items() if "USAGE_TRACKING" not in k}
    env.pop("DO_NOT_TRACK", None)
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    return env


@pytest.mark.slow
class TestImport:
    def test_import_adds_only_the_sdks_own_modules(self, clean_env):
        """After ``import attrs``, ``import telemetry_sdk`` loads no module but its own."""
        out = run_python(
            """
            import sys, json
            import attrs
            before = set(sys.modules)
            import telemetry_sdk
            print(json.dumps(sorted(set(sys.modules) - before)))
            """,
            clean_env,
        ).stdout
        added = json.loads(out)
        assert "telemetry_sdk" in added
        assert [m for m in added if m.split(".")[0] != "telemetry_sdk"] == []

    def test_a_level_0_tracker_adds_no_module_either(self, clean_env):
        """Making, starting and closing a tracker at level 0 imports nothing new."""
        out = run_python(
            """
            import sys, json
            import attrs
            before = set(sys.modules)
            import telemetry_sdk as t
            p = t.Product(name="minflow", version="1.0", endpoint="udp://127.0.0.1:9")
            with t.UsageTracker(t.Config(), p) as tracker:
                tracker.record_app()
            print(json.dumps(sorted(set(sys.modules) - before)))
            """,
            clean_env,
        ).stdout
        assert [m for m in json.loads(out) if m.split(".")[0] != "telemetry_sdk"] == []


SETTINGS_READS = """
import json, os, sys
from telemetry_sdk import Config, Product, UsageTracker
from telemetry_sdk import _settings

path = os.fspath(_settings.settings_path(os.environ))
opened = []
def hook(event, args):
    if event == "open" and isinstance(args[0], str) and args[0] == path:
        opened.append(event)
sys.addaudithook(hook)

product = Product(name="minflow", version="1.0", endpoint="udp://127.0.0.1:9")
config = Config(usage_tracking=3)
report = []
for step in sys.argv[1:]:
    if step == "lower":
        _settings.save(_settings.settings_path(os.environ),
                       _settings.Settings({"minflow": 1}))
    elif step == "env":
        os.environ["MINFLOW_USAGE_TRACKING"] = "2"
    else:
        before = len(opened)
        level = int(UsageTracker(config, product).level)
        report.append([len(opened) - before, level])
print(json.dumps(report))
"""


@pytest.mark.slow
class TestSecondTracker:
    def run(self, clean_env: dict[str, str], *steps: str) -> list[list[int]]:
        """Run the settings-read script; return (settings opens, level) per tracker made."""
        proc = subprocess.run(
            [sys.executable, "-c", SETTINGS_READS, *steps],
            env={**clean_env, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return json.loads(proc.stdout)

    def test_second_tracker_reads_no_unchanged_settings_file(self, clean_env):
        """The settings file is opened for the first tracker only while it does not change."""
        report = self.run(clean_env, "lower", "make", "make", "make")
        assert report == [[1, 1], [0, 1], [0, 1]]

    def test_a_changed_settings_file_is_read_again(self, clean_env):
        """Rewriting the settings file (a new stat) makes the next tracker read it."""
        report = self.run(clean_env, "make", "make", "lower", "make", "make")
        assert report == [[1, 3], [0, 3], [1, 1], [0, 1]]

    def test_a_changed_variable_is_seen_at_once(self, clean_env):
        """A consent variable set between two trackers applies to the second."""
        report = self.run(clean_env, "lower", "make", "env", "make")
        assert report[0] == [1, 1]
        assert report[1][1] == 1  # min(saved 1, variable 2)
        report = self.run({**clean_env, "XDG_CONFIG_HOME": "/nonexistent"}, "make", "env", "make")
        assert [level for _, level in report] == [3, 2]


class TestCorrelator:
    def test_correlators_are_version_4_uuids(self):
        """Each tracker's correlator parses as a random (version 4, RFC 4122) UUID."""
        import uuid

        from telemetry_sdk import Config, Product, UsageTracker

        product = Product(name="minflow", version="1.0", endpoint="udp://127.0.0.1:9")
        seen = set()
        for _ in range(200):
            text = UsageTracker(Config(), product).correlator
            parsed = uuid.UUID(text)
            assert (str(parsed), parsed.version, parsed.variant) == (text, 4, uuid.RFC_4122)
            seen.add(text)
        assert len(seen) == 200
