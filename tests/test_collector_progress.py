"""Progress messages (heartbeats) on the collector: an open run's latest counts are kept."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from _collector_support import close_message, start_message

from telemetry_sdk._wire import Component, ProgressMessage
from telemetry_sdk.collector import Record, SQLiteStore, record_from_message

DAY = 20_000 * 86_400
REJECTED = "telemetry_collector_rejected_total"
ACCEPTED = "telemetry_collector_accepted_total"


def start(correlator: str) -> Record:
    return record_from_message(
        start_message(correlator=correlator, tracking_level=3, start=1795305801), DAY
    )


def progress(correlator: str, seq: int, apps: int, fails: int = 0, **changes: Any) -> Record:
    fields: dict[str, Any] = {
        "correlator": correlator,
        "product": "minflow",
        "version": "1.4.0",
        "tracking_level": 3,
        "heartbeat": seq,
        "execution_time": 3600.0 * seq + 0.25,
        "app_count": apps,
        "app_fails": fails,
    }
    fields.update(changes)
    return record_from_message(ProgressMessage(**fields), DAY + seq * 3600)


def close(correlator: str, apps: int, fails: int) -> Record:
    counted = Component("minflow", {"app_count": apps, "app_fails": fails})
    return record_from_message(
        close_message(correlator, execution_time=9000.0, components=(counted,)), DAY + 9000
    )


@pytest.fixture
def store(tmp_path: Path):
    opened = SQLiteStore.open(tmp_path / "store.db")
    yield opened
    opened.close()


def counts(store: SQLiteStore, correlator: str) -> tuple[Any, ...]:
    found = store.get_run(correlator)
    assert found is not None
    (run,) = found["runs"]
    return run["app_count"], run["app_fails"], run["execution_time"], run["has_close"]


class TestProgress:
    def test_the_latest_heartbeat_holds_the_counts_until_the_close(self, store):
        """Each heartbeat replaces the counts; the close's are final."""
        run = str(uuid.uuid4())
        store.write_batch([start(run), progress(run, 1, apps=10, fails=1)])
        assert counts(store, run) == (10, 1, 3600.25, False)
        store.write_batch([progress(run, 2, apps=25, fails=2)])
        assert counts(store, run) == (25, 2, 7200.25, False)
        store.write_batch([close(run, apps=30, fails=2)])
        assert counts(store, run) == (30, 2, 9000.0, True)

    def test_late_repeated_or_post_close_heartbeats_change_nothing(self, store):
        """An older heartbeat, a repeat, or one after the close leaves the run as it was."""
        run = str(uuid.uuid4())
        store.write_batch([start(run), progress(run, 2, apps=25)])
        result = store.write_batch([progress(run, 1, apps=10), progress(run, 2, apps=25)])
        assert result.changed == 0
        assert counts(store, run) == (25, 0, 7200.25, False)
        store.write_batch([close(run, apps=30, fails=2), progress(run, 3, apps=40)])
        assert counts(store, run) == (30, 2, 9000.0, True)

    def test_a_heartbeat_before_its_start_makes_the_run_and_the_start_fills_it(self, store):
        """Datagrams may arrive out of order: the start still fills what a heartbeat began."""
        run = str(uuid.uuid4())
        store.write_batch([progress(run, 1, apps=4, project_name="proj")])
        store.write_batch([start(run)])
        found = store.get_run(run)
        assert found is not None
        (row,) = found["runs"]
        assert (row["level"], row["version"], row["project"]) == (3, "1.4.0", "proj")
        assert row["has_start"]
        assert row["app_count"] == 4

    def test_stats_count_an_open_runs_apps_once(self, store):
        """The app totals follow the latest heartbeat, never adding heartbeats up."""
        run = str(uuid.uuid4())
        store.write_batch([start(run), progress(run, 1, apps=10, fails=1)])
        store.write_batch([progress(run, 2, apps=25, fails=2)])
        apps = store.stats("minflow")["apps"]
        assert (apps["runs"], apps["apps"], apps["failures"]) == (1, 25, 2)
        store.write_batch([close(run, apps=30, fails=3)])
        apps = store.stats("minflow")["apps"]
        assert (apps["runs"], apps["apps"], apps["failures"]) == (1, 30, 3)


@pytest.mark.slow
class TestEndToEnd:
    def test_a_real_runs_heartbeats_reach_a_real_collector(self, tmp_path: Path) -> None:
        """The SDK's heartbeats update the open run in a collector process; the close ends it."""
        from _collector_support import CollectorProcess, wait_for

        from telemetry_sdk import Config, Product, UsageTracker

        collector = CollectorProcess(tmp_path).start()
        try:
            product = Product(
                name="beatflow", version="0.9", endpoint=f"udp://127.0.0.1:{collector.udp[1]}"
            )
            config = Config(
                usage_tracking=3, log_path=tmp_path / "usage.jsonl", heartbeat_interval=1.0
            )
            tracker = UsageTracker(config, product)
            tracker.start()
            for _ in range(3):
                tracker.record_app()

            def open_run() -> Any:
                response = collector.get(f"/api/runs/{tracker.correlator}")
                if response.status != 200:
                    return None
                (row,) = response.json()["runs"]
                return row if row["app_count"] == 3 else None

            row = wait_for(open_run, what="the heartbeat's counts")
            assert not row["has_close"]
            assert row["execution_time"] >= 1.0
            tracker.record_app(failed=True)
            tracker.close()

            def closed_run() -> Any:
                (row,) = collector.get(f"/api/runs/{tracker.correlator}").json()["runs"]
                return row if row["has_close"] else None

            row = wait_for(closed_run, what="the close")
            assert (row["app_count"], row["app_fails"]) == (4, 1)
            metrics = collector.metrics()
            rejected = [v for k, v in metrics.items() if k.startswith(REJECTED)]
            assert sum(rejected) == 0
            accepted = sum(v for k, v in metrics.items() if k.startswith(ACCEPTED))
            assert accepted >= 3  # start, at least one heartbeat, close
        finally:
            collector.kill()
