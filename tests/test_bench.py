"""The benchmark scripts in bench/ keep working: each runs once in its quick mode.

Figures and targets are the benchmarks' business; these tests check that every script runs to
the end, prints its tables, measures what it claims to measure, and stays on the loopback.
None of them needs Parsl or a network beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from telemetry_sdk._wire import CloseMessage, StartMessage, decode
from telemetry_sdk.testing import capture_datagrams

BENCH = Path(__file__).resolve().parent.parent / "bench"

pytestmark = pytest.mark.slow


def run_script(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, str(BENCH / name), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def table_rows(output: str, title: str) -> list[list[str]]:
    """The body rows of the Markdown table printed under ``### title``."""
    lines = output.split(f"### {title}", 1)[1].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[first + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


@pytest.fixture
def bench_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))


class TestBenchmarkResolver:
    def _probe(self, mode: str, code: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(BENCH / "_resolver"), "BENCH_RESOLVER": mode}
        return subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
        )

    def test_tracking_name_resolves_to_loopback(self):
        """With the loopback resolver, Parsl's tracking host name resolves to 127.0.0.1."""
        proc = self._probe(
            "loopback",
            "import socket; print(socket.gethostbyname('tracking.parsl-project.org'),"
            " socket.getaddrinfo('tracking.parsl-project.org', 9, type=socket.SOCK_DGRAM)[0][4])",
        )
        assert proc.stdout.split() == ["127.0.0.1", "('127.0.0.1',", "9)"], proc.stderr

    def test_other_names_never_reach_a_real_resolver(self):
        """Any name other than a tracking name fails at once, so no benchmark leaves the host."""
        proc = self._probe(
            "loopback",
            "import socket\n"
            "try:\n    socket.getaddrinfo('example.com', 80)\n"
            "except socket.gaierror as e:\n    print('refused', e)\n",
        )
        assert "refused" in proc.stdout
        assert "benchmark resolver" in proc.stdout

    def test_hanging_resolver_never_answers(self):
        """In hang mode a lookup of the tracking name is still blocked after a second."""
        code = (
            "import socket, threading\n"
            "t = threading.Thread(target=socket.gethostbyname,"
            " args=('tracking.parsl-project.org',), daemon=True)\n"
            "t.start(); t.join(1.0); print('blocked' if t.is_alive() else 'answered')\n"
        )
        assert self._probe("hang", code).stdout.strip() == "blocked"


class TestParslCompare:
    def test_quick_mode_measures_the_sdk_without_parsl(self, tmp_path):
        """--quick runs the three-app workflow with telemetry-sdk at levels 0 and 3, no Parsl."""
        out = run_script("parsl_compare.py", "--quick")
        rows = table_rows(out, "Three-app workflow, one fresh process per run (medians)")
        cases = [(r[0], r[1], r[2]) for r in rows]
        assert cases == [
            ("telemetry-sdk", "0", "answers"),
            ("telemetry-sdk", "3", "answers"),
            ("telemetry-sdk", "0", "never answers"),
            ("telemetry-sdk", "3", "never answers"),
        ]
        assert "Parsl" not in out
        delivered = {(r[1], r[2]): r[-1] for r in rows}
        assert delivered[("0", "answers")] == "0/0"
        assert re.fullmatch(r"\d+/2", delivered[("3", "answers")])
        assert re.fullmatch(r"0/2", delivered[("3", "never answers")])


class TestLogBench:
    def test_quick_mode_compares_the_worker_cost_of_two_trees(self):
        """--quick prints both trees' per-message worker cost and the ratio against the target."""
        out = run_script("log_bench.py", "--quick", "--baseline", str(BENCH.parent))
        title = "Worker cost of one logged message (level-3 start, medians of per-process medians)"
        rows = {r[0]: r for r in table_rows(out, title)}
        assert set(rows) == {"this tree", "baseline"}
        assert all(re.fullmatch(r"[\d.,]+ us", row[2]) for row in rows.values())
        assert re.search(r"this tree / baseline: [\d.]+ \(target <= 1.10\) (PASS|FAIL)", out)


class TestHeartbeatBench:
    def test_quick_mode_prints_the_timer_one_heartbeat_idle_and_many_runs(self):
        """--quick prints the timer's cost per wake-up, one heartbeat's, idle CPU and delivery."""
        out = run_script("heartbeat_bench.py", "--quick")
        timer = table_rows(out, "The worker's timer (medians of batches of 1,000 calls)")
        assert [row[0] for row in timer] == ["0 open runs", "1 open runs", "100 open runs"]
        assert all(re.fullmatch(r"[\d.,]+ us", row[2]) for row in timer)
        one = table_rows(
            out, "One heartbeat on the worker (medians, interleaved with start messages)"
        )
        assert re.fullmatch(r"[\d.]+", one[-1][2])
        (idle,) = table_rows(out, "Idle open runs")
        assert idle[0] == "20 open runs scheduled, worker idle for 1 s"
        (many,) = table_rows(out, "Many open runs beating at once")
        assert re.match(r"\d+ \(at least 20 due\)", many[1])


class TestSdkBench:
    def test_quick_mode_prints_every_section(self):
        """--quick prints app-thread, exit, import and delivery tables with a verdict per target."""
        out = run_script("sdk_bench.py", "--quick")
        for title in (
            "App-thread cost (this process)",
            "Exit when DNS never answers (fresh processes, three-app minflow workflow, medians)",
            "Import time (fresh processes, medians)",
            "Datagrams delivered to a loopback listener",
        ):
            rows = table_rows(out, title)
            assert rows, title
            assert {r[-1] for r in rows} <= {"PASS", "FAIL", "-"}, rows
        calls = {r[0]: r for r in table_rows(out, "App-thread cost (this process)")}
        assert re.fullmatch(r"[\d.,]+ us", calls["start(), level 3, after warm-up"][2])
        delivery = {r[0]: r for r in table_rows(out, "Datagrams delivered to a loopback listener")}
        assert delivery["in-process runs, level 0"][2].startswith("0/0")
        assert delivery["in-process runs, level 3"][2] == "40/40 (100.0 %)"


class TestLoadgen:
    def test_datagrams_are_valid_and_distinct(self, bench_on_path):
        """Every pre-encoded datagram decodes, and each (run, kind) occurs once."""
        import loadgen

        data, runs, closes = loadgen.datagrams(3000, seed=5, part=1)
        assert len(data) == 3000
        messages = [decode(d) for d in data]
        keys = {(m.correlator, type(m)) for m in messages}
        assert len(keys) == 3000
        assert sum(isinstance(m, StartMessage) for m in messages) == runs
        assert sum(isinstance(m, CloseMessage) for m in messages) == closes > 0
        assert len({m.product for m in messages}) == len(loadgen.PRODUCTS)

    def test_sends_at_the_offered_rate_to_loopback(self):
        """A paced 1 s send at 2,000/s delivers every datagram to a loopback listener."""
        with capture_datagrams() as listener:
            out = run_script(
                "loadgen.py",
                "--target",
                f"127.0.0.1:{listener.port}",
                "--rate",
                "2000",
                "--duration",
                "1",
            )
            got = listener.wait_for(2000, timeout=5.0)
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["sent"] == len(got) == 2000
        assert len(set(got)) == 2000
        assert 0.9 <= summary["elapsed"] <= 3.0

    def test_refuses_a_target_off_the_loopback(self):
        """The load generator only ever sends to 127.0.0.1."""
        proc = subprocess.run(
            [sys.executable, str(BENCH / "loadgen.py"), "--target", "192.0.2.1:9", "--rate", "1"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode != 0
        assert "only sends to 127.0.0.1" in proc.stderr


class TestCollectorBenchmarks:
    def test_ingest_quick_mode_is_lossless(self):
        """--quick offers 2,000 datagrams/s for 1 s to a real collector and stores them all."""
        out = run_script("collector_bench.py", "--quick")
        rows = table_rows(out, "Ingest, 1 s of load per trial, SQLite (one row per trial)")
        assert len(rows) == 1
        row = rows[0]
        assert row[2] == row[3] == row[4] == row[5] == "2,000"
        assert row[-1] == "yes"

    def test_burst_mode_counts_kernel_drops(self):
        """--burst sends unpaced and reports the kernel's drops from /proc and from /metrics."""
        out = run_script("collector_bench.py", "--burst", "2000", "--trials", "1")
        title = "Unpaced bursts, one sender, collector --rcvbuf 67,108,864 (one row per trial)"
        rows = table_rows(out, title)
        assert len(rows) == 1
        sent, _, received, written, proc_drops, metric_drops = rows[0][:6]
        assert sent == "2,000"
        assert proc_drops == metric_drops
        assert int(received.replace(",", "")) + int(metric_drops.replace(",", "")) == 2000
        assert received == written

    def test_receive_loop_quick_mode(self):
        """--quick times the receive loop with and without the rate limit."""
        out = run_script("receive_bench.py", "--quick")
        rows = table_rows(out, "Receive loop, 5,000 queued datagrams per round (medians)")
        assert [row[0] for row in rows] == [
            "no rate limit (--rate 0)",
            "rate limit on",
            "socket_drops() (once a second)",
        ]
        assert all(row[2].endswith(" us") for row in rows)

    def test_datagen_fills_through_the_store(self, bench_on_path, tmp_path):
        """The data generator's runs land in the store and in its leaderboard and stats."""
        import datagen

        from telemetry_sdk.collector import SQLiteStore

        result = datagen.fill(tmp_path / "runs.db", 3000, batch=1000, seed=3, progress=False)
        assert result["runs"] == 3000
        store = SQLiteStore.open(tmp_path / "runs.db", readonly=True)
        try:
            products = store.products()
            assert sum(p.runs for p in products) == 3000
            assert len(products) > 10
            top = products[0].product
            assert store.leaderboard(top)
            stats = store.stats(top)
            assert stats.runs == products[0].runs
            assert stats.apps.runs > 0
        finally:
            store.close()

    def test_query_quick_mode_reports_latency_and_memory(self):
        """--quick serves leaderboard, stats and products over HTTP and reads VmRSS/VmHWM."""
        out = run_script("query_bench.py", "--quick")
        rows = table_rows(out, "HTTP latency with 2,000 runs stored")
        assert [r[0] for r in rows] == [
            "/api/leaderboard?product=P",
            "/api/stats?product=P",
            "/api/products",
            "/api/leaderboard?product=P&ci=include",
            "/api/stats?product=P&ci=include",
            "/api/products?ci=include",
            "/api/leaderboard?since&until (30 d)",
            "/api/leaderboard?since&until (90 d)",
            "/api/leaderboard?since&until (365 d)",
            "/api/stats?since&until (365 d)",
            "/api/adoption/versions (365 d)",
            "/api/adoption/python (365 d)",
            "/api/components (365 d)",
            "/api/upgrades (365 d)",
            "/api/projects (365 d)",
            "/api/health (365 d)",
            "/api/never-closed (365 d)",
        ]
        memory = table_rows(out, "Collector resident memory")
        peak = next(r for r in memory if r[0].startswith("VmHWM (peak) after the queries"))
        assert re.fullmatch(r"[\d,]+ MiB", peak[1])
        assert peak[-1] in ("PASS", "FAIL")


class TestHttpBench:
    def test_quick_mode_compares_two_trees(self):
        """`http_bench.py --tree . --quick` measures both trees: every request answered."""
        root = str(BENCH.parent)
        output = run_script("http_bench.py", "--tree", root, "--quick")
        rows = table_rows(output, "20 concurrent clients x 2 requests, new connection each")
        assert [(row[0], row[1].split()[0]) for row in rows] == [
            ("/api/stats", "before"),
            ("/api/stats", "after"),
            ("/healthz", "before"),
            ("/healthz", "after"),
        ]
        assert all(row[-1] == "0" for row in rows)  # no errors
        assert all(row[2].endswith(" ms") for row in rows)
        slow = table_rows(output, "Bursts and slow clients")
        assert len(slow) == 2
        assert all(row[1].endswith(" ms") for row in slow)


class TestStoreBenchmarks:
    def test_store_ingest_quick_mode_covers_every_setup(self, postgres_url):
        """--quick stores 2,000 datagrams/s losslessly in SQLite and PostgreSQL (one and two
        collectors), and says so per set-up."""
        base = postgres_url.partition("?")[0]
        out = run_script("store_ingest_bench.py", "--quick", "--postgres", base)
        best = {row[0]: row[1] for row in table_rows(out, "Highest offered rate")}
        assert best == {"sqlite": "2,000", "postgres-1": "2,000", "postgres-2": "2,000"}

    def test_export_quick_mode_writes_every_run(self):
        """--quick exports 20,000 runs as Parquet and CSV and checks the files hold them all."""
        out = run_script("export_bench.py", "--quick")
        rows = table_rows(out, "collector export of one product")
        assert [(r[0], r[2], r[-1]) for r in rows] == [
            ("parquet", "20,000", "yes"),
            ("csv", "20,000", "yes"),
        ]


class TestWriterBench:
    def test_quick_mode_times_both_trees(self):
        """`writer_bench.py --tree . --quick` writes with both trees and prints their ratio."""
        out = run_script("writer_bench.py", "--tree", str(BENCH.parent), "--quick")
        rows = table_rows(out, "SQLite write path, 10,000 loadgen records")
        assert [r[0] for r in rows] == ["this tree", "other tree"]
        assert all(re.fullmatch(r"[\d,]+", r[3]) for r in rows)
        assert re.search(r"^this tree / other tree: \d+\.\d\d$", out, re.MULTILINE)
