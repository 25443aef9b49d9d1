"""The demo: the README's main job, run the way a new user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.py"

pytestmark = pytest.mark.slow


#: Variables by which the Environment component recognises a CI service: the demo runs as a
#: user's machine would (on CI its live runs would rightly be left out of the leaderboard).
CI_VARIABLES = (
    "CI", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "TF_BUILD", "BUILDKITE", "CIRCLECI",
    "TRAVIS",
)  # fmt: skip


def run(*command: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in CI_VARIABLES}
    return subprocess.run(
        [sys.executable, *command],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT, env={**env, **extra},
    )  # fmt: skip


class TestDemo:
    def test_demo_shows_what_was_sent_and_the_leaderboard(self) -> None:
        """`python examples/demo.py --no-wait` runs the workflow at levels 1-3 end to end."""
        result = run(str(DEMO), "--no-wait")
        assert result.returncode == 0, result.stderr
        out = result.stdout
        sent = re.findall(r"level (\d) (start|close) -> udp://127\.0\.0\.1:\d+ \[sent\]", out)
        assert sorted(set(sent)) == [
            ("1", "start"), ("2", "start"), ("3", "close"), ("3", "start"),
        ]  # fmt: skip
        assert len(sent) == 10
        # The live runs on top of the history: their projects, with their own points.
        assert re.search(r"^\s+\d+\s+ocean-model\s+4\s+3$", out, re.MULTILINE)
        assert re.search(r"^\s+\d+\s+genome-pipeline\s+4\s+2$", out, re.MULTILINE)
        assert re.search(r"^\s+\d+\s+student-lab\s+1\s+1$", out, re.MULTILINE)
        assert re.search(r"^Dashboard: http://127\.0\.0\.1:\d+/$", out, re.MULTILINE)

    def test_on_ci_the_live_runs_are_left_out_and_the_demo_says_so(self) -> None:
        """With CI=true the live runs at levels 2-3 are CI runs: left out, and the demo says why.

        (Level 1 sends no components, so a level-1 run cannot say it came from CI.)
        """
        result = run(str(DEMO), "--no-wait", CI="true")
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert re.search(r"^\s+\d+\s+ocean-model\s+1\s+1$", out, re.MULTILINE)
        assert not re.search(r"^\s+\d+\s+genome-pipeline\s", out, re.MULTILINE)
        assert re.search(r"^  [1-9]\d* runs came from CI .* left out", out, re.MULTILINE)

    def test_demo_history_arrives_whole_and_answers_upgrades(self) -> None:
        """The made-up history goes through ingest without a loss; upgrade times are printed."""
        result = run(str(DEMO), "--no-wait")
        assert result.returncode == 0, result.stderr
        out = result.stdout
        sent = re.search(r"sent (\d+) datagrams, (\d+) written", out)
        assert sent is not None
        assert int(sent.group(1)) > 3000
        # Everything sent was written (the live runs come after).
        assert sent.group(1) == sent.group(2)
        upgrades = re.findall(
            r"^  (1\.\d\.\d)\s+first run \d{4}-\d\d-\d\d: (.+)$", out, re.MULTILINE
        )
        assert [v for v, _ in upgrades] == ["1.0.0", "1.1.0", "1.2.0", "1.2.1", "1.3.0", "1.4.0"]
        assert all(re.fullmatch(r"\d+ days|not yet", when) for _, when in upgrades)
        assert re.search(r"^\s+\d+\s+demo-[a-z-]+\s+\d+\s+\d+$", out, re.MULTILINE)

    def test_cli_runs_the_demo(self) -> None:
        """`telemetry-sdk demo --no-wait` runs the same demo from a source checkout."""
        result = run("-m", "telemetry_sdk", "demo", "--no-wait")
        assert result.returncode == 0, result.stderr
        assert "How fast do users upgrade?" in result.stdout
        assert "Leaderboard for minflow (" in result.stdout
