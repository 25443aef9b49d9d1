"""The local log file: records, reader, permissions, regular files only, rotation, recovery."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from telemetry_sdk import Config, Product, TrackingSettingWarning, _consent
from telemetry_sdk._locallog import (
    LogWriter,
    iter_log,
    outcome_record,
    payload_record,
    read_log,
)
from telemetry_sdk._logsettings import LogLimits

REPO = Path(__file__).resolve().parent.parent

CORRELATOR = "7c886a00-1111-4222-8333-444455556666"
OTHER = "7c886a00-1111-4222-8333-999999999999"


def payload(correlator: str = CORRELATOR) -> dict[str, object]:
    return payload_record(
        product="minflow",
        correlator=correlator,
        kind="start",
        level=3,
        destination="udp://127.0.0.1:50077",
        payload=b'1{"correlator":"x","project_name":"caf\xc3\xa9"}',
    )


class TestRecords:
    def test_payload_record_fields(self):
        """A payload line names the run, the destination and holds the exact datagram text."""
        record = payload()
        assert record["event"] == "payload"
        assert record["payload"] == '1{"correlator":"x","project_name":"café"}'
        assert record["destination"] == "udp://127.0.0.1:50077"
        assert datetime.fromisoformat(record["time"]).utcoffset().total_seconds() == 0

    def test_outcome_record_has_reason_only_when_given(self):
        """An outcome line carries a reason and a size only when there is one."""
        sent = outcome_record(
            product="minflow", correlator=CORRELATOR, kind="close", outcome="sent", nbytes=10
        )
        assert "reason" not in sent
        assert sent["bytes"] == 10
        failed = outcome_record(
            product="minflow",
            correlator=CORRELATOR,
            kind="close",
            outcome="failed",
            reason="timed out",
        )
        assert failed["reason"] == "timed out"
        assert "bytes" not in failed


class TestWriteAndRead:
    def test_round_trip_and_filter_by_correlator(self, tmp_path: Path):
        """Records come back in order, and can be filtered to one run."""
        path = tmp_path / "deep" / "dir" / "usage.jsonl"
        writer = LogWriter()
        writer.write(path, payload())
        writer.write(path, payload(OTHER))
        writer.write(
            path,
            outcome_record(product="minflow", correlator=CORRELATOR, kind="start", outcome="sent"),
        )
        assert writer.flush()
        assert [r["event"] for r in read_log(path)] == ["payload", "payload", "outcome"]
        assert [r["event"] for r in read_log(path, CORRELATOR)] == ["payload", "outcome"]
        assert read_log(path, CORRELATOR)[0]["payload"] == payload()["payload"]

    def test_file_is_private(self, tmp_path: Path):
        """The log file is created readable by its owner only."""
        path = tmp_path / "usage.jsonl"
        writer = LogWriter()
        writer.write(path, payload())
        assert writer.flush()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_torn_and_garbage_lines_are_skipped(self, tmp_path: Path):
        """A half-written, binary or foreign line does not stop the reader."""
        path = tmp_path / "usage.jsonl"
        writer = LogWriter()
        writer.write(path, payload())
        assert writer.flush()
        with path.open("ab") as file:
            file.write(b'{"time": "2026-01-01T00:00:00.000Z", "corr\n')
            file.write(b"\xff\xfe garbage\n")
            file.write(b"[1, 2, 3]\n")
            file.write(b'{"no": "correlator"}\n')
        writer.write(path, payload(OTHER))
        assert writer.flush()
        assert [r["correlator"] for r in read_log(path)] == [CORRELATOR, OTHER]

    def test_missing_file_reads_as_empty(self, tmp_path: Path):
        """Reading a log that does not exist yet gives no records."""
        assert read_log(tmp_path / "none.jsonl") == []

    def test_appends_across_writers(self, tmp_path: Path):
        """Two writers (two processes' worth) append to the same file without losing lines."""
        path = tmp_path / "usage.jsonl"
        first, second = LogWriter(), LogWriter()
        for _ in range(50):
            first.write(path, payload())
            second.write(path, payload(OTHER))
        assert first.flush()
        assert second.flush()
        assert len(read_log(path, CORRELATOR)) == len(read_log(path, OTHER)) == 50


def records(n: int, correlator: str = CORRELATOR) -> list[dict[str, object]]:
    out = []
    for i in range(n):
        record = payload(correlator)
        record["seq"] = i
        out.append(record)
    return out


class TestRegularFilesOnly:
    def test_a_fifo_is_refused_with_one_warning_and_never_blocks(self, tmp_path: Path, caplog):
        """A FIFO nobody reads at the log path is refused at once, with a single warning."""
        path = tmp_path / "usage.jsonl"
        os.mkfifo(path)
        writer = LogWriter()
        began = time.monotonic()
        for record in records(20):
            writer.write(path, record)
        assert writer.flush(5.0)
        assert time.monotonic() - began < 2.0
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "a FIFO" in warnings[0].getMessage()
        assert stat.S_ISFIFO(path.lstat().st_mode)

    def test_a_symlink_to_a_fifo_is_refused(self, tmp_path: Path, caplog):
        """A symlink is followed, and what it points to must be a regular file too."""
        fifo = tmp_path / "pipe"
        os.mkfifo(fifo)
        path = tmp_path / "usage.jsonl"
        path.symlink_to(fifo)
        writer = LogWriter()
        writer.write(path, payload())
        assert writer.flush(5.0)
        assert any("a FIFO" in r.getMessage() for r in caplog.records)

    def test_a_directory_at_the_path_is_refused(self, tmp_path: Path, caplog):
        """A directory where the file should be is reported, not written into."""
        path = tmp_path / "usage.jsonl"
        path.mkdir()
        writer = LogWriter()
        writer.write(path, payload())
        assert writer.flush(5.0)
        assert any("a directory" in r.getMessage() for r in caplog.records)
        assert list(path.iterdir()) == []

    def test_a_symlink_to_a_regular_file_is_followed(self, tmp_path: Path):
        """A log path that is a symlink to a regular file is written through."""
        real = tmp_path / "real.jsonl"
        real.touch()
        path = tmp_path / "usage.jsonl"
        path.symlink_to(real)
        writer = LogWriter()
        writer.write(path, payload())
        assert writer.flush(5.0)
        assert len(read_log(real)) == 1


class TestRotation:
    def test_rotates_at_the_size_and_keeps_the_newest_generations(self, tmp_path: Path):
        """No file passes max_bytes, at most `backups` old files stay, and the newest survive."""
        path = tmp_path / "usage.jsonl"
        writer = LogWriter()
        limits = LogLimits(max_bytes=4096, backups=2)
        for record in records(120):
            writer.write(path, record, limits)
        assert writer.flush(5.0)
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == ["usage.jsonl", "usage.jsonl.1", "usage.jsonl.2", "usage.jsonl.lock"]
        for name in names:
            assert (tmp_path / name).stat().st_size <= 4096
        seqs = [r["seq"] for r in read_log(path)]
        assert seqs == list(range(seqs[0], 120))
        assert seqs[0] > 0

    def test_no_backups_keeps_only_the_current_file(self, tmp_path: Path):
        """With backups=0 the log is one file that starts again at the size limit."""
        path = tmp_path / "usage.jsonl"
        writer = LogWriter()
        for record in records(40):
            writer.write(path, record, LogLimits(max_bytes=4096, backups=0))
        assert writer.flush(5.0)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["usage.jsonl", "usage.jsonl.lock"]
        assert path.stat().st_size <= 4096
        assert read_log(path)[-1]["seq"] == 39

    def test_generations_are_read_oldest_first_and_streamed(self, tmp_path: Path):
        """iter_log yields usage.jsonl.N ... .1 then usage.jsonl, lazily, line by line."""
        path = tmp_path / "usage.jsonl"
        for n, name in enumerate(["usage.jsonl.10", "usage.jsonl.2", "usage.jsonl.1", path.name]):
            record = payload()
            record["seq"] = n
            (tmp_path / name).write_text(json.dumps(record) + "\n")
        (tmp_path / "usage.jsonl.lock").touch()
        (tmp_path / "usage.jsonl.old").write_text(json.dumps(payload()) + "\n")
        stream = iter_log(path)
        assert isinstance(stream, Iterator)
        assert [r["seq"] for r in stream] == [0, 1, 2, 3]


class TestLimitsFromTheEnvironment:
    PRODUCT = Product(name="minflow", version="1.0", endpoint="udp://127.0.0.1:50077")

    def test_variables_set_the_rotation_size_and_backups(self):
        """<PRODUCT>_USAGE_TRACKING_LOG_MAX_BYTES and _LOG_BACKUPS reach the decision."""
        env = {
            "MINFLOW_USAGE_TRACKING_LOG_MAX_BYTES": "65536",
            "MINFLOW_USAGE_TRACKING_LOG_BACKUPS": "0",
        }
        decision = _consent.decide(Config(usage_tracking=3), self.PRODUCT, env)
        assert decision.log_limits == LogLimits(max_bytes=65536, backups=0)

    def test_a_changed_variable_is_seen_by_the_next_tracker(self, monkeypatch):
        """A later tracker in the process sees a new limit (the remembered decision keys on it)."""
        from telemetry_sdk import UsageTracker

        monkeypatch.setenv("MINFLOW_USAGE_TRACKING_LOG_BACKUPS", "2")
        first = UsageTracker(Config(usage_tracking=3), self.PRODUCT)
        monkeypatch.setenv("MINFLOW_USAGE_TRACKING_LOG_BACKUPS", "7")
        second = UsageTracker(Config(usage_tracking=3), self.PRODUCT)
        assert first.decision.log_limits.backups == 2
        assert second.decision.log_limits.backups == 7

    def test_unset_variables_give_ten_mib_and_five_generations(self):
        """The defaults: rotate at 10 MiB, keep 5 previous generations."""
        decision = _consent.decide(Config(usage_tracking=3), self.PRODUCT, {})
        assert decision.log_limits == LogLimits(max_bytes=10 * 1024 * 1024, backups=5)
        assert decision.log_limits.total_bytes == 60 * 1024 * 1024

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("LOG_MAX_BYTES", "10MB"),
            ("LOG_MAX_BYTES", "100"),
            ("LOG_MAX_BYTES", "-5"),
            ("LOG_BACKUPS", "1001"),
            ("LOG_BACKUPS", "two"),
        ],
    )
    def test_bad_values_fall_back_to_the_defaults_with_one_warning(self, name, value):
        """A bad limit means the default and one TrackingSettingWarning; tracking stays on."""
        _consent._reset_warnings()
        env = {f"MINFLOW_USAGE_TRACKING_{name}": value}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            decision = _consent.decide(Config(usage_tracking=3), self.PRODUCT, env)
            _consent.decide(Config(usage_tracking=3), self.PRODUCT, env)
        assert [type(w.message) for w in caught] == [TrackingSettingWarning]
        assert name in str(caught[0].message)
        assert decision.log_limits == LogLimits()
        assert decision.level == 3


class TestRecovery:
    def test_a_removed_directory_is_made_again(self, tmp_path: Path):
        """Removing the log's folder while a process runs does not end its logging."""
        path = tmp_path / "state" / "usage.jsonl"
        writer = LogWriter()
        writer.write(path, payload())
        assert writer.flush(5.0)
        shutil.rmtree(path.parent)
        writer.write(path, payload(OTHER))
        assert writer.flush(5.0)
        assert [r["correlator"] for r in read_log(path)] == [OTHER]

    @pytest.mark.slow
    def test_a_failed_write_is_retried_and_never_swallows_the_next_record(self, tmp_path: Path):
        """A write cut short (file size limit, as on a full disk) leaves a fragment on its own line;
        after the retry interval logging resumes, and the reader skips the fragment."""
        path = tmp_path / "usage.jsonl"
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(FULL_DISK), str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            check=False,
        )
        assert result.returncode == 0, result.stderr
        lines = path.read_bytes().split(b"\n")
        assert any(line and not line.endswith(b"}") for line in lines)  # the torn record
        assert [r["seq"] for r in read_log(path)] == [0, 1000, 1001]
        assert result.stderr.count("cannot write the usage log") == 1
        assert "can be written again" in result.stderr
        # A second process appends after the fragment without losing its first record.
        writer = LogWriter()
        writer.write(path, payload(OTHER))
        assert writer.flush(5.0)
        assert read_log(path)[-1]["correlator"] == OTHER


#: A process whose file size limit stops a write half-way, then is lifted.
FULL_DISK = """
    import logging, resource, signal, sys, time
    from pathlib import Path
    from telemetry_sdk import _locallog
    from telemetry_sdk._locallog import LogWriter, payload_record
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    _locallog.RETRY_INTERVAL = 0.3
    path = Path(sys.argv[1])
    def record(seq):
        r = payload_record(product="minflow", correlator="c-" + str(seq), kind="start",
                           level=3, destination="udp://127.0.0.1:9", payload=b"1{}")
        r["seq"] = seq
        return r
    writer = LogWriter()
    writer.write(path, record(0))
    assert writer.flush(5.0)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 40, hard))
    for seq in range(1, 6):  # the first is cut short, the rest wait for the retry
        writer.write(path, record(seq))
        assert writer.flush(5.0)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    writer.write(path, record(999))  # still inside the retry interval: logger only
    assert writer.flush(5.0)
    time.sleep(0.4)
    writer.write(path, record(1000))
    writer.write(path, record(1001))
    assert writer.flush(5.0)
"""


#: One of many processes writing one small, fast-rotating log through real trackers.
ROTATING_WRITER = """
    import sys
    from telemetry_sdk import Config, Product, UsageTracker
    product = Product(name="minflow", version="1.0", endpoint=sys.argv[1])
    for _ in range(int(sys.argv[3])):
        with UsageTracker(Config(usage_tracking=3, log_path=sys.argv[2]), product) as tracker:
            tracker.record_app()
            print(tracker.correlator, flush=True)
"""


@pytest.mark.slow
class TestManyProcessesRotating:
    def test_sixteen_processes_lose_tear_or_duplicate_no_line_across_rotations(
        self, tmp_path: Path
    ):
        """16 processes, a 4 KiB limit: every payload and outcome line is in exactly one
        generation, whole, and each payload is the datagram that arrived."""
        from telemetry_sdk.testing import capture_datagrams

        path = tmp_path / "usage.jsonl"
        runs_each = 8
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "MINFLOW_USAGE_TRACKING_LOG_MAX_BYTES": "4096",
            "MINFLOW_USAGE_TRACKING_LOG_BACKUPS": "1000",
        }
        with capture_datagrams() as listener:
            procs = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        textwrap.dedent(ROTATING_WRITER),
                        listener.endpoint,
                        str(path),
                        str(runs_each),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                )
                for _ in range(16)
            ]
            outputs = [proc.communicate(timeout=120) for proc in procs]
            assert [proc.returncode for proc in procs] == [0] * 16, outputs
            runs = {line for out, _ in outputs for line in out.split()}
            assert len(runs) == 16 * runs_each
            datagrams = listener.wait_for(2 * len(runs), timeout=10)
        files = [p for p in tmp_path.iterdir() if p.name != "usage.jsonl.lock"]
        assert len(files) > 20  # it really rotated, many times
        lines = []
        for file in files:
            assert file.stat().st_size <= 4096
            raw = file.read_bytes()
            assert raw.endswith(b"\n")
            lines += [json.loads(line) for line in raw.splitlines()]  # none torn
        seen = sorted((r["correlator"], r["kind"], r["event"]) for r in lines)
        expected = sorted(
            (run, kind, event)
            for run in runs
            for kind in ("start", "close")
            for event in ("payload", "outcome")
        )
        assert seen == expected  # none lost, none duplicated
        in_order: dict[str, list[tuple[str, str]]] = {}
        for record in read_log(path):
            in_order.setdefault(record["correlator"], []).append((record["kind"], record["event"]))
        assert {tuple(events) for events in in_order.values()} == {
            (("start", "payload"), ("start", "outcome"), ("close", "payload"), ("close", "outcome"))
        }
        logged = sorted(r["payload"].encode() for r in lines if r["event"] == "payload")
        assert logged == sorted(datagrams)
        assert {r["outcome"] for r in lines if r["event"] == "outcome"} == {"sent"}


class TestStuckFileSystem:
    def test_lines_waiting_for_a_stuck_write_are_bounded(self, tmp_path: Path, monkeypatch, caplog):
        """While a write hangs, at most MAX_PENDING lines wait in memory; the rest go to the
        logger only, with one warning, and the waiting ones are written once it answers."""
        from telemetry_sdk import _locallog, _logfile

        monkeypatch.setattr(_locallog, "MAX_PENDING", 20)
        release = threading.Event()
        real_append = _logfile.LogFile.append

        def hung_append(self, data):
            release.wait(30)
            real_append(self, data)

        monkeypatch.setattr(_logfile.LogFile, "append", hung_append)
        path = tmp_path / "usage.jsonl"
        writer = LogWriter()
        try:
            writer.write(path, payload())
            assert not writer.flush(0.2, stall=None)  # stuck in the first write
            for record in records(100):
                writer.write(path, record)
            behind = [r for r in caplog.records if "is not being written" in r.getMessage()]
            assert len(behind) == 1
        finally:
            release.set()
        assert writer.flush(5.0, stall=None)
        assert 20 <= len(read_log(path)) <= 22
