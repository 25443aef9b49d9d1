"""The store contract, on SQLite and PostgreSQL: one row per run, any order, duplicates,
rollups kept exact."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

import pytest
from _collector_support import close_message, run_json, start_message
from _store_engines import ENGINES, fresh_store, raw_query
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemetry_sdk._wire import Component, decode
from telemetry_sdk.collector import Record, SQLiteStore, Store, record_from_message

DAY = 20_000 * 86_400  # some day, as epoch seconds


def parsl_close(correlator: str, project: str | None = None) -> Record:
    """A real Parsl close: no product, version or level; joined to its start by correlator."""
    project_part = f', "project_name": "{project}"' if project else ""
    data = (
        f'1{{"correlator": "{correlator}", "end": 1795305802, "execution_time": 7, '
        '"components": [{"c": "parsl.dataflow.dflow.DataFlowKernel", "app_count": 5, '
        f'"app_fails": 1}}, "parsl.executors.threads.ThreadPoolExecutor"]{project_part}}}'
    ).encode()
    return record_from_message(decode(data), DAY)


def parsl_start(correlator: str, project: str | None = None) -> Record:
    return record_from_message(
        start_message(
            correlator=correlator,
            product="parsl",
            version="2025.03.17",
            tracking_level=3,
            project_name=project,
            components=(Component("parsl.config.Config", {"executors_len": 1}),),
            start=1795305801,
        ),
        DAY,
    )


def start(correlator: str | None = None, **changes: object) -> Record:
    return record_from_message(
        start_message(correlator=correlator or str(uuid.uuid4()), **changes), DAY
    )


def close(correlator: str, **changes: object) -> Record:
    return record_from_message(close_message(correlator, **changes), DAY)


def rollups(store: Store) -> list[tuple[object, ...]]:
    return raw_query(
        store.location,
        "SELECT kind, product, key, runs, points, x, y FROM rollup WHERE runs != 0 "
        "ORDER BY kind, product, key",
    )


def runs_table(store: Store) -> list[tuple[object, ...]]:
    # Not the row id, nor component set ids: those depend on the order of arrival.
    return raw_query(
        store.location,
        "SELECT corr, product, version, python_v, platform, level, project, c1.json, "
        'c2.json, start, "end", execution_time, app_count, app_fails, has_start, '
        "has_close, day, received FROM runs "
        "LEFT JOIN component_sets AS c1 ON c1.id = runs.components "
        "LEFT JOIN component_sets AS c2 ON c2.id = runs.close_components "
        "ORDER BY corr, product",
    )


def leaderboard_from_runs(store: Store, product: str) -> dict[str, tuple[int, int]]:
    """The leaderboard computed straight from the runs, not from the rollups."""
    rows = raw_query(
        store.location,
        "SELECT project, SUM(CASE WHEN level = 3 THEN 2 ELSE 1 END), COUNT(*) FROM runs "
        "WHERE product = ? AND level IS NOT NULL AND project IS NOT NULL GROUP BY project",
        (product,),
    )
    return {name: (int(points), count) for name, points, count in rows}


def board(store: Store, product: str = "minflow") -> dict[str, tuple[int, int]]:
    return {r.project: (r.points, r.runs) for r in store.leaderboard(product)}


class TestRuns:
    def test_points_per_level(self, store: Store) -> None:
        """A level 1 or 2 run earns 1 point, a level 3 run 2 points."""
        store.write_batch(
            [
                start(tracking_level=1, project_name="one"),
                start(tracking_level=2, project_name="two"),
                start(tracking_level=3, project_name="three"),
                start(tracking_level=3, project_name="three"),
            ]
        )
        assert board(store) == {"one": (1, 1), "two": (1, 1), "three": (4, 2)}
        assert next(r.project for r in store.leaderboard("minflow")) == "three"

    def test_start_and_close_in_either_order_make_one_row(self, store: Store) -> None:
        """Start then close, or close then start (even in separate batches): the same run."""
        first, second = str(uuid.uuid4()), str(uuid.uuid4())
        store.write_batch([start(first, tracking_level=3, project_name="p")])
        store.write_batch([close(first, project_name="p")])
        store.write_batch([close(second, project_name="p")])
        store.write_batch([start(second, tracking_level=3, project_name="p")])
        a, b = run_json(store, first), run_json(store, second)
        assert a is not None
        assert b is not None
        assert a["runs"] == b["runs"]
        (row,) = a["runs"]
        assert row["has_start"]
        assert row["has_close"]
        assert row["app_count"] == 3
        assert board(store) == {"p": (4, 2)}

    def test_duplicates_change_nothing(self, store: Store) -> None:
        """Repeating a start or a close, in the same or a later batch, changes no view."""
        correlator = str(uuid.uuid4())
        messages = [start(correlator, tracking_level=3, project_name="p"), close(correlator)]
        store.write_batch(messages)
        before = (runs_table(store), rollups(store))
        result = store.write_batch(messages + messages)
        assert result.changed == 0
        assert (runs_table(store), rollups(store)) == before

    def test_a_close_without_its_start_counts_as_a_level_3_run(self, store: Store) -> None:
        """Our close carries product and level: alone it is already a level-3 run."""
        store.write_batch([close(str(uuid.uuid4()), project_name="lonely")])
        assert board(store) == {"lonely": (2, 1)}
        assert store.stats("minflow").to_json()["levels"] == {"1": 0, "2": 0, "3": 1}

    def test_parsl_close_waits_for_its_start(self, store: Store) -> None:
        """A Parsl close before its start is held, then merged; it is never a run alone."""
        correlator = str(uuid.uuid4())
        store.write_batch([parsl_close(correlator, "probe")])
        held = run_json(store, correlator)
        assert held is not None
        assert held["runs"] == []
        assert held["pending_close"]["app_count"] == 5
        assert [p.to_json() for p in store.products()] == []
        store.write_batch([parsl_start(correlator, "probe")])
        joined = run_json(store, correlator)
        assert joined is not None
        assert joined["pending_close"] is None
        (row,) = joined["runs"]
        assert (row["has_start"], row["has_close"], row["app_count"]) == (True, True, 5)
        assert board(store, "parsl") == {"probe": (2, 1)}

    def test_parsl_close_after_its_start(self, store: Store) -> None:
        """A Parsl close after its start fills the run found by correlator."""
        correlator = str(uuid.uuid4())
        store.write_batch([parsl_start(correlator)])
        store.write_batch([parsl_close(correlator)])
        run = run_json(store, correlator)
        assert run is not None
        assert run["runs"][0]["execution_time"] == 7.0
        stats = store.stats("parsl").to_json()
        assert stats["apps"] == {"runs": 1, "apps": 5, "failures": 1, "failure_rate": 0.2}
        assert {"bucket": "1-10 s", "runs": 1} in stats["execution_time"]

    def test_stats(self, store: Store) -> None:
        """Stats count runs by day, version, Python, platform and component."""
        store.write_batch(
            [
                start(version="1.0", python_v="3.11.7", platform_system="Linux",
                      tracking_level=2, components=(Component("x.A"), Component("x.B"))),
                start(version="1.0", python_v="3.12.1", platform_system="Darwin",
                      tracking_level=2, components=(Component("x.A"),)),
                start(version="2.0", python_v="3.12.1", platform_system="Linux"),
            ]
        )  # fmt: skip
        stats = store.stats("minflow").to_json()
        assert stats["runs"] == 3
        assert stats["runs_per_day"] == [{"day": "2024-10-04", "runs": 3}]
        assert stats["versions"] == [{"name": "1.0", "runs": 2}, {"name": "2.0", "runs": 1}]
        assert stats["python_versions"][0] == {"name": "3.12.1", "runs": 2}
        assert stats["platforms"] == [{"name": "Linux", "runs": 2}, {"name": "Darwin", "runs": 1}]
        assert stats["components"] == [{"name": "x.A", "runs": 2}, {"name": "x.B", "runs": 1}]


class TestDeletion:
    def test_deletion_removes_the_run_everywhere(self, store: Store) -> None:
        """After delete_run the run is gone from get_run, leaderboard, stats and products."""
        gone, kept = str(uuid.uuid4()), str(uuid.uuid4())
        store.write_batch(
            [
                start(gone, tracking_level=3, project_name="gone",
                      components=(Component("x.A"),), start=1795305801),
                close(gone, project_name="gone"),
                start(kept, project_name="kept"),
            ]
        )  # fmt: skip
        assert store.delete_run(gone) == 1
        assert run_json(store, gone) is None
        assert board(store) == {"kept": (1, 1)}
        stats = store.stats("minflow").to_json()
        assert stats["runs"] == 1
        assert stats["components"] == []
        assert stats["apps"]["runs"] == 0
        assert [p.to_json() for p in store.products()] == [
            {"product": "minflow", "runs": 1, "points": 1}
        ]
        expected = rollups(store)
        store.rebuild_rollups()
        assert rollups(store) == expected

    def test_a_deleted_run_stays_deleted(self, store: Store) -> None:
        """Datagrams of a deleted run that arrive later are dropped, not stored."""
        correlator = str(uuid.uuid4())
        store.write_batch([start(correlator)])
        store.delete_run(correlator)
        result = store.write_batch([start(correlator), close(correlator)])
        assert result.suppressed == 2
        assert run_json(store, correlator) is None
        assert [p.to_json() for p in store.products()] == []

    def test_deleting_a_pending_parsl_close(self, store: Store) -> None:
        """A held Parsl close is deleted too."""
        correlator = str(uuid.uuid4())
        store.write_batch([parsl_close(correlator)])
        assert store.delete_run(correlator) == 1
        assert run_json(store, correlator) is None


# -- rollups against a recomputation, under random order, duplicates and deletions --

CORRELATORS = [str(uuid.UUID(int=i + 1, version=4)) for i in range(6)]
PROJECTS = [None, "a", "b", "<b>c</b>"]


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[str, Record | str]]:
    ops: list[tuple[str, Record | str]] = []
    for _ in range(draw(st.integers(1, 25))):
        correlator = draw(st.sampled_from(CORRELATORS))
        kind = draw(st.sampled_from(["start", "close", "parsl_close", "delete"]))
        project = draw(st.sampled_from(PROJECTS))
        day = DAY + draw(st.integers(0, 2)) * 86_400
        product = draw(st.sampled_from(["minflow", "parsl"]))
        if kind == "start":
            message = start_message(
                correlator=correlator,
                product=product,
                tracking_level=draw(st.integers(1, 3)),
                project_name=project,
                version=draw(st.sampled_from(["1", "2"])),
                components=draw(st.sampled_from([None, (Component("x.A"), Component("x.B"))])),
            )
            ops.append(("write", record_from_message(message, day)))
        elif kind == "close":
            message = close_message(
                correlator,
                product=product,
                project_name=project,
                execution_time=draw(st.sampled_from([0.5, 30.0, 5000.0])),
            )
            ops.append(("write", record_from_message(message, day)))
        elif kind == "parsl_close":
            ops.append(("write", parsl_close(correlator, project)))
        elif draw(st.integers(0, 4)) == 0:
            ops.append(("delete", correlator))
    return ops


class TestRollups:
    @pytest.mark.parametrize("engine", ENGINES)
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(operations(), st.integers(1, 6))
    def test_rollups_always_match_the_runs(
        self, tmp_path_factory: pytest.TempPathFactory, engine: str, ops: list, batch_size: int
    ) -> None:
        """After any mix of writes, duplicates and deletions, rollups equal a recomputation."""
        with fresh_store(engine, tmp_path_factory.mktemp("rollups")) as store:
            batch: list[Record] = []
            for action, item in ops:
                if action == "write":
                    batch.append(item)
                    if len(batch) >= batch_size:
                        store.write_batch(batch)
                        batch = []
                else:
                    store.write_batch(batch)
                    batch = []
                    store.delete_run(item)
            store.write_batch(batch)
            incremental = rollups(store)
            for product in ("minflow", "parsl"):
                assert board(store, product) == leaderboard_from_runs(store, product)
            store.rebuild_rollups()
            assert rollups(store) == incremental

    @pytest.mark.parametrize("engine", ENGINES)
    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def test_order_and_repetition_do_not_matter(
        self, tmp_path_factory: pytest.TempPathFactory, engine: str, data: st.DataObject
    ) -> None:
        """A run's start and close in any order, repeated any number of times: same result."""
        records: list[Record] = []
        for correlator in CORRELATORS[: data.draw(st.integers(1, 4))]:
            project = data.draw(st.sampled_from(PROJECTS))
            product = data.draw(st.sampled_from(["minflow", "parsl"]))
            level = data.draw(st.integers(1, 3))
            records.append(start(correlator, product=product, tracking_level=level,
                                 project_name=project))  # fmt: skip
            ending = data.draw(st.sampled_from(["none", "ours", "parsl"]))
            if ending == "ours" and level == 3:
                records.append(close(correlator, product=product, project_name=project))
            elif ending == "parsl":
                records.append(parsl_close(correlator, project))
        repeated = records + data.draw(st.lists(st.sampled_from(records), max_size=6))
        shuffled = data.draw(st.permutations(repeated))
        results = []
        for order in (records, shuffled):
            with fresh_store(engine, tmp_path_factory.mktemp("order")) as store:
                cut = data.draw(st.integers(0, len(order)))
                store.write_batch(order[:cut])
                for item in order[cut:]:
                    store.write_batch([item])
                results.append((runs_table(store), rollups(store)))
        assert results[0] == results[1]


class TestWriter:
    def test_a_record_that_cannot_be_written_costs_only_itself(self, tmp_path: Path) -> None:
        """When the database refuses one record, every other record of its batch is kept."""
        store = SQLiteStore.open(tmp_path / "store.db")
        from _collector_support import datagram

        from telemetry_sdk.collector._metrics import IngestStats
        from telemetry_sdk.collector._writer import ingest

        with closing(sqlite3.connect(store.path)) as db, db:
            db.execute(
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON runs WHEN NEW.project = 'poison' "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        names = ["a", "b", "poison", "c", "d"]
        stats = IngestStats()
        try:
            ingest(store, stats, [datagram(start_message(project_name=n)) for n in names])
            assert board(store) == {"a": (1, 1), "b": (1, 1), "c": (1, 1), "d": (1, 1)}
        finally:
            store.close()
        assert (stats.accepted, stats.written, stats.lost) == (5, 4, 1)
