"""Retention: old run rows go in small batches; the rollups keep what they counted for."""

from __future__ import annotations

import time
import uuid

from _collector_support import start_message, wait_for
from _store_engines import raw_query

from telemetry_sdk.collector import (
    Collector,
    CollectorSettings,
    Record,
    Store,
    open_store,
    record_from_message,
)
from telemetry_sdk.collector._metrics import IngestStats
from telemetry_sdk.collector._retention import BATCH, Retention

DAY = 86_400


def runs_received(days_ago: int, count: int, project: str) -> list[Record]:
    """``count`` runs first received ``days_ago`` days ago."""
    when = int(time.time()) - days_ago * DAY
    return [
        record_from_message(
            start_message(correlator=str(uuid.uuid4()), tracking_level=2, project_name=project),
            when,
        )
        for _ in range(count)
    ]


def views(store: Store) -> tuple[object, ...]:
    """Everything the leaderboard, the stats and the product list show."""
    return (
        store.products(),
        store.leaderboard("minflow"),
        store.stats("minflow").to_json(),
    )


def run_rows(store: Store) -> int:
    return int(raw_query(store.location, "SELECT count(*) FROM runs")[0][0])


class TestRemoveOldRuns:
    def test_old_runs_go_in_batches_and_the_views_keep_their_counts(self, store: Store) -> None:
        """remove_old_runs takes at most `limit` old runs a call; views do not change."""
        old = runs_received(40, 5, "old")
        new = runs_received(2, 3, "new")
        store.write_batch(old + new)
        before = views(store)
        cutoff = int(time.time()) - 30 * DAY
        assert [store.remove_old_runs(cutoff, 2) for _ in range(4)] == [2, 2, 1, 0]
        assert run_rows(store) == 3
        assert views(store) == before
        assert store.get_run(old[0].correlator) is None
        assert store.get_run(new[0].correlator) is not None

    def test_a_sweep_removes_everything_old_one_batch_a_call(self, store: Store) -> None:
        """Retention(days) removes a batch per call until none is left, then waits."""
        store.write_batch(runs_received(100, BATCH + 10, "old"))
        store.write_batch(runs_received(1, 4, "new"))
        retention, stats = Retention(30), IngestStats()
        retention(store, stats)
        assert run_rows(store) == 14
        retention(store, stats)
        assert run_rows(store) == 4
        store.write_batch(runs_received(100, 3, "late"))
        retention(store, stats)  # the next sweep waits for its time
        assert run_rows(store) == 7

    def test_zero_days_keeps_everything(self, store: Store) -> None:
        """The default (0) never removes a run."""
        store.write_batch(runs_received(4000, 3, "ancient"))
        Retention(0)(store, IngestStats())
        assert run_rows(store) == 3


class TestCollectorRetention:
    def test_retain_days_removes_old_runs_while_ingest_goes_on(self, store_url: str) -> None:
        """A collector with retain_days removes old rows on its own; new datagrams still land."""
        seed = open_store(store_url)
        seed.write_batch(runs_received(90, 50, "old"))
        before = views(seed)
        seed.close()
        settings = CollectorSettings(
            udp=("127.0.0.1", 0), http=None, db=store_url, rate=0, retain_days=30,
            writer_process=False,
        )  # fmt: skip
        with Collector(settings) as collector:
            store = open_store(store_url, readonly=True)
            try:
                wait_for(lambda: run_rows(store) == 0, 10, "old runs to be removed")
                assert views(store) == before
            finally:
                store.close()
            assert collector.health().status == 200
