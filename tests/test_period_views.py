"""Period views against expectations computed here, straight from the generated runs."""

from __future__ import annotations

import datetime
import uuid
from collections import Counter
from pathlib import Path

import pytest
from _collector_support import start_message
from _history_support import (
    DAY_S,
    FIRST_DAY,
    Run,
    expected_board,
    expected_upgrades,
    history,
    load,
    records,
)
from _store_engines import raw_execute, raw_query
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemetry_sdk._wire import Component
from telemetry_sdk.collector import Record, Store, open_store, record_from_message
from telemetry_sdk.collector._period import Period, date_of, day_number
from telemetry_sdk.collector._period_views import (
    health,
    leaderboard,
    never_closed,
    period_stats,
    projects,
    releases,
    series,
    totals,
)


def ci_record(day: int, project: str) -> Record:
    """The start of a level-3 run from CI (its Environment component names a CI service)."""
    return record_from_message(
        start_message(
            version="1.0.0",
            tracking_level=3,
            project_name=project,
            components=(Component("telemetry_sdk.Environment", {"ci": "github_actions"}),),
            start=day * DAY_S + 3600,
        ),
        day * DAY_S + 3600,
    )


def board(store: Store, limit: int, window: Period) -> list[dict[str, object]]:
    return [r.to_json() for r in store.view(leaderboard, "minflow", window, limit)]


def period(first: int, last: int) -> Period:
    return Period(date_of(first), date_of(last))


class TestPeriods:
    def test_leaderboard_counts_only_runs_started_in_the_period(self, store: Store) -> None:
        """Points are those of runs whose start day lies in since..until, both ends included."""
        runs = history()
        load(store, runs)
        first, last = FIRST_DAY + 10, FIRST_DAY + 24
        got = [
            (r["rank"], r["project"], r["points"], r["runs"])
            for r in board(store, 100, period(first, last))
        ]
        assert got == expected_board(runs, first, last)

    def test_boundary_days(self, store: Store) -> None:
        """A run on the day before since or after until is out; on since or until it is in."""
        runs = [
            Run(FIRST_DAY + d, "1.0.0", "3.12.1", f"p{d}", 1, False, 0, 0) for d in (0, 1, 5, 6)
        ]
        load(store, runs)
        rows = board(store, 10, period(FIRST_DAY + 1, FIRST_DAY + 5))
        assert sorted(r["project"] for r in rows) == ["p1", "p5"]
        assert store.view(period_stats, "minflow", period(FIRST_DAY + 1, FIRST_DAY + 5)).runs == 2

    def test_day_is_the_start_day_not_the_receipt_day(self, store: Store) -> None:
        """A run received three days after it started counts on the day it started."""
        run = Run(FIRST_DAY + 2, "1.0.0", "3.12.1", "late", 3, True, 2, 0)
        for record in records(run, received_late=3):
            store.write_batch([record])
        assert board(store, 10, period(FIRST_DAY + 2, FIRST_DAY + 2))
        assert not board(store, 10, period(FIRST_DAY + 3, FIRST_DAY + 9))

    def test_equal_points_share_a_rank(self, store: Store) -> None:
        """Two projects with the same points share rank 1; the next is 3 (all time too)."""
        runs = [
            Run(FIRST_DAY, "1.0.0", "3.12.1", "a", 3, False, 0, 0),
            Run(FIRST_DAY, "1.0.0", "3.12.1", "b", 1, False, 0, 0),
            Run(FIRST_DAY, "1.0.0", "3.12.1", "b", 1, False, 0, 0),
            Run(FIRST_DAY, "1.0.0", "3.12.1", "c", 1, False, 0, 0),
        ]
        load(store, runs)
        all_time = [r.to_json() for r in store.leaderboard("minflow", 10)]
        for rows in (all_time, board(store, 10, period(FIRST_DAY, FIRST_DAY))):
            assert [(r["rank"], r["points"]) for r in rows] == [(1, 2), (1, 2), (3, 1)]

    def test_totals_and_series(self, store: Store) -> None:
        """Runs, points and runs per version per day equal counts over the generated runs."""
        runs = history()
        load(store, runs)
        first, last = FIRST_DAY + 5, FIRST_DAY + 34
        inside = [r for r in runs if first <= r.day <= last]
        got = store.view(totals, "minflow", period(first, last))
        assert (got.runs, got.points) == (len(inside), sum(r.points for r in inside))
        assert got.named_projects == len({r.project for r in inside if r.project})
        assert got.apps == sum(r.apps for r in inside if r.closed)
        chart = store.view(series, "minflow", "version", period(first, last))
        assert chart.bucket == "day"
        assert len(chart.points) == last - first + 1
        for point in chart.points:
            day = day_number(point.start)
            on_day = Counter(r.version for r in inside if r.day == day)
            assert point.runs == sum(on_day.values())
            assert point.counts == {v: on_day.get(v, 0) for v in chart.names}
            assert point.other == 0

    def test_long_periods_are_charted_per_week(self, store: Store) -> None:
        """Over 93 days or more, a point is a Monday-to-Sunday week."""
        runs = history(days=100)
        load(store, runs)
        chart = store.view(series, "minflow", "python", period(FIRST_DAY, FIRST_DAY + 99))
        assert chart.bucket == "week"
        assert all(p.start.weekday() == 0 for p in chart.points)
        weeks: Counter[datetime.date] = Counter()
        for run in runs:
            when = date_of(run.day)
            weeks[when - datetime.timedelta(days=when.weekday())] += 1
        assert {p.start: p.runs for p in chart.points} == dict(weeks)

    def test_deletion_leaves_the_period_views(self, store: Store) -> None:
        """A deleted run no longer counts in any period."""
        run = Run(FIRST_DAY, "1.0.0", "3.12.1", "gone", 3, True, 4, 1)
        load(store, [run])
        store.delete_run(run.correlator)
        window = period(FIRST_DAY, FIRST_DAY)
        assert board(store, 10, window) == []
        assert store.view(totals, "minflow", window).runs == 0
        assert store.view(health, "minflow", window) == []


class TestAnswers:
    def test_upgrade_times(self, store: Store) -> None:
        """Days from a release's first run to carrying half of a trailing week's runs."""
        runs = history()
        load(store, runs)
        last = FIRST_DAY + 59
        expected = expected_upgrades(runs, last)
        got = store.view(releases, "minflow", period(FIRST_DAY, last))
        assert {r.version: (r.first_day, r.days) for r in got} == expected
        assert expected["1.1.0"][1] is not None

    def test_worse_release_is_flagged(self, store: Store) -> None:
        """1.1.0 fails far more often than 1.0.0 (flagged); 1.2.0 fails less (not flagged)."""
        runs = history()
        load(store, runs)
        got = {
            h.version: h for h in store.view(health, "minflow", period(FIRST_DAY, FIRST_DAY + 59))
        }
        for version in ("1.0.0", "1.1.0", "1.2.0"):
            mine = [r for r in runs if r.version == version and r.closed]
            assert got[version].runs == len(mine)
            assert got[version].failed_runs == sum(1 for r in mine if r.fails)
            assert got[version].apps == sum(r.apps for r in mine)
        assert got["1.0.0"].flagged is False
        assert got["1.1.0"].previous == "1.0.0"
        assert got["1.1.0"].flagged is True
        assert got["1.2.0"].previous == "1.1.0"
        assert got["1.2.0"].flagged is False

    def test_flag_needs_thirty_runs_a_side(self, store: Store) -> None:
        """Every run of 2.0 failing is not flagged against 29 clean runs of 1.0; with 30 it is."""

        def runs(version: str, n: int, fails: int, day: int) -> list[Run]:
            return [
                Run(FIRST_DAY + day, version, "3.12.1", None, 3, True, 1, int(i < fails))
                for i in range(n)
            ]

        load(store, runs("1.0", 29, 0, 0) + runs("2.0", 30, 30, 1))
        window = period(FIRST_DAY, FIRST_DAY + 1)
        assert [h.flagged for h in store.view(health, "minflow", window)] == [False, False]
        load(store, runs("1.0", 1, 0, 0))
        flags = {h.version: h.flagged for h in store.view(health, "minflow", window)}
        assert flags == {"1.0": False, "2.0": True}

    def test_flag_is_not_raised_for_a_small_difference(self, store: Store) -> None:
        """10 % against 12 % failing runs over 100 runs each is no evidence: no flag."""

        def runs(version: str, fails: int, day: int) -> list[Run]:
            return [
                Run(FIRST_DAY + day, version, "3.12.1", None, 3, True, 1, int(i < fails))
                for i in range(100)
            ]

        load(store, runs("1.0", 10, 0) + runs("2.0", 12, 1))
        (_, second) = store.view(health, "minflow", period(FIRST_DAY, FIRST_DAY + 1))
        assert second.p_value is not None
        assert 0.3 < second.p_value < 0.4
        assert second.flagged is False

    def test_never_closed_share(self, store: Store) -> None:
        """Level-3 starts without a close, per version, as a share of level-3 starts."""
        runs = history()
        load(store, runs)
        got = {
            n.version: n
            for n in store.view(never_closed, "minflow", period(FIRST_DAY, FIRST_DAY + 59))
        }
        for version in ("1.0.0", "1.1.0", "1.2.0"):
            starts = [r for r in runs if r.version == version and r.level == 3]
            open_ = sum(1 for r in starts if not r.closed)
            assert (got[version].starts, got[version].never_closed) == (len(starts), open_)
            assert got[version].share == pytest.approx(open_ / len(starts))

    def test_new_and_returning_projects(self, store: Store) -> None:
        """New: first run in the period; returning: also ran before it."""
        runs = history()
        load(store, runs)
        first, last = FIRST_DAY + 30, FIRST_DAY + 44
        inside = {r.project for r in runs if r.project and first <= r.day <= last}
        before = {r.project for r in runs if r.project and r.day < first}
        got = store.view(projects, "minflow", period(first, last))
        assert (got.named, got.new, got.returning) == (
            len(inside), len(inside - before), len(inside & before),
        )  # fmt: skip
        assert got.new > 0
        assert got.returning > 0


class TestUpgrade:
    @pytest.mark.parametrize("old_version", [3, 4])
    def test_schema_3_or_4_database_gets_day_rollups(
        self, store_url: str, old_version: int
    ) -> None:
        """A schema-3 or schema-4 database (runs on their receipt day, no per-day rows) is
        upgraded once, to schema 5. Schema 4 (main's heartbeats and CI flag) may hold CI runs:
        their per-day rows go under ``ci:`` kinds, out of the default views."""
        runs = history(days=10)
        late = Run(FIRST_DAY + 2, "1.0.0", "3.12.1", "late", 3, True, 2, 0)
        store = open_store(store_url)
        load(store, runs)
        for record in records(late, received_late=3):
            store.write_batch([record])
        if old_version == 4:
            store.write_batch([ci_record(FIRST_DAY + 3, "ci-bot")])
        store.close()
        # What schema 3 and 4 held: the late run counted on its receipt day, no per-day rows.
        for sql in (
            "DELETE FROM rollup WHERE kind LIKE 'day:%' OR kind LIKE 'by:%' "
            "OR kind LIKE 'ci:day:%' OR kind LIKE 'ci:by:%'",
            "UPDATE rollup SET runs = runs - 1, points = points - 2 "
            f"WHERE kind = 'day' AND key = '{FIRST_DAY + 2}'",
            "UPDATE rollup SET runs = runs + 1, points = points + 2 "
            f"WHERE kind = 'day' AND key = '{FIRST_DAY + 5}'",
            f"UPDATE collector_meta SET value = '{old_version}' WHERE key = 'schema_version'",
            # Schema 3 had no ci, last_received or heartbeats columns.
            *(
                [f"ALTER TABLE runs DROP COLUMN {c}" for c in ("ci", "last_received", "heartbeats")]
                if old_version == 3
                else []
            ),
        ):
            raw_execute(store_url, sql)
        store = open_store(store_url)
        try:
            got = board(store, 100, period(FIRST_DAY, FIRST_DAY + 9))
            per_day = {d.day: d.runs for d in store.stats("minflow").runs_per_day}
            with_ci = store.view(
                leaderboard, "minflow", period(FIRST_DAY, FIRST_DAY + 9), 100, True
            )
        finally:
            store.close()
        assert raw_query(
            store_url, "SELECT value FROM collector_meta WHERE key = ?", ["schema_version"]
        ) in ([("5",)], [(5,)])
        ci_rows = [r for r in with_ci if r.project == "ci-bot"]
        assert [(r.points, r.runs) for r in ci_rows] == ([(2, 1)] if old_version == 4 else [])
        everything = [*runs, late]
        expected = expected_board(everything, FIRST_DAY, FIRST_DAY + 9)
        assert [(r["rank"], r["project"], r["points"], r["runs"]) for r in got] == expected
        assert per_day == {
            date_of(d).isoformat(): sum(1 for r in everything if r.day == d)
            for d in {r.day for r in everything}
        }


class TestProperties:
    @settings(
        max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        days=st.lists(st.integers(0, 20), min_size=1, max_size=30),
        window=st.tuples(st.integers(0, 20), st.integers(0, 20)),
    )
    def test_any_window_matches_the_runs(
        self, tmp_path: Path, days: list[int], window: tuple[int, int]
    ) -> None:
        """For any runs and any window, the leaderboard equals the one counted by hand."""
        runs = [
            Run(FIRST_DAY + d, "1.0.0", "3.12.1", f"p{d % 4}", 1 + d % 3, False, 0, 0) for d in days
        ]
        first, last = FIRST_DAY + min(window), FIRST_DAY + max(window)
        store = open_store(tmp_path / f"{uuid.uuid4()}.db")
        try:
            load(store, runs)
            got = board(store, 100, period(first, last))
        finally:
            store.close()
        expected = expected_board(runs, first, last)
        assert [(r["rank"], r["project"], r["points"], r["runs"]) for r in got] == expected


class TestCI:
    def test_ci_runs_are_out_of_every_period_view_unless_included(self, store: Store) -> None:
        """CI runs count in no period view by default; with include_ci each view counts them."""
        runs = history(days=10)
        load(store, runs)
        ci_day = FIRST_DAY + 4
        store.write_batch([ci_record(ci_day, "ci-bot"), ci_record(ci_day, "ci-bot")])
        window = period(FIRST_DAY, FIRST_DAY + 9)
        in_window = [r for r in runs if FIRST_DAY <= r.day <= FIRST_DAY + 9]

        def run_totals(include_ci: bool) -> int:
            return store.view(totals, "minflow", window, include_ci).runs

        assert run_totals(False) == len(in_window)
        assert run_totals(True) == len(in_window) + 2
        default_board = store.view(leaderboard, "minflow", window, 100)
        assert "ci-bot" not in [r.project for r in default_board]
        assert [
            (r["rank"], r["project"], r["points"], r["runs"]) for r in board(store, 100, window)
        ] == expected_board(runs, FIRST_DAY, FIRST_DAY + 9)
        ci_board = store.view(leaderboard, "minflow", window, 100, True)
        assert [(r.points, r.runs) for r in ci_board if r.project == "ci-bot"] == [(4, 2)]
        stats = store.view(period_stats, "minflow", window)
        stats_ci = store.view(period_stats, "minflow", window, True)
        assert stats_ci.runs == stats.runs + 2
        assert stats_ci.levels["3"] == stats.levels["3"] + 2
        versions = store.view(series, "minflow", "version", window)
        versions_ci = store.view(series, "minflow", "version", window, True)
        assert sum(p.runs for p in versions_ci.points) == sum(p.runs for p in versions.points) + 2
        open_default = {r.version: r.starts for r in store.view(never_closed, "minflow", window)}
        open_ci = {r.version: r.starts for r in store.view(never_closed, "minflow", window, True)}
        assert open_ci["1.0.0"] == open_default.get("1.0.0", 0) + 2
        named = store.view(projects, "minflow", window)
        named_ci = store.view(projects, "minflow", window, True)
        assert named_ci.named == named.named + 1
        assert named_ci.new == named.new + 1
