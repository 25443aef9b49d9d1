"""The period API in-process (ASGI app over a real SQLite file), against counts of the runs."""

from __future__ import annotations

import asyncio
import csv
import io
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _history_support import FIRST_DAY, Run, expected_board, expected_upgrades, history, load

from telemetry_sdk import cli
from telemetry_sdk.collector import Metrics, SQLiteStore
from telemetry_sdk.collector._health import assess
from telemetry_sdk.collector._http_app import build_app
from telemetry_sdk.collector._http_views import HTTPContext
from telemetry_sdk.collector._period import date_of
from telemetry_sdk.collector._prometheus import registry_for

HOSTILE = "<img src=x onerror=alert(1)>"


def day(offset: int) -> str:
    return date_of(FIRST_DAY + offset).isoformat()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Run]]:
    """120 days of history and a hostile project name, written through the store."""
    path = tmp_path_factory.mktemp("periods") / "usage.db"
    runs = history(days=120)
    runs.append(Run(FIRST_DAY + 100, "1.2.0", "3.12.1", HOSTILE, 3, True, 2, 1))
    store = SQLiteStore.open(path)
    try:
        load(store, runs)
    finally:
        store.close()
    return path, runs


@pytest.fixture(scope="module")
def api(db: tuple[Path, list[Run]]) -> Iterator[Any]:
    """GET a path of the collector's ASGI app; the JSON answer and the status."""
    path, _ = db
    get, context = _getter(path)
    yield get
    context.close()


def window(first: int, last: int) -> str:
    return f"product=minflow&since={day(first)}&until={day(last)}"


class TestPeriodAPI:
    def test_leaderboard_of_a_period(self, api: Any, db: tuple[Path, list[Run]]) -> None:
        """The leaderboard of days 30-59 is the points of runs started on those days."""
        _, runs = db
        status, body = api(f"/api/leaderboard?{window(30, 59)}&limit=1000")
        assert status == 200
        assert (body["since"], body["until"]) == (day(30), day(59))
        got = [(r["rank"], r["project"], r["points"], r["runs"]) for r in body["leaderboard"]]
        assert got == expected_board(runs, FIRST_DAY + 30, FIRST_DAY + 59)

    def test_stats_of_a_period(self, api: Any, db: tuple[Path, list[Run]]) -> None:
        """Runs, points and runs per day of one week, edges included."""
        _, runs = db
        inside = [r for r in runs if FIRST_DAY + 7 <= r.day <= FIRST_DAY + 13]
        _, body = api(f"/api/stats?{window(7, 13)}")
        assert (body["runs"], body["points"]) == (len(inside), sum(r.points for r in inside))
        per_day = Counter(date_of(r.day).isoformat() for r in inside)
        assert {d["day"]: d["runs"] for d in body["runs_per_day"]} == dict(per_day)

    def test_version_adoption_per_week(self, api: Any, db: tuple[Path, list[Run]]) -> None:
        """120 days are charted per week: runs per version per Monday-to-Sunday week."""
        _, runs = db
        _, body = api(f"/api/adoption/versions?{window(0, 119)}")
        series = body["series"]
        assert series["bucket"] == "week"
        for point in series["points"]:
            start = date_of(0).fromisoformat(point["start"])
            assert start.weekday() == 0
            week = [r for r in runs if 0 <= (date_of(r.day) - start).days < 7]
            assert point["runs"] == len(week)
            assert point["counts"] == {
                v: sum(1 for r in week if r.version == v) for v in series["names"]
            }

    def test_upgrade_times(self, api: Any, db: tuple[Path, list[Run]]) -> None:
        """Each release's days to half of the runs, counted from the runs."""
        _, runs = db
        _, body = api(f"/api/upgrades?{window(0, 119)}")
        expected = expected_upgrades(runs, FIRST_DAY + 119)
        got = {r["version"]: (r["first_day"], r["days"]) for r in body["releases"]}
        assert got == {v: (d.isoformat(), n) for v, (d, n) in expected.items()}
        assert "half of the runs" in body["rule"]

    def test_health_flags_the_bad_release(self, api: Any, db: tuple[Path, list[Run]]) -> None:
        """1.1.0's runs fail far more often than 1.0.0's: flagged, with the counts behind it."""
        _, runs = db
        _, body = api(f"/api/health?{window(0, 119)}")
        rows = {v["version"]: v for v in body["versions"]}
        for version, row in rows.items():
            closed = [r for r in runs if r.version == version and r.closed]
            assert (row["runs"], row["failed_runs"]) == (
                len(closed),
                sum(1 for r in closed if r.fails),
            )
            assert row["apps"] == sum(r.apps for r in closed)
        assert {v for v, row in rows.items() if row["flagged"]} == {"1.1.0"}
        assert rows["1.1.0"]["previous"] == "1.0.0"
        assert rows["1.1.0"]["p_value"] < 0.01
        assert "p < 0.01" in body["rule"]

    def test_never_closed(self, api: Any, db: tuple[Path, list[Run]]) -> None:
        """Level-3 starts without a close per version, as a share."""
        _, runs = db
        _, body = api(f"/api/never-closed?{window(0, 119)}")
        for row in body["versions"]:
            starts = [r for r in runs if r.version == row["version"] and r.level == 3]
            assert row["starts"] == len(starts)
            assert row["never_closed"] == sum(1 for r in starts if not r.closed)

    def test_projects_new_and_returning(self, api: Any, db: tuple[Path, list[Run]]) -> None:
        """Projects of days 60-89: new ones never ran before day 60; the previous period too."""
        _, runs = db
        _, body = api(f"/api/projects?{window(60, 89)}")

        def split(first: int, last: int) -> dict[str, int]:
            inside = {r.project for r in runs if r.project and first <= r.day - FIRST_DAY <= last}
            before = {r.project for r in runs if r.project and r.day - FIRST_DAY < first}
            return {
                "named": len(inside),
                "new": len(inside - before),
                "returning": len(inside & before),
            }

        assert {k: body[k] for k in ("named", "new", "returning")} == split(60, 89)
        assert body["previous"] == split(30, 59)

    def test_components_over_time(self, api: Any, db: tuple[Path, list[Run]]) -> None:
        """Runs that used each component, per day for a 10-day period."""
        _, runs = db
        _, body = api(f"/api/components?{window(0, 9)}")
        series = body["series"]
        assert series["bucket"] == "day"
        assert series["names"] == ["minflow.ThreadPoolExecutor"]
        for point in series["points"]:
            used = sum(1 for r in runs if date_of(r.day).isoformat() == point["start"])
            assert point["counts"] == {"minflow.ThreadPoolExecutor": used}

    def test_all_time_without_a_period(self, api: Any, db: tuple[Path, list[Run]]) -> None:
        """Without since and until the leaderboard is all time, from the first run on."""
        _, runs = db
        status, body = api("/api/leaderboard?product=minflow&limit=1000")
        assert status == 200
        assert body["since"] == day(0)
        got = [(r["rank"], r["project"], r["points"], r["runs"]) for r in body["leaderboard"]]
        assert got == expected_board(runs, FIRST_DAY, FIRST_DAY + 1000)


class TestProductsInAPeriod:
    def test_products_of_a_period(self, api: Any, db: tuple[Path, list[Run]]) -> None:
        """/api/products with since and until counts the runs and points of those days."""
        _, runs = db
        _, body = api(f"/api/products?since={day(10)}&until={day(19)}")
        inside = [r for r in runs if FIRST_DAY + 10 <= r.day <= FIRST_DAY + 19]
        assert body["products"] == [
            {"product": "minflow", "runs": len(inside), "points": sum(r.points for r in inside)}
        ]
        _, later = api(f"/api/products?since={day(500)}&until={day(510)}")
        assert later["products"] == []


class TestBadPeriods:
    @pytest.mark.parametrize(
        ("query", "phrase"),
        [
            ("since=2025-02-30", "since must be YYYY-MM-DD"),
            ("until=2025-1-5", "until must be YYYY-MM-DD"),
            ("since=1999-12-31", "from 2000-01-01"),
            ("since=2025-03-01&until=2025-02-01", "is before since"),
        ],
    )
    def test_bad_dates_are_a_clear_400(self, api: Any, query: str, phrase: str) -> None:
        """A date that does not exist, is malformed, out of range, or out of order: 400."""
        for path in ("/api/leaderboard", "/api/health", "/api/adoption/python"):
            status, body = api(f"{path}?product=minflow&{query}")
            assert status == 400
            assert phrase in body["error"]


class TestReportMatchesAPI:
    def test_report_figures_equal_the_api(
        self, api: Any, db: tuple[Path, list[Run]], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """For the same period, the CSV report's figures are the API's."""
        path, _ = db
        capsys.readouterr()
        status = cli.main(
            ["collector", "report", "--db", str(path), "--product", "minflow",
             "--since", day(40), "--until", day(99), "--format", "csv", "--top", "1000"]
        )  # fmt: skip
        assert status == 0
        sections: dict[str, list[list[str]]] = {}
        current: list[list[str]] = []
        for row in csv.reader(io.StringIO(capsys.readouterr().out)):
            if row[:1] == ["section"]:
                current = sections[row[1]] = []
            elif row:
                current.append(row)
        query = window(40, 99)
        _, stats = api(f"/api/stats?{query}")
        overview = {row[0]: int(row[1]) for row in sections["overview"][1:]}
        assert (overview["runs"], overview["points"]) == (stats["runs"], stats["points"])
        assert overview["apps run"] == stats["apps"]["apps"]
        _, board = api(f"/api/leaderboard?{query}&limit=1000")
        assert [[str(r["rank"]), r["project"], str(r["points"]), str(r["runs"])]
                for r in board["leaderboard"]] == sections["leaderboard"][1:]  # fmt: skip
        _, projects = api(f"/api/projects?{query}")
        assert sections["projects"][1] == [str(projects[k]) for k in ("named", "new", "returning")]
        _, health = api(f"/api/health?{query}")
        assert [(r[0], r[1], r[2], r[-1]) for r in sections["health"][1:]] == [
            (v["version"], str(v["runs"]), str(v["failed_runs"]), "worse" if v["flagged"] else "")
            for v in health["versions"]
        ]
        _, upgrades = api(f"/api/upgrades?{query}")
        days = {r[0]: r[4] for r in sections["versions"][1:]}
        assert days == {
            r["version"]: "not yet" if r["days"] is None else str(r["days"])
            for r in upgrades["releases"]
        }


class TestPage:
    def test_favicon_and_products(self, api: Any) -> None:
        """The favicon is served as SVG; /api/products says which UDP port (unknown here)."""
        status, response = api("/favicon.svg")
        assert status == 200
        assert response.headers["content-type"].startswith("image/svg+xml")
        _, body = api("/api/products")
        assert body["udp_port"] is None
        assert body["products"][0]["product"] == "minflow"


def _getter(path: Path) -> tuple[Any, HTTPContext]:
    metrics = Metrics()
    context = HTTPContext(
        db=str(path),
        registry=registry_for(metrics),
        admin_token=None,
        writable=lambda: SQLiteStore.open(path),
        healthy=lambda: assess(metrics, writer_alive=True, max_queued=1000),
    )
    app = build_app(context, metrics.http)

    def get(url: str) -> tuple[int, Any]:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.get(url)

        response = asyncio.run(go())
        kind = response.headers["content-type"]
        return response.status_code, response.json() if "json" in kind else response

    return get, context


def _ci_records(day_offset: int) -> list[Any]:
    """A closed and an open level-3 run from CI, with a version, Python version, project and
    component no other run has, so every view would show them if it counted them."""
    from _collector_support import close_message, start_message

    from telemetry_sdk._wire import Component
    from telemetry_sdk.collector import record_from_message

    at = (FIRST_DAY + day_offset) * 86_400 + 3600
    out = []
    for closed in (True, False):
        start = start_message(
            version="7.7.7",
            python_v="3.99.0",
            tracking_level=3,
            project_name="ci-bot",
            components=(
                Component("telemetry_sdk.Environment", {"ci": "github_actions"}),
                Component("ci.OnlyInCI"),
            ),
            start=at,
        )
        out.append(record_from_message(start, at))
        if closed:
            close = close_message(start.correlator, version="7.7.7", end=at + 60)
            out.append(record_from_message(close, at + 60))
    return out


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """Two collectors' APIs over the same history: the second also holds runs from CI."""
    directory = tmp_path_factory.mktemp("ci-twins")
    runs = history(days=40)
    getters = []
    contexts = []
    for name, with_ci in (("plain.db", False), ("ci.db", True)):
        store = SQLiteStore.open(directory / name)
        try:
            load(store, runs)
            if with_ci:
                store.write_batch(_ci_records(35))
        finally:
            store.close()
        get, context = _getter(directory / name)
        getters.append(get)
        contexts.append(context)
    yield getters[0], getters[1]
    for context in contexts:
        context.close()


PERIOD_PATHS = [
    "/api/leaderboard",
    "/api/stats",
    "/api/adoption/versions",
    "/api/adoption/python",
    "/api/components",
    "/api/upgrades",
    "/api/projects",
    "/api/health",
    "/api/never-closed",
]


class TestCIInPeriodViews:
    @pytest.mark.parametrize("path", [*PERIOD_PATHS, "/api/products"])
    @pytest.mark.parametrize("query", [f"since={day(0)}&until={day(39)}", f"since={day(30)}", ""])
    def test_ci_runs_left_out_by_default_and_counted_with_ci_include(
        self, twins: tuple[Any, Any], path: str, query: str
    ) -> None:
        """Every view (of a period or all time) answers as if the CI runs were not there, unless
        ?ci=include, which counts them; ci=exclude is the default spelled out."""
        plain, with_ci = twins
        product = "" if path == "/api/products" else "product=minflow&"
        url = f"{path}?{product}{query}"
        status, expected = plain(url)
        assert status == 200
        if path == "/api/products":
            expected.pop("udp_port", None)
        for spelled in (url, f"{url}&ci=exclude"):
            status, got = with_ci(spelled)
            assert status == 200
            if path == "/api/products":
                got.pop("udp_port", None)
            assert got == expected, spelled
        status, included = with_ci(f"{url}&ci=include")
        assert status == 200
        if path == "/api/products":
            included.pop("udp_port", None)
        assert included != expected

    @pytest.mark.parametrize("path", [*PERIOD_PATHS, "/api/products"])
    def test_a_bad_ci_value_is_a_400(self, twins: tuple[Any, Any], path: str) -> None:
        status, body = twins[1](f"{path}?ci=maybe")
        assert status == 400
        assert "ci must be one of exclude, include" in body["error"]
