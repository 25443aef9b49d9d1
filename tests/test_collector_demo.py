"""The demo: the README's main job, run the way a new user runs it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.py"

pytestmark = pytest.mark.slow


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *command],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
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
        assert re.search(r"^\s+1\s+ocean-model\s+4\s+3$", out, re.MULTILINE)
        assert re.search(r"^\s+2\s+genome-pipeline\s+4\s+2$", out, re.MULTILINE)
        assert re.search(r"^\s+3\s+student-lab\s+1\s+1$", out, re.MULTILINE)
        assert "apps run: 15, failed: 3" in out
        assert re.search(r"^Dashboard: http://127\.0\.0\.1:\d+/$", out, re.MULTILINE)

    def test_cli_runs_the_demo(self) -> None:
        """`telemetry-sdk demo --no-wait` runs the same demo from a source checkout."""
        result = run("-m", "telemetry_sdk", "demo", "--no-wait")
        assert result.returncode == 0, result.stderr
        assert "Leaderboard for minflow (7 runs, 10 points)" in result.stdout
