"""The local log file: its record format, its reader, and its permissions."""

from __future__ import annotations

import stat
from datetime import datetime
from pathlib import Path

from telemetry_sdk._locallog import LogWriter, outcome_record, payload_record, read_log

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
