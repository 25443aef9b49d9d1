"""Several collectors, one PostgreSQL: concurrent writers stay exact.

Writers here are separate stores (separate connections, so PostgreSQL sees them as
separate collectors), on threads, and in the end-to-end test two collector processes.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from pathlib import Path

import pytest
from _collector_support import CollectorProcess, close_message, datagram, start_message
from _store_engines import raw_query

from telemetry_sdk._wire import Component
from telemetry_sdk.collector import Record, Store, open_store, parse

pytestmark = pytest.mark.slow

RECEIVED = int(time.time())
TOKEN = "correct-horse-battery-staple-42"


def parsl_close(correlator: str) -> bytes:
    """A real Parsl close: no product, version or level; joined to its start by correlator."""
    return (
        f'1{{"correlator": "{correlator}", "end": 1795305802, "execution_time": 7, '
        '"components": [{"c": "parsl.dataflow.dflow.DataFlowKernel", "app_count": 5, '
        '"app_fails": 1}, "parsl.executors.threads.ThreadPoolExecutor"]}'
    ).encode()


def workload(runs: int, seed: int) -> tuple[list[bytes], dict[str, str]]:
    """Datagrams: start and close (ours or Parsl's) of ``runs`` runs, each twice, shuffled;
    and each run's product by correlator."""
    rng = random.Random(seed)
    out: list[bytes] = []
    kinds: dict[str, str] = {}
    for index in range(runs):
        correlator = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        project = f"project{index % 7}"
        if index % 3 == 0:
            kinds[correlator] = "parsl"
            out.append(datagram(start_message(
                correlator=correlator, product="parsl", tracking_level=3, project_name=project,
                components=(Component("parsl.config.Config"),),
            )))  # fmt: skip
            out.append(parsl_close(correlator))
        else:
            kinds[correlator] = "minflow"
            out.append(datagram(start_message(
                correlator=correlator, tracking_level=3, project_name=project
            )))  # fmt: skip
            out.append(datagram(close_message(correlator, project_name=project)))
    out = out * 2
    rng.shuffle(out)
    return out, kinds


def as_records(datagrams: list[bytes]) -> list[Record]:
    return [parse(d, RECEIVED) for d in datagrams]


def expected_board(kinds: dict[str, str], gone: set[str], product: str) -> dict[str, int]:
    """Points per project: level 3, so 2 a run."""
    points: dict[str, int] = {}
    for index, (correlator, kind) in enumerate(kinds.items()):
        if kind == product and correlator not in gone:
            name = f"project{index % 7}"
            points[name] = points.get(name, 0) + 2
    return points


def check_exact(store: Store, kinds: dict[str, str], gone: set[str]) -> None:
    """One full row per run, nothing held, deleted runs absent, rollups = recomputation."""
    url = store.location
    rows = raw_query(url, "SELECT count(*), count(DISTINCT corr) FROM runs")
    assert rows == [(len(kinds) - len(gone), len(kinds) - len(gone))]
    assert raw_query(url, "SELECT count(*) FROM runs WHERE NOT (has_start AND has_close)") == [(0,)]
    assert raw_query(url, "SELECT count(*) FROM pending_closes") == [(0,)]
    for product in ("minflow", "parsl"):
        board = {r.project: r.points for r in store.leaderboard(product)}
        assert board == expected_board(kinds, gone, product)
        stats = store.stats(product)
        runs = sum(1 for c, k in kinds.items() if k == product and c not in gone)
        assert (stats.runs, stats.points, stats.levels["3"]) == (runs, 2 * runs, runs)
    incremental = raw_query(url, "SELECT * FROM rollup WHERE runs != 0 ORDER BY 1, 2, 3")
    store.rebuild_rollups()
    assert raw_query(url, "SELECT * FROM rollup WHERE runs != 0 ORDER BY 1, 2, 3") == incremental


class TestConcurrentWriters:
    def test_four_writers_interleaved_stay_exact(self, postgres_url: str) -> None:
        """Four stores write the same runs' messages at once, with deletions: all exact."""
        sent, kinds = workload(600, seed=7)
        records = as_records(sent)
        doomed = set(list(kinds)[::50])
        stores = [open_store(postgres_url) for _ in range(4)]
        errors: list[BaseException] = []

        def write(store: Store, part: list[Record], deletions: list[str]) -> None:
            try:
                for start in range(0, len(part), 97):
                    store.write_batch(part[start : start + 97])
                    if deletions:
                        store.delete_run(deletions.pop())
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [
            threading.Thread(
                target=write, args=(s, records[i::4], sorted(doomed)[i::4]), daemon=True
            )
            for i, s in enumerate(stores)
        ]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            assert errors == []
            # Late datagrams of deleted runs, at every writer: they stay deleted.
            late = [r for r in records if r.correlator in doomed]
            for store in stores:
                assert store.write_batch(late).suppressed == len(late)
            check_exact(stores[0], kinds, doomed)
        finally:
            for store in stores:
                store.close()

    def test_a_close_and_its_start_at_two_writers_at_once_are_joined(
        self, postgres_url: str
    ) -> None:
        """Parsl closes at one writer, their starts at another, at the same moment: joined."""
        sent, kinds = workload(300, seed=11)
        records = as_records(sent)
        parsl = [c for c, k in kinds.items() if k == "parsl"]
        closes = as_records([parsl_close(c) for c in parsl])
        starts = [r for r in records if r.product == "parsl" and r.kind == "start"]
        left, right = open_store(postgres_url), open_store(postgres_url)
        barrier = threading.Barrier(2)

        def write(store: Store, part: list[Record]) -> None:
            barrier.wait()
            for start in range(0, len(part), 10):
                store.write_batch(part[start : start + 10])

        try:
            threads = [
                threading.Thread(target=write, args=(left, closes)),
                threading.Thread(target=write, args=(right, starts)),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            url = left.location
            assert raw_query(url, "SELECT count(*) FROM pending_closes") == [(0,)]
            joined = raw_query(
                url, "SELECT count(*) FROM runs WHERE product = 'parsl' AND has_close"
            )
            assert joined == [(len(parsl),)]
        finally:
            left.close()
            right.close()


class TestTwoCollectorProcesses:
    def test_two_collectors_one_database_10000_runs(
        self, tmp_path: Path, postgres_url: str
    ) -> None:
        """Two collector processes get the same 10,000 runs' messages interleaved and
        repeated, then deletions through either: every count, point and deletion is exact."""
        sent, kinds = workload(10_000, seed=3)
        token = tmp_path / "token"
        token.write_text(TOKEN + "\n")
        token.chmod(0o600)
        collectors = []
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            collectors.append(CollectorProcess(
                tmp_path / name, "--admin-token-file", str(token), db=postgres_url
            ))  # fmt: skip
        counts = [0, 0]
        doomed = sorted(kinds)[:20]
        try:
            for collector in collectors:
                collector.start()
            for number, index in enumerate(range(0, len(sent), 500)):
                side = number % 2
                part = sent[index : index + 500]
                collectors[side].send(*part)
                counts[side] += len(part)
                # Paced: the kernel's receive buffer never overflows.
                collectors[side].wait_processed(counts[side], 60)
            for index, correlator in enumerate(doomed):
                reply = collectors[index % 2].request(
                    "DELETE", f"/api/runs/{correlator}", {"Authorization": f"Bearer {TOKEN}"}
                )
                assert reply.status == 200, reply.body
            # Late datagrams of the deleted runs reach both collectors: dropped by each.
            late = [d for d in sent if any(c.encode() in d for c in doomed)]
            for side, collector in enumerate(collectors):
                collector.send(*late)
                counts[side] += len(late)
                metrics = collector.wait_processed(counts[side], 60)
                assert metrics["telemetry_collector_deleted_run_dropped_total"] == len(late)
        finally:
            for collector in collectors:
                if collector.process is not None:
                    assert collector.stop() == 0, collector.log()
        store = open_store(postgres_url)
        try:
            check_exact(store, kinds, set(doomed))
        finally:
            store.close()


class TestLostConnections:
    def test_killed_connections_lose_nothing(self, postgres_url: str) -> None:
        """When PostgreSQL drops the collector's connections mid-stream, the writer retries on
        new ones and every accepted datagram is written."""
        import socket

        from _collector_support import wait_for

        from telemetry_sdk.collector import Collector, CollectorSettings

        name = f"tc{uuid.uuid4().hex[:12]}"
        url = f"{postgres_url}&application_name={name}"
        settings = CollectorSettings(
            udp=("127.0.0.1", 0), http=None, db=url, rate=0, writer_process=False
        )
        sent, kinds = workload(400, seed=5)
        killed = 0
        with (
            Collector(settings) as collector,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
        ):
            for index, data in enumerate(sent):
                sock.sendto(data, collector.udp_address)
                if index % 400 == 399:
                    time.sleep(0.1)  # the writer has connections open
                    killed += raw_query(
                        postgres_url,
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = ?",
                        (name,),
                    )[0][0]
            wait_for(lambda: collector.metrics.ingest.written == len(sent), 30, "every datagram")
            assert collector.metrics.ingest.lost == 0
        assert killed >= 3
        store = open_store(postgres_url)
        try:
            check_exact(store, kinds, set())
        finally:
            store.close()
