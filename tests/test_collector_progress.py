"""Heartbeats and CI runs on the collector, on every engine.

An open run keeps its latest counts; runs show as open, closed or never closed; runs from CI
are left out of the views unless asked for.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from _collector_support import close_message, run_json, start_message

from telemetry_sdk._wire import Component, ProgressMessage
from telemetry_sdk.collector import Record, Store, record_from_message

DAY = 20_000 * 86_400
REJECTED = "telemetry_collector_rejected_total"
ACCEPTED = "telemetry_collector_accepted_total"


def environment(ci: str) -> Component:
    return Component(
        "telemetry_sdk.Environment",
        {"cpus": "2-4", "gpus": 0, "scheduler": "none", "container": "none", "ci": ci},
    )


def start(correlator: str, *, ci: str | None = None, project: str | None = None) -> Record:
    components = () if ci is None else (environment(ci),)
    return record_from_message(
        start_message(
            correlator=correlator,
            tracking_level=3,
            start=1795305801,
            project_name=project,
            components=components,
        ),
        DAY,
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


def row(store: Store, correlator: str) -> dict[str, Any]:
    found = run_json(store, correlator)
    assert found is not None
    (only,) = found["runs"]
    return only


def counts(store: Store, correlator: str) -> tuple[Any, ...]:
    run = row(store, correlator)
    return run["app_count"], run["app_fails"], run["execution_time"], run["has_close"]


class TestProgress:
    def test_the_latest_heartbeat_holds_the_counts_until_the_close(self, store):
        """Each heartbeat replaces the counts; the close's are final."""
        run = str(uuid.uuid4())
        store.write_batch([start(run), progress(run, 1, apps=10, fails=1)])
        assert counts(store, run) == (10, 1, 3600.25, False)
        assert row(store, run)["heartbeats"] == 1
        store.write_batch([progress(run, 2, apps=25, fails=2)])
        assert counts(store, run) == (25, 2, 7200.25, False)
        store.write_batch([close(run, apps=30, fails=2)])
        assert counts(store, run) == (30, 2, 9000.0, True)
        assert row(store, run)["last_received"] == DAY + 9000

    def test_late_repeated_or_post_close_heartbeats_keep_the_counts(self, store):
        """An older heartbeat, a repeat, or one after the close leaves the counts as they were."""
        run = str(uuid.uuid4())
        store.write_batch([start(run), progress(run, 2, apps=25)])
        store.write_batch([progress(run, 1, apps=10), progress(run, 2, apps=25)])
        assert counts(store, run) == (25, 0, 7200.25, False)
        store.write_batch([close(run, apps=30, fails=2), progress(run, 3, apps=40)])
        assert counts(store, run) == (30, 2, 9000.0, True)

    def test_a_heartbeat_before_its_start_makes_the_run_and_the_start_fills_it(self, store):
        """Datagrams may arrive out of order: the start still fills what a heartbeat began."""
        run = str(uuid.uuid4())
        store.write_batch([progress(run, 1, apps=4, project_name="proj")])
        store.write_batch([start(run)])
        found = row(store, run)
        assert (found["level"], found["version"], found["project"]) == (3, "1.4.0", "proj")
        assert found["has_start"]
        assert found["app_count"] == 4

    def test_stats_count_an_open_runs_apps_once(self, store):
        """The app totals follow the latest heartbeat, never adding heartbeats up."""
        run = str(uuid.uuid4())
        store.write_batch([start(run), progress(run, 1, apps=10, fails=1)])
        store.write_batch([progress(run, 2, apps=25, fails=2)])
        apps = store.stats("minflow").apps
        assert (apps.runs, apps.apps, apps.failures) == (1, 25, 2)
        store.write_batch([close(run, apps=30, fails=3)])
        apps = store.stats("minflow").apps
        assert (apps.runs, apps.apps, apps.failures) == (1, 30, 3)


class TestStatus:
    def test_open_closed_and_never_closed(self, store):
        """A run heard from lately is open; silent past three intervals, never closed."""
        from telemetry_sdk.collector._store_views import run_json as as_json

        run = str(uuid.uuid4())
        store.write_batch([start(run), progress(run, 1, apps=3)])
        detail = store.get_run(run)
        assert detail is not None
        (stored,) = detail.runs
        heard = DAY + 3600
        assert as_json(stored, now=heard + 3 * 3600)["status"] == "open"
        assert as_json(stored, now=heard + 3 * 3600 + 1)["status"] == "never_closed"
        store.write_batch([close(run, apps=4, fails=0)])
        assert row(store, run)["status"] == "closed"

    def test_below_level_3_there_is_no_status(self, store):
        """A level-1 run has no lifecycle to follow: status is null."""
        record = record_from_message(start_message(tracking_level=1), DAY)
        store.write_batch([record])
        assert row(store, record.correlator)["status"] is None


class TestCI:
    def test_ci_runs_are_flagged_and_left_out_unless_asked_for(self, store):
        """A CI run is stored as such; leaderboard, products and stats leave it out by default."""
        user, ci_run = str(uuid.uuid4()), str(uuid.uuid4())
        store.write_batch(
            [
                start(user, ci="none", project="lab"),
                start(ci_run, ci="github_actions", project="lab"),
                close(user, apps=5, fails=1),
                close(ci_run, apps=50, fails=10),
            ]
        )
        assert row(store, user)["ci"] is False
        assert row(store, ci_run)["ci"] is True
        board = store.leaderboard("minflow")
        assert [(r.project, r.points, r.runs) for r in board] == [("lab", 2, 1)]
        board = store.leaderboard("minflow", include_ci=True)
        assert [(r.project, r.points, r.runs) for r in board] == [("lab", 4, 2)]
        assert [(p.product, p.runs) for p in store.products()] == [("minflow", 1)]
        assert [(p.product, p.runs) for p in store.products(include_ci=True)] == [("minflow", 2)]
        stats = store.stats("minflow")
        assert (stats.runs, stats.apps.apps, stats.levels["3"]) == (1, 5, 1)
        stats = store.stats("minflow", include_ci=True)
        assert (stats.runs, stats.apps.apps, stats.apps.failures) == (2, 55, 11)
        assert stats.versions[0].runs == 2

    def test_a_product_seen_only_in_ci_is_listed_only_with_ci(self, store):
        """A product whose every run came from CI shows up only when CI runs are included."""
        run = str(uuid.uuid4())
        store.write_batch([start(run, ci="gitlab")])
        assert store.products() == []
        assert [p.product for p in store.products(include_ci=True)] == ["minflow"]

    def test_deleting_a_ci_run_removes_it_from_the_ci_views(self, store):
        """Deletion subtracts a CI run from the counts that include CI."""
        run = str(uuid.uuid4())
        store.write_batch([start(run, ci="jenkins", project="p"), close(run, apps=2, fails=0)])
        assert store.delete_run(run) >= 1
        assert store.leaderboard("minflow", include_ci=True) == []
        assert store.products(include_ci=True) == []


class TestSchema:
    def test_a_schema_3_database_gets_the_new_columns_on_open(self, store_url):
        """A database of schema 3 (no ci, last_received, heartbeats) is upgraded and works."""
        from _store_engines import raw_execute, raw_query

        from telemetry_sdk.collector import open_store

        run = str(uuid.uuid4())
        first = open_store(store_url)
        first.write_batch([start(run)])
        first.close()
        for column in ("ci", "last_received", "heartbeats"):
            raw_execute(store_url, f"ALTER TABLE runs DROP COLUMN {column}")
        raw_execute(store_url, "UPDATE collector_meta SET value = '3' WHERE key = 'schema_version'")
        upgraded = open_store(store_url)
        try:
            upgraded.write_batch([progress(run, 1, apps=2)])
            found = row(upgraded, run)
        finally:
            upgraded.close()
        assert (found["heartbeats"], found["app_count"], found["ci"]) == (1, 2, None)
        assert found["last_received"] == DAY + 3600
        (version,) = raw_query(
            store_url, "SELECT value FROM collector_meta WHERE key = 'schema_version'"
        )
        assert int(version[0]) == 5  # schema 4 (this test's columns), then 5 (per-day rollups)


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


class TestHTTP:
    def query(self, tmp_path: Path, *paths: str) -> list[Any]:
        """GET each path through the ASGI app over a store holding a user run and a CI run."""
        from test_http_app import call, make_context

        from telemetry_sdk.collector import Metrics, SQLiteStore

        db = tmp_path / "ci.db"
        store = SQLiteStore.open(db)
        user, ci_run = str(uuid.uuid4()), str(uuid.uuid4())
        store.write_batch(
            [
                start(user, ci="none", project="lab"),
                start(ci_run, ci="travis", project="bot"),
                close(user, apps=5, fails=0),
                close(ci_run, apps=9, fails=0),
            ]
        )
        store.close()
        out = []
        for path in paths:
            metrics = Metrics()
            response = call(make_context(db, metrics), metrics, path)
            out.append((response.status_code, response.json()))
        return out

    def test_ci_runs_appear_only_with_ci_include(self, tmp_path: Path) -> None:
        """?ci=include adds CI runs to the leaderboard, products and stats; default leaves out."""
        found = self.query(
            tmp_path,
            "/api/leaderboard?product=minflow",
            "/api/leaderboard?product=minflow&ci=include",
            "/api/products",
            "/api/products?ci=include",
            "/api/stats?product=minflow&ci=exclude",
            "/api/stats?product=minflow&ci=include",
        )
        assert all(status == 200 for status, _ in found)
        assert [r["project"] for r in found[0][1]["leaderboard"]] == ["lab"]
        assert [r["project"] for r in found[1][1]["leaderboard"]] == ["bot", "lab"]
        assert found[2][1]["products"] == [{"product": "minflow", "runs": 1, "points": 2}]
        assert found[3][1]["products"] == [{"product": "minflow", "runs": 2, "points": 4}]
        assert found[4][1]["apps"]["apps"] == 5
        assert found[5][1]["apps"]["apps"] == 14

    def test_a_bad_ci_value_is_a_clear_400(self, tmp_path: Path) -> None:
        """Anything but exclude or include is refused, saying which values are allowed."""
        ((status, body),) = self.query(tmp_path, "/api/leaderboard?ci=yes")
        assert status == 400
        assert "ci must be one of exclude, include" in body["error"]


class TestCommand:
    def test_collector_leaderboard_leaves_ci_out_unless_asked(self, store_url, capsys) -> None:
        """'collector leaderboard' counts CI runs only with --include-ci."""
        import json

        from telemetry_sdk.collector import open_store
        from telemetry_sdk.collector._cli import main as collector_main

        store = open_store(store_url)
        user, ci_run = str(uuid.uuid4()), str(uuid.uuid4())
        store.write_batch(
            [start(user, ci="none", project="lab"), start(ci_run, ci="azure", project="ci-bot")]
        )
        store.write_batch([record_from_message(start_message(project_name="bot"), DAY)])
        store.close()
        base = ["collector", "leaderboard", "--db", store_url, "--json"]
        assert collector_main(base) == 0
        default = json.loads(capsys.readouterr().out)
        assert collector_main([*base, "--include-ci"]) == 0
        included = json.loads(capsys.readouterr().out)
        assert [r["project"] for r in default["minflow"]] == ["lab", "bot"]
        assert {r["project"] for r in included["minflow"]} == {"lab", "bot", "ci-bot"}
        store = open_store(store_url)
        try:
            assert store.products()[0].runs == 2
            assert store.products(include_ci=True)[0].runs == 3
        finally:
            store.close()
