"""The collector end to end: a real collector process, real UDP datagrams, the HTTP API."""

from __future__ import annotations

import json
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from _collector_support import (
    CollectorProcess,
    close_message,
    datagram,
    start_message,
    wait_for,
)

from telemetry_sdk import Config, Product, UsageTracker
from telemetry_sdk._wire import Component

pytestmark = pytest.mark.slow

TOKEN = "correct-horse-battery-staple-42"


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    """One collector for the read-mostly tests of this module."""
    directory = tmp_path_factory.mktemp("collector")
    token_file = directory / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)  # the collector refuses a token file others can read
    process = CollectorProcess(directory, "--admin-token-file", str(token_file)).start()
    yield process
    process.kill()


def run_api(collector: CollectorProcess, correlator: str) -> dict:
    response = collector.get(f"/api/runs/{correlator}")
    assert response.status == 200, response.body
    return response.json()


class TestStartup:
    def test_logs_the_ports_it_bound(self, collector: CollectorProcess) -> None:
        """Asked for port 0, the collector logs and reports the ports it actually bound."""
        log = collector.log()
        assert f"receiving UDP on 127.0.0.1:{collector.udp[1]}" in log
        assert f"serving HTTP on 127.0.0.1:{collector.http[1]}" in log
        assert collector.udp[1] != 0
        assert collector.http[1] != 0

    def test_health_check(self, collector: CollectorProcess) -> None:
        """GET /healthz answers ok, with no reason against, while the writer runs."""
        response = collector.get("/healthz")
        assert response.status == 200
        body = response.json()
        assert (body["status"], body["reasons"], body["writer"]) == ("ok", [], "up")


class TestEndToEnd:
    def test_sdk_runs_at_every_level_reach_the_api(
        self, collector: CollectorProcess, tmp_path: Path
    ) -> None:
        """Runs sent by the real SDK at levels 1-3 show up in runs, leaderboard and stats."""
        endpoint = f"udp://127.0.0.1:{collector.udp[1]}"
        product = Product(name="e2eflow", version="2.0.1", endpoint=endpoint)
        correlators = {}
        for level in (1, 2, 3):
            config = Config(
                usage_tracking=level,
                project_name=f"e2e-level-{level}",
                components=[object()],
                log_path=tmp_path / "usage.jsonl",
            )
            with UsageTracker(config, product) as tracker:
                tracker.record_app()
                tracker.record_app(failed=True)
            correlators[level] = tracker.correlator
        run3 = wait_for(
            lambda: (
                collector.get(f"/api/runs/{correlators[3]}").status == 200
                and run_api(collector, correlators[3])["runs"][0]["has_close"]
                and run_api(collector, correlators[3])
            ),
            what="the level-3 run",
        )
        (row,) = run3["runs"]
        assert row["product"] == "e2eflow"
        assert row["version"] == "2.0.1"
        assert row["level"] == 3
        assert row["app_count"] == 2
        assert row["app_fails"] == 1
        for level in (1, 2):
            wait_for(lambda lv=level: collector.get(f"/api/runs/{correlators[lv]}").status == 200)
        board = collector.get("/api/leaderboard?product=e2eflow").json()["leaderboard"]
        points = {row["project"]: (row["points"], row["runs"]) for row in board}
        assert points == {"e2e-level-1": (1, 1), "e2e-level-2": (1, 1), "e2e-level-3": (2, 1)}
        assert board[0]["project"] == "e2e-level-3"
        stats = collector.get("/api/stats?product=e2eflow").json()
        assert stats["runs"] == 3
        assert stats["levels"] == {"1": 1, "2": 1, "3": 1}
        assert stats["versions"] == [{"name": "2.0.1", "runs": 3}]
        assert stats["apps"]["apps"] == 2
        assert stats["apps"]["failures"] == 1
        products = collector.get("/api/products").json()["products"]
        assert {"product": "e2eflow", "runs": 3, "points": 4} in products

    def test_real_parsl_messages_close_first(self, collector: CollectorProcess) -> None:
        """A Parsl close (no product) that arrives before its start is joined to the run."""
        correlator = str(uuid.uuid4())
        start = (
            f'1{{"correlator": "{correlator}", "parsl_v": "2025.03.17", "python_v": "3.11.7", '
            '"platform.system": "Linux", "tracking_level": 3, "project_name": "probe-level-3", '
            '"components": [{"c": "parsl.config.Config", "executors_len": 1, '
            '"dependency_resolver": false}, "parsl.executors.threads.ThreadPoolExecutor"], '
            '"start": 1795305801}'
        ).encode()
        close = (
            f'1{{"correlator": "{correlator}", "end": 1795305802, "execution_time": 1, '
            '"components": [{"c": "parsl.dataflow.dflow.DataFlowKernel", "app_count": 4, '
            '"app_fails": 2}, {"c": "parsl.config.Config", "executors_len": 1, '
            '"dependency_resolver": false}, "parsl.executors.threads.ThreadPoolExecutor"], '
            '"project_name": "probe-level-3"}'
        ).encode()
        collector.send(close)
        wait_for(lambda: collector.get(f"/api/runs/{correlator}").status == 200)
        pending = run_api(collector, correlator)
        assert pending["runs"] == []
        assert pending["pending_close"]["app_count"] == 4
        collector.send(start)
        joined = wait_for(
            lambda: run_api(collector, correlator)["runs"] and run_api(collector, correlator)
        )
        (row,) = joined["runs"]
        assert row["product"] == "parsl"
        assert row["has_start"]
        assert row["has_close"]
        assert (row["app_count"], row["app_fails"], row["execution_time"]) == (4, 2, 1.0)
        assert joined["pending_close"] is None
        board = collector.get("/api/leaderboard?product=parsl").json()["leaderboard"]
        assert {"rank": 1, "project": "probe-level-3", "points": 2, "runs": 1} in board

    def test_bare_json_is_accepted(self, collector: CollectorProcess) -> None:
        """The pre-2024 form, bare JSON without the protocol byte, is accepted."""
        message = start_message(product="oldflow", project_name="legacy")
        collector.send(datagram(message)[1:])
        wait_for(lambda: collector.get(f"/api/runs/{message.correlator}").status == 200)


def expected_reason(data: bytes) -> str | None:
    """What ``_wire.decode`` says about ``data``: None if valid, else the reason."""
    from telemetry_sdk._errors import DecodeError
    from telemetry_sdk._wire import decode

    try:
        decode(data)
    except DecodeError as exc:
        return exc.reason
    return None


def rejected(metrics: dict[str, float]) -> dict[str, float]:
    found = {}
    for name, value in metrics.items():
        match = re.fullmatch(r'telemetry_collector_rejected_total\{reason="(\w+)"\}', name)
        if match:
            found[match.group(1)] = value
    return found


HOSTILE = "<script>alert(1)</script>"
MALFORMED: list[tuple[str, bytes, str]] = [
    ("empty", b"", "size"),
    ("binary", bytes(range(256)), "protocol"),
    ("huge", b"1" + b"x" * 5000, "size"),
    ("just the protocol byte", b"1", "json"),
    ("not utf-8", b'1{"correlator": "\xff\xfe"}', "encoding"),
    ("not json", b"1{correlator", "json"),
    ("deep nesting", b"1" + b"[" * 600 + b"]" * 600, "schema"),
    ("deep nesting in a field", b'1{"components": ' + b"[" * 500 + b"]" * 500 + b"}", "schema"),
    ("deep nesting, too big", b"1" + b"[" * 5000 + b"]" * 5000, "size"),
    ("a list", b"1[1, 2, 3]", "schema"),
    ("NaN", b'1{"correlator": "x", "end": NaN}', "json"),
    ("Infinity", b'1{"execution_time": Infinity}', "json"),
    ("missing fields", b'1{"correlator": "3b3f2a52-5c1e-4e55-9a43-0c1b1b0f6d61"}', "schema"),
    (
        "wrong types",
        b'1{"correlator": "3b3f2a52-5c1e-4e55-9a43-0c1b1b0f6d61", "minflow_v": 1, '
        b'"python_v": [], "platform.system": {}, "tracking_level": "3"}',
        "schema",
    ),
    (
        "level 4",
        b'1{"correlator": "3b3f2a52-5c1e-4e55-9a43-0c1b1b0f6d61", "minflow_v": "1", '
        b'"python_v": "3.11", "platform.system": "Linux", "tracking_level": 4}',
        "schema",
    ),
    (
        "bool level",
        b'1{"correlator": "3b3f2a52-5c1e-4e55-9a43-0c1b1b0f6d61", "minflow_v": "1", '
        b'"python_v": "3.11", "platform.system": "Linux", "tracking_level": true}',
        "schema",
    ),
    (
        "negative time",
        b'1{"correlator": "3b3f2a52-5c1e-4e55-9a43-0c1b1b0f6d61", "end": 1795305802, '
        b'"execution_time": -5}',
        "duration",
    ),
    (
        "negative epoch",
        b'1{"correlator": "3b3f2a52-5c1e-4e55-9a43-0c1b1b0f6d61", "end": -1, "execution_time": 5}',
        "timestamp",
    ),
    (
        "unknown field",
        b'1{"correlator": "3b3f2a52-5c1e-4e55-9a43-0c1b1b0f6d61", "minflow_v": "1", '
        b'"python_v": "3.11", "platform.system": "Linux", "tracking_level": 1, "hostname": "h"}',
        "unknown_field",
    ),
    (
        "non-UUID correlator",
        b'1{"correlator": "../../etc/passwd", "minflow_v": "1", "python_v": "3.11", '
        b'"platform.system": "Linux", "tracking_level": 1}',
        "correlator",
    ),
    (
        "upper-case UUID",
        b'1{"correlator": "3B3F2A52-5C1E-4E55-9A43-0C1B1B0F6D61", "minflow_v": "1", '
        b'"python_v": "3.11", "platform.system": "Linux", "tracking_level": 1}',
        "correlator",
    ),
    (
        "project name with a newline",
        b'1{"correlator": "3b3f2a52-5c1e-4e55-9a43-0c1b1b0f6d61", "minflow_v": "1", '
        b'"python_v": "3.11", "platform.system": "Linux", "tracking_level": 1, '
        b'"project_name": "a\\nb"}',
        "schema",
    ),
    (
        "project name too long",
        b'1{"correlator": "3b3f2a52-5c1e-4e55-9a43-0c1b1b0f6d61", "minflow_v": "1", '
        b'"python_v": "3.11", "platform.system": "Linux", "tracking_level": 1, '
        b'"project_name": "' + b"p" * 65 + b'"}',
        "schema",
    ),
    (
        "two products",
        b'1{"correlator": "3b3f2a52-5c1e-4e55-9a43-0c1b1b0f6d61", "a_v": "1", "b_v": "1", '
        b'"python_v": "3.11", "platform.system": "Linux", "tracking_level": 1}',
        "schema",
    ),
    ("unknown protocol", b'2{"correlator": "x"}', "protocol"),
]


class TestBadInput:
    def test_corpus_matches_the_sdk_decoder(self) -> None:
        """Every corpus entry is rejected by the SDK's decoder for the reason listed."""
        for name, data, reason in MALFORMED:
            assert expected_reason(data) == reason, name

    def test_malformed_corpus_is_counted_and_valid_messages_survive(self, tmp_path: Path) -> None:
        """Bad datagrams are dropped and counted by reason; valid ones in between are kept."""
        collector = CollectorProcess(tmp_path).start()
        try:
            valid = []
            for _, data, _ in MALFORMED:
                message = start_message(project_name=HOSTILE)
                valid.append(message.correlator)
                collector.send(datagram(message), data)
            metrics = collector.wait_processed(2 * len(MALFORMED))
            expected: dict[str, float] = {}
            for _, _, reason in MALFORMED:
                expected[reason] = expected.get(reason, 0) + 1
            assert {k: v for k, v in rejected(metrics).items() if v} == expected
            assert metrics["telemetry_collector_accepted_total"] == len(valid)
            for correlator in valid:
                assert collector.get(f"/api/runs/{correlator}").status == 200
            board = collector.get("/api/leaderboard?product=minflow").json()["leaderboard"]
            assert board == [
                {"rank": 1, "project": HOSTILE, "points": len(valid), "runs": len(valid)}
            ]
            assert collector.get("/healthz").status == 200
        finally:
            assert collector.stop() == 0

    def test_fuzzed_datagrams_never_cost_a_valid_message(self, tmp_path: Path) -> None:
        """Hypothesis-made junk and mutated messages: every valid one is kept, all counted."""
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st

        collector = CollectorProcess(tmp_path).start()
        sent = {"count": 0}
        valid: list[str] = []
        reasons: dict[str, int] = {}
        base = datagram(start_message(tracking_level=2, components=(Component("a.B"),)))

        def mutate(data: bytes, position: int, value: int) -> bytes:
            position %= len(data)
            return data[:position] + bytes([value]) + data[position + 1 :]

        junk = st.one_of(
            st.binary(max_size=1400),
            st.builds(mutate, st.just(base), st.integers(0, 10_000), st.integers(0, 255)),
            st.builds(lambda b: b"1" + b, st.binary(max_size=300)),
            st.recursive(
                st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=20),
                lambda children: (
                    st.lists(children, max_size=4)
                    | st.dictionaries(st.text(max_size=10), children, max_size=4)
                ),
                max_leaves=12,
            ).map(lambda v: b"1" + json.dumps(v).encode()),
        )

        @settings(
            max_examples=40,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        )
        @given(st.lists(junk, min_size=1, max_size=8))
        def send_some(datagrams: list[bytes]) -> None:
            for data in datagrams:
                message = start_message()
                collector.send(data, datagram(message))
                valid.append(message.correlator)
                reason = expected_reason(data)
                if reason is not None:  # a mutation may still be valid: then it is accepted
                    reasons[reason] = reasons.get(reason, 0) + 1
                sent["count"] += 2

        try:
            send_some()
            metrics = collector.wait_processed(sent["count"], timeout=30)
            assert metrics["telemetry_collector_received_total"] == sent["count"]
            counted = {k: v for k, v in rejected(metrics).items() if v}
            assert counted == reasons
            for correlator in valid:
                assert collector.get(f"/api/runs/{correlator}").status == 200, correlator
        finally:
            assert collector.stop() == 0


class TestDeletion:
    def test_delete_needs_a_configured_token(self, tmp_path: Path) -> None:
        """Without --admin-token-file, DELETE over HTTP is refused with 403."""
        collector = CollectorProcess(tmp_path).start()
        try:
            message = start_message()
            collector.send(datagram(message))
            collector.wait_processed(1)
            response = collector.request(
                "DELETE", f"/api/runs/{message.correlator}", {"Authorization": "Bearer x" * 3}
            )
            assert response.status == 403
            assert collector.get(f"/api/runs/{message.correlator}").status == 200
        finally:
            collector.stop()

    def test_delete_by_api_removes_the_run_from_every_view(
        self, collector: CollectorProcess
    ) -> None:
        """With the token, DELETE removes the run from runs, leaderboard, stats and products."""
        message = start_message(product="delflow", project_name="to-forget", tracking_level=3)
        keep = start_message(product="delflow", project_name="to-keep")
        collector.send(
            datagram(message), datagram(close_message(message.correlator, product="delflow"))
        )
        collector.send(datagram(keep))
        wait_for(lambda: collector.get("/api/stats?product=delflow").json()["runs"] == 2)
        path = f"/api/runs/{message.correlator}"
        assert collector.request("DELETE", path).status == 401
        assert collector.request("DELETE", path, {"Authorization": "Bearer wrong"}).status == 401
        response = collector.request("DELETE", path, {"Authorization": f"Bearer {TOKEN}"})
        assert response.status == 200
        assert response.json()["deleted"] == 1
        assert collector.get(path).status == 404
        board = collector.get("/api/leaderboard?product=delflow").json()["leaderboard"]
        assert [row["project"] for row in board] == ["to-keep"]
        stats = collector.get("/api/stats?product=delflow").json()
        assert stats["runs"] == 1
        assert stats["levels"] == {"1": 1, "2": 0, "3": 0}
        assert stats["apps"]["apps"] == 0
        assert sum(b["runs"] for b in stats["execution_time"]) == 0
        products = collector.get("/api/products").json()["products"]
        assert {"product": "delflow", "runs": 1, "points": 1} in products
        # A late datagram of the deleted run does not bring it back.
        collector.send(datagram(message))
        marker = start_message(product="delflow")
        collector.send(datagram(marker))
        wait_for(lambda: collector.get(f"/api/runs/{marker.correlator}").status == 200)
        assert collector.get(path).status == 404

    def test_delete_from_the_command_line(self, tmp_path: Path) -> None:
        """`telemetry-sdk collector delete` removes a run while the collector runs."""
        collector = CollectorProcess(tmp_path).start()
        try:
            message = start_message(project_name="cli-forget")
            collector.send(datagram(message))
            collector.wait_processed(1)
            result = subprocess.run(
                [sys.executable, "-m", "telemetry_sdk", "collector", "delete",
                 "--db", str(collector.db), message.correlator],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            assert f"deleted run {message.correlator}" in result.stdout
            assert collector.get(f"/api/runs/{message.correlator}").status == 404
            assert collector.get("/api/leaderboard?product=minflow").json()["leaderboard"] == []
            assert collector.get("/api/stats?product=minflow").json()["runs"] == 0
        finally:
            collector.stop()


class TestShutdown:
    def test_sigterm_mid_stream_loses_nothing_accepted(self, tmp_path: Path) -> None:
        """SIGTERM during a stream: everything counted as accepted is in the database."""
        collector = CollectorProcess(tmp_path).start()
        messages = [datagram(start_message()) for _ in range(20_000)]
        stop_sending = threading.Event()

        def blast() -> None:
            for data in messages:
                if stop_sending.is_set():
                    return
                collector.send(data)

        sender = threading.Thread(target=blast)
        sender.start()
        wait_for(
            lambda: collector.metrics()["telemetry_collector_received_total"] > 2000,
            what="the stream to be under way",
        )
        try:
            code = collector.stop(signal.SIGTERM, timeout=60)
        finally:
            stop_sending.set()
            sender.join()
        assert code == 0
        final = re.search(r"stopped: received=(\d+) accepted=(\d+) written=(\d+)", collector.log())
        assert final is not None, collector.log()
        received, accepted, written = map(int, final.groups())
        assert received > 2000
        assert accepted == received
        assert written == accepted
        with closing(sqlite3.connect(collector.db)) as db:
            (rows,) = db.execute("SELECT count(*) FROM runs").fetchone()
        assert rows == accepted

    def test_sigint_stops_cleanly(self, tmp_path: Path) -> None:
        """Ctrl-C (SIGINT) stops the collector with status 0 and a final summary line."""
        collector = CollectorProcess(tmp_path).start()
        collector.send(datagram(start_message()))
        collector.wait_processed(1)
        assert collector.stop(signal.SIGINT) == 0
        assert "stopped: received=1 accepted=1 written=1" in collector.log()


class TestHTTP:
    def test_metrics_are_prometheus_text(self, collector: CollectorProcess) -> None:
        """GET /metrics exposes every counter family in the Prometheus text format."""
        response = collector.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.body.decode()
        for family in (
            "received_total", "accepted_total", "rejected_total", "rate_limited_total",
            "write_batches_total", "write_batch_seconds", "queue_depth",
        ):  # fmt: skip
            assert f"# TYPE telemetry_collector_{family} " in text
        assert 'telemetry_collector_rejected_total{reason="unknown_field"}' in text
        assert 'telemetry_collector_write_batch_seconds_bucket{le="+Inf"}' in text

    def test_dashboard_has_a_strict_content_security_policy(
        self, collector: CollectorProcess
    ) -> None:
        """The dashboard and its assets are served with default-src 'self' and nosniff."""
        for path in ("/", "/static/dashboard.js", "/static/dashboard.css", "/api/products"):
            response = collector.get(path)
            assert response.status == 200, path
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        page = collector.get("/").body.decode()
        assert "<script>" not in page  # no inline script: all code is in dashboard.js
        assert "http://" not in page
        assert "https://" not in page

    def test_bad_requests(self, collector: CollectorProcess) -> None:
        """Unknown paths are 404, a malformed correlator 400, other methods 405."""
        assert collector.get("/nope").status == 404
        assert collector.get("/api/runs/not-a-uuid").status == 400
        assert collector.get(f"/api/runs/{uuid.uuid4()}").status == 404
        assert collector.request("POST", "/api/products").status == 405
        assert collector.get("/api/leaderboard?product=minflow&limit=0").status == 400


class TestCommandLine:
    def run_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "telemetry_sdk", *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def test_leaderboard_command(self, tmp_path: Path) -> None:
        """`collector leaderboard --db` prints ranked projects without HTTP."""
        collector = CollectorProcess(tmp_path).start()
        try:
            first = start_message(tracking_level=3, project_name="first")
            collector.send(datagram(first), datagram(close_message(first.correlator)))
            collector.send(datagram(start_message(project_name="second")))
            collector.wait_processed(3)
        finally:
            collector.stop()
        result = self.run_cli("collector", "leaderboard", "--db", str(collector.db))
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == "Leaderboard for minflow"
        assert re.fullmatch(r"\s+1\s+first\s+2\s+1", lines[2])
        assert re.fullmatch(r"\s+2\s+second\s+1\s+1", lines[3])
        as_json = self.run_cli("collector", "leaderboard", "--db", str(collector.db), "--json")
        assert json.loads(as_json.stdout)["minflow"][0]["project"] == "first"

    def test_missing_database(self, tmp_path: Path) -> None:
        """Operator commands on a missing database fail with one clear line."""
        result = self.run_cli("collector", "leaderboard", "--db", str(tmp_path / "none.db"))
        assert result.returncode == 1
        assert "no database at" in result.stderr

    def test_bad_address(self, tmp_path: Path) -> None:
        """A malformed --udp address is a usage error (status 2) naming the format."""
        result = self.run_cli("collector", "--udp", "localhost", "--db", str(tmp_path / "x.db"))
        assert result.returncode == 2
        assert "HOST:PORT" in result.stderr

    def test_port_in_use(self, tmp_path: Path) -> None:
        """A UDP port already taken is a one-line error, status 1, no traceback."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", 0))
            port = taken.getsockname()[1]
            result = self.run_cli(
                "collector", "--udp", f"127.0.0.1:{port}", "--http", "off",
                "--db", str(tmp_path / "x.db"),
            )  # fmt: skip
        assert result.returncode == 1
        assert f"cannot listen for UDP datagrams on 127.0.0.1:{port}" in result.stderr
        assert "Traceback" not in result.stderr

    def test_without_the_server_extra(self, tmp_path: Path) -> None:
        """Without orjson the collector says how to install the extra, in one line, status 1."""
        code = (
            "import sys; sys.modules['orjson'] = None; "
            "from telemetry_sdk.cli import main; "
            f"sys.exit(main(['collector', '--db', {str(tmp_path / 'x.db')!r}]))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            "telemetry-sdk: the collector needs the server extra: "
            "pip install 'telemetry-sdk[server]'"
        ]
