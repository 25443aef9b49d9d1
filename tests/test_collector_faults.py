"""Faults: full disk, failed commits, a database that cannot be written, a killed or stuck
writer, a full queue, a full kernel buffer; what health says and what is counted as lost."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import threading
import time
import uuid
from contextlib import closing
from pathlib import Path

import pytest
from _collector_support import (
    CollectorProcess,
    close_message,
    datagram,
    run_json,
    start_message,
    wait_for,
)

from telemetry_sdk._errors import ConfigurationError
from telemetry_sdk._wire import Component
from telemetry_sdk.collector import (
    Collector,
    CollectorSettings,
    SQLiteStore,
    StoreError,
    record_from_message,
)
from telemetry_sdk.collector._health import HealthPolicy, assess
from telemetry_sdk.collector._metrics import IngestStats, Metrics
from telemetry_sdk.collector._writer import ingest

DAY = 20_000 * 86_400
M = "telemetry_collector_"


def components_of(name: str, count: int = 30) -> tuple[Component, ...]:
    """A component list of its own: ``count`` distinct names under ``name``."""
    return tuple(Component(f"{name}.part{i:03d}.Module", {}) for i in range(count))


def start_with(components: tuple[Component, ...]) -> tuple[str, object]:
    message = start_message(tracking_level=2, components=components)
    return message.correlator, record_from_message(message, DAY)


def names(run: dict) -> list[str]:
    return [c if isinstance(c, str) else c["c"] for c in run["runs"][0]["components"]]


def foreign_key_problems(path: str | Path) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute("PRAGMA foreign_key_check").fetchall()


def set_write_version(path: Path, version: int) -> None:
    """Mark the database read-only (3) or writable (2) in its header, for every user.

    SQLite treats a file whose write version (byte 18) is above 2 as read-only: a database
    the collector cannot write, without changing permissions (which root ignores).
    """
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(path, "r+b") as file:
        file.seek(18)
        file.write(bytes([version]))


def writer_pid(collector: CollectorProcess) -> int | None:
    """The collector process's child (its writer), if one runs."""
    assert collector.process is not None
    children: list[str] = []
    # Each thread lists the children it started (the supervisor thread starts new writers).
    for task in Path(f"/proc/{collector.process.pid}/task").glob("*"):
        try:
            children += (task / "children").read_text().split()
        except OSError:
            continue
    return int(children[0]) if children else None


def health(collector: CollectorProcess) -> tuple[int, dict]:
    response = collector.get("/healthz")
    return response.status, response.json()


def final_line(collector: CollectorProcess) -> dict[str, int]:
    match = re.search(r"stopped: (.*)", collector.log())
    assert match is not None, collector.log()
    return {k: int(v) for k, v in (item.split("=") for item in match.group(1).split())}


class TestFailedTransactions:
    def test_full_disk_leaves_no_stale_component_id(self, tmp_path: Path) -> None:
        """After SQLITE_FULL, and once space returns, every run keeps its own components."""
        store = SQLiteStore.open(tmp_path / "full.db")
        try:
            store.write_batch([start_with(components_of("warmup"))[1]])
            conn = store._conn
            (pages,) = conn.execute("PRAGMA page_count").fetchone()
            conn.execute(f"PRAGMA max_page_count = {pages}")
            doomed = [start_with(components_of(f"doomed{i}")) for i in range(40)]
            with pytest.raises(sqlite3.OperationalError) as failure:
                store.write_batch([record for _, record in doomed])
            in_transaction = conn.in_transaction
            conn.execute("PRAGMA max_page_count = 1073741823")  # space is back
            # New lists take the ids the failed transaction had used; then the old lists return.
            others = [start_with(components_of(f"other{i}")) for i in range(40)]
            store.write_batch([record for _, record in others])
            again = [start_with(components_of(f"doomed{i}")) for i in range(40)]
            store.write_batch([record for _, record in again])
            for index, (correlator, _) in enumerate(again):
                run = run_json(store, correlator)
                assert run is not None
                assert names(run)[0] == f"doomed{index}.part000.Module"
            for correlator, _ in doomed:
                assert run_json(store, correlator) is None
        finally:
            store.close()
        assert foreign_key_problems(tmp_path / "full.db") == []
        # The error raised is the real one, and no transaction was left open.
        assert "full" in str(failure.value)
        assert not in_transaction

    def test_a_failed_commit_leaves_nothing_behind(self, tmp_path: Path) -> None:
        """When COMMIT itself fails, the database and the id cache are as before the batch."""
        store = SQLiteStore.open(tmp_path / "commit.db")
        try:
            conn = store._conn
            # A deferred foreign key is checked at COMMIT only: this one fails there.
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(
                "CREATE TABLE sabotage (ref INTEGER REFERENCES component_sets (id) "
                "DEFERRABLE INITIALLY DEFERRED)"
            )
            conn.execute(
                "CREATE TRIGGER sabotage_commit AFTER INSERT ON runs "
                "WHEN NEW.project = 'sabotage' BEGIN INSERT INTO sabotage VALUES (-1); END"
            )
            message = start_message(
                tracking_level=2, project_name="sabotage", components=components_of("bad")
            )
            with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
                store.write_batch([record_from_message(message, DAY)])
            assert not conn.in_transaction
            assert run_json(store, message.correlator) is None
            with closing(sqlite3.connect(store.path)) as db:
                assert db.execute("SELECT count(*) FROM component_sets").fetchone() == (0,)
            conn.execute("DROP TRIGGER sabotage_commit")
            others = [start_with(components_of(f"other{i}")) for i in range(5)]
            store.write_batch([record for _, record in others])
            retry = start_message(tracking_level=2, components=components_of("bad"))
            store.write_batch([record_from_message(retry, DAY)])
            run = run_json(store, retry.correlator)
            assert run is not None
            assert names(run)[0] == "bad.part000.Module"
        finally:
            store.close()
        assert foreign_key_problems(tmp_path / "commit.db") == []

    def test_failed_writes_are_counted_as_lost_and_make_health_fail(self, tmp_path: Path) -> None:
        """A batch that cannot be written is counted as lost, and health says writes fail."""
        store = SQLiteStore.open(tmp_path / "lost.db")
        metrics = Metrics()
        try:
            ingest(store, metrics.ingest, [datagram(start_message())])
            (pages,) = store._conn.execute("PRAGMA page_count").fetchone()
            store._conn.execute(f"PRAGMA max_page_count = {pages}")
            batch = [
                datagram(start_message(tracking_level=2, components=components_of(f"x{i}")))
                for i in range(20)
            ]
            ingest(store, metrics.ingest, batch)
            lost = metrics.ingest.lost
            assert lost > 0
            assert metrics.ingest.accepted == 21
            assert metrics.ingest.written == 21 - lost
            verdict = assess(metrics, writer_alive=True, max_queued=100)
            assert (verdict.status, verdict.body["reasons"]) == (503, ["writes_failing"])
            store._conn.execute("PRAGMA max_page_count = 1073741823")
            ingest(store, metrics.ingest, [datagram(start_message())])
            assert assess(metrics, writer_alive=True, max_queued=100).status == 200
        finally:
            store.close()
        assert metrics.lost == lost
        assert foreign_key_problems(tmp_path / "lost.db") == []


class TestSnapshots:
    def test_get_run_sees_one_state_while_a_close_is_joined(self, tmp_path: Path) -> None:
        """A run whose held close is joined between get_run's two reads is still found."""
        path = tmp_path / "snap.db"
        writer = SQLiteStore.open(path)
        reader = SQLiteStore.open(path, readonly=True)
        correlator = str(uuid.uuid4())
        close = (
            f'1{{"correlator": "{correlator}", "end": 1795305802, "execution_time": 7, '
            '"components": [{"c": "parsl.dataflow.dflow.DataFlowKernel", "app_count": 5, '
            '"app_fails": 1}]}'
        ).encode()
        try:
            ingest(writer, IngestStats(), [close])
            joined: list[bool] = []

            def between(statement: str) -> None:
                # Right before the second read, the start arrives and takes the held close.
                if "pending_closes" in statement and not joined:
                    joined.append(True)
                    ingest(writer, IngestStats(), [datagram(start_message(correlator=correlator))])

            reader._conn.set_trace_callback(between)
            run = run_json(reader, correlator)
            reader._conn.set_trace_callback(None)
            assert joined == [True]
            assert run is not None
            assert (run["runs"], run["pending_close"]["app_count"]) == ([], 5)
            after = run_json(reader, correlator)
            assert after is not None
            assert after["pending_close"] is None
            assert after["runs"][0]["has_close"] is True
        finally:
            reader.close()
            writer.close()


class TestHealthDecision:
    def test_each_reason(self) -> None:
        """Writer down, failing writes, a nearly full queue and stalled writes each give 503."""
        now = time.time()
        metrics = Metrics(started=now - 100)
        assert assess(metrics, writer_alive=True, max_queued=100, now=now).status == 200
        assert assess(metrics, writer_alive=False, max_queued=100, now=now).body["reasons"] == [
            "writer_down"
        ]
        metrics.waiting = 81
        verdict = assess(metrics, writer_alive=True, max_queued=100, now=now)
        assert verdict.body["reasons"] == ["queue_near_full", "writes_stalled"]
        metrics.ingest.observe(0.01, 1)
        verdict = assess(metrics, writer_alive=True, max_queued=100, now=time.time())
        assert verdict.body["reasons"] == ["queue_near_full"]
        metrics.waiting = 5
        assert assess(metrics, writer_alive=True, max_queued=100).status == 200
        policy = HealthPolicy(stale_seconds=10)
        later = time.time() + 11
        verdict = assess(metrics, writer_alive=True, max_queued=100, policy=policy, now=later)
        assert verdict.body["reasons"] == ["writes_stalled"]
        metrics.waiting = 0
        assert assess(metrics, writer_alive=True, max_queued=100, now=later).status == 200

    def test_policy_values_are_checked(self) -> None:
        """A queue fraction outside (0, 1] or a non-positive stale time is refused."""
        with pytest.raises(ConfigurationError, match="queue_fraction"):
            HealthPolicy(queue_fraction=1.5)
        with pytest.raises(ConfigurationError, match="stale_seconds"):
            HealthPolicy(stale_seconds=0)


@pytest.mark.slow
class TestUnwritableDatabase:
    def test_refuses_to_start_on_a_read_only_database(self, tmp_path: Path) -> None:
        """A database the collector cannot write: it exits 1 saying so, before listening."""
        db = tmp_path / "ro.db"
        SQLiteStore.open(db).close()
        set_write_version(db, 3)
        collector = CollectorProcess(tmp_path, db=db)
        try:
            with pytest.raises(AssertionError, match="exited early") as failure:
                collector.start()
            assert collector.process is not None
            assert collector.process.wait(10) == 1
        finally:
            collector.kill()
        assert "cannot write the database" in str(failure.value)
        assert "receiving UDP" not in collector.log()

    def test_refuses_a_database_in_a_missing_directory(self, tmp_path: Path) -> None:
        """A path whose directory does not exist: StoreError naming the file."""
        db = tmp_path / "no-such-directory" / "usage.db"
        with pytest.raises(StoreError, match=f"cannot write the database {re.escape(str(db))}"):
            SQLiteStore.open(db)

    @pytest.mark.skipif(os.geteuid() == 0, reason="root may write read-only files")
    def test_refuses_a_read_only_file_or_directory(self, tmp_path: Path) -> None:
        """A read-only file, or a directory where -wal cannot be made: refused by the store."""
        db = tmp_path / "perm.db"
        SQLiteStore.open(db).close()
        db.chmod(0o444)
        with pytest.raises(StoreError, match="cannot write"):
            SQLiteStore.open(db)
        db.chmod(0o644)
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        tmp_path.chmod(0o555)
        try:
            with pytest.raises(StoreError, match="cannot write"):
                SQLiteStore.open(db)
        finally:
            tmp_path.chmod(0o755)

    def test_read_only_mid_run_is_unhealthy_then_recovers(self, tmp_path: Path) -> None:
        """Read-only mid-run: the restarted writer cannot open it, 503; writable again: all in."""
        collector = CollectorProcess(tmp_path).start()
        try:
            first = start_message()
            collector.send(datagram(first))
            collector.wait_processed(1)
            pid = writer_pid(collector)
            assert pid is not None
            set_write_version(collector.db, 3)
            os.kill(pid, signal.SIGKILL)
            late = [start_message() for _ in range(20)]
            collector.send(*(datagram(m) for m in late))
            _status, body = wait_for(
                lambda: (s := health(collector))[0] == 503 and s, what="health to fail"
            )
            assert "writer_down" in body["reasons"]
            wait_for(lambda: "cannot write the database" in collector.log(), what="the reason")
            set_write_version(collector.db, 2)
            wait_for(lambda: health(collector)[0] == 200, timeout=20, what="health to recover")
            collector.wait_processed(21)
            for message in late:
                assert collector.get(f"/api/runs/{message.correlator}").status == 200
        finally:
            assert collector.stop() == 0
        line = final_line(collector)
        assert (line["accepted"], line["written"], line["lost"]) == (21, 21, 0)

    def test_failing_writes_are_unhealthy_and_counted(self, tmp_path: Path) -> None:
        """Every write failing: 503 writes_failing, the loss counted and in the final line."""
        collector = CollectorProcess(tmp_path).start()
        try:
            collector.send(datagram(start_message()))
            collector.wait_processed(1)
            with closing(sqlite3.connect(collector.db)) as db:
                db.execute(
                    "CREATE TRIGGER refuse_all BEFORE INSERT ON runs "
                    "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
                )
                db.commit()
            collector.send(*(datagram(start_message()) for _ in range(3)))
            _status, body = wait_for(
                lambda: (s := health(collector))[0] == 503 and s, what="health to fail"
            )
            assert body["reasons"] == ["writes_failing"]
            wait_for(lambda: collector.metrics()[M + "lost_total"] == 3, what="3 lost")
            with closing(sqlite3.connect(collector.db)) as db:
                db.execute("DROP TRIGGER refuse_all")
                db.commit()
            collector.send(datagram(start_message()))
            wait_for(lambda: health(collector)[0] == 200, what="health to recover")
        finally:
            assert collector.stop() == 0
        line = final_line(collector)
        assert (line["accepted"], line["written"], line["write_lost"], line["lost"]) == (5, 2, 3, 3)


@pytest.mark.slow
class TestSupervisedWriter:
    def test_sigkilled_writer_loses_nothing(self, tmp_path: Path) -> None:
        """SIGKILL the writer five times mid-stream: every run is stored exactly once."""
        collector = CollectorProcess(tmp_path).start()
        runs = [start_message(tracking_level=3) for _ in range(3000)]
        stream = [datagram(m) for m in runs] + [datagram(close_message(m.correlator)) for m in runs]
        done = threading.Event()

        def send() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                for index, data in enumerate(stream):
                    sock.sendto(data, collector.udp)
                    if index % 50 == 49:
                        time.sleep(0.02)  # about 2,500 datagrams/s: no kernel drops
            done.set()

        sender = threading.Thread(target=send)
        sender.start()
        try:
            killed: set[int] = set()
            while len(killed) < 5:
                pid = wait_for(
                    lambda: (p := writer_pid(collector)) not in killed and p, what="a writer"
                )
                time.sleep(0.15)
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            done.wait(60)
            metrics = collector.wait_processed(len(stream), timeout=60)
            assert metrics[M + "writer_restarts_total"] >= 5
            assert metrics[M + "kernel_dropped_total"] == 0
            assert health(collector)[0] == 200
        finally:
            sender.join()
            assert collector.stop() == 0
        with closing(sqlite3.connect(collector.db)) as db:
            rows = db.execute(
                "SELECT count(*), sum(has_start), sum(has_close) FROM runs"
            ).fetchone()
            corrs = {bytes(r[0]) for r in db.execute("SELECT corr FROM runs")}
        assert rows == (3000, 3000, 3000)
        assert corrs == {uuid.UUID(m.correlator).bytes for m in runs}
        line = final_line(collector)
        assert line["lost"] == 0
        assert line["accepted"] >= len(stream)

    def test_queue_above_its_threshold_is_unhealthy_and_overflow_is_lost(
        self, tmp_path: Path
    ) -> None:
        """A stuck writer: 503 above 80 % of the queue cap; the overflow is counted as lost."""
        collector = CollectorProcess(tmp_path, "--max-queued", "100").start()
        try:
            assert health(collector)[0] == 200
            pid = writer_pid(collector)
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            try:
                for _ in range(90):
                    collector.send(datagram(start_message()))
                    time.sleep(0.002)
                _status, body = wait_for(
                    lambda: (s := health(collector))[0] == 503 and s, what="health to fail"
                )
                assert "queue_near_full" in body["reasons"]
                assert body["queue"] == {"waiting": 90, "cap": 100}
                for _ in range(30):
                    collector.send(datagram(start_message()))
                    time.sleep(0.002)
                wait_for(lambda: collector.metrics()[M + "received_total"] == 120)
            finally:
                os.kill(pid, signal.SIGCONT)
            wait_for(lambda: health(collector)[0] == 200, what="health to recover")
        finally:
            assert collector.stop() == 0
        line = final_line(collector)
        # Bursts are queued whole or dropped whole: at least the 20 beyond the cap are lost.
        assert line["queue_dropped"] >= 20
        assert line["written"] + line["queue_dropped"] == 120
        assert line["lost"] == line["queue_dropped"]

    def test_stop_timeout_counts_what_was_not_written(self, tmp_path: Path) -> None:
        """A writer that cannot finish before the stop timeout: the rest is counted lost."""
        settings = CollectorSettings(
            udp=("127.0.0.1", 0), http=None, db=tmp_path / "t.db", rate=0, stop_timeout=1.0
        )
        collector = Collector(settings).start()
        pid = collector.writer_pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _ in range(50):
                sock.sendto(datagram(start_message()), collector.udp_address)
        wait_for(lambda: collector.metrics.received == 50)
        collector.stop()
        summary = collector.metrics.summary()
        assert (summary["written"], summary["stop_lost"], summary["lost"]) == (0, 50, 50)


@pytest.mark.slow
class TestCounters:
    def test_kernel_buffer_drops_are_counted(self, tmp_path: Path) -> None:
        """Datagrams the kernel drops while the collector is stalled appear in /metrics."""
        collector = CollectorProcess(tmp_path, "--rcvbuf", "4096").start()
        try:
            assert collector.process is not None
            os.kill(collector.process.pid, signal.SIGSTOP)
            try:
                collector.send(*(datagram(start_message()) for _ in range(500)))
            finally:
                os.kill(collector.process.pid, signal.SIGCONT)

            def settled() -> dict[str, float] | None:
                m = collector.metrics()
                counted = m[M + "received_total"] + m[M + "kernel_dropped_total"]
                return m if counted == 500 else None

            metrics = wait_for(settled, what="every datagram received or counted as dropped")
            assert metrics[M + "kernel_dropped_total"] > 0
            assert "KiB granted" in collector.log()
        finally:
            assert collector.stop() == 0
        line = final_line(collector)
        assert line["kernel_dropped"] == line["lost"] > 0

    def test_held_closes_expire(self, tmp_path: Path) -> None:
        """A Parsl close whose start never comes is dropped after --held-close-ttl, counted."""
        collector = CollectorProcess(tmp_path, "--held-close-ttl", "1").start()
        try:
            correlator = str(uuid.uuid4())
            close = (
                f'1{{"correlator": "{correlator}", "end": 1795305802, "execution_time": 7, '
                '"components": ["parsl.dataflow.dflow.DataFlowKernel"]}'
            ).encode()
            collector.send(close)
            collector.wait_processed(1)
            wait_for(
                lambda: collector.metrics()[M + "held_closes_expired_total"] == 1,
                what="the held close to expire",
            )
            assert collector.get(f"/api/runs/{correlator}").status == 404
            assert health(collector)[1]["held_closes"] == 0
        finally:
            assert collector.stop() == 0
