"""The dashboard in a real headless Chromium at 1280 and 390 px, over a real collector."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _chromium import CHROMIUM, Browser, Page
from _collector_support import CollectorProcess, close_message, datagram, start_message
from _history_support import DAY_S, Run, datagrams, history

from telemetry_sdk._wire import Component
from telemetry_sdk.collector._period import day_number

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium (Debian: chromium)"),
]

SCRIPT_NAME = "<script>alert(1)</script>"
IMG_NAME = "<img src=x onerror=alert(2)>"
HOSTILE_VERSION = "<b>9.9</b>"
LONG_COMPONENT = "minflow.executors.AVeryLongComponentNameThatCannotFitOnAnyAxisLabel" * 2
CHARTS = [
    "chart-adoption", "chart-health", "chart-python", "chart-runs", "chart-components",
    "chart-open", "chart-platforms", "chart-exec",
]  # fmt: skip
WIDTHS = [1280, 390]
CI_PROJECT = "ci-bot"


def today() -> int:
    return day_number(datetime.datetime.now(datetime.UTC).date())


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[CollectorProcess, list[Run]]]:
    """A collector that received 40 days of history, hostile names and a long component, and
    one CI run (not in the runs returned: the page leaves it out unless asked)."""
    directory = tmp_path_factory.mktemp("browser")
    collector = CollectorProcess(directory, "--rate", "0", "--global-rate", "0").start()
    try:
        runs = history(seed=3, days=40, first_day=today() - 39)
        runs += [
            Run(today() - 1, "1.2.0", "3.12.1", SCRIPT_NAME, 3, True, 3, 1),
            Run(today() - 1, "1.2.0", "3.12.1", IMG_NAME, 1, False, 0, 0),
            Run(today() - 2, HOSTILE_VERSION, "3.12.1", None, 3, True, 2, 0,
                components=(LONG_COMPONENT,)),
        ]  # fmt: skip
        sent = 0
        for run in runs:
            collector.send(*datagrams(run))
            sent += len(datagrams(run))
        ci_run = start_message(
            version="1.2.0",
            python_v="3.12.1",
            tracking_level=3,
            project_name=CI_PROJECT,
            components=(Component("telemetry_sdk.Environment", {"ci": "github_actions"}),),
            start=(today() - 1) * DAY_S + 3600,
        )
        collector.send(
            datagram(ci_run),
            datagram(close_message(ci_run.correlator, version="1.2.0",
                                   end=(today() - 1) * DAY_S + 3660)),
        )  # fmt: skip
        sent += 2
        collector.wait_processed(sent)
        yield collector, runs
    finally:
        collector.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    opened = Browser(tmp_path_factory.mktemp("chromium"))
    yield opened
    opened.close()


def url(collector: CollectorProcess, query: str = "") -> str:
    return f"http://{collector.http[0]}:{collector.http[1]}/{query}"


def loaded(browser: Browser, address: str, width: int) -> Page:
    page = browser.page(width)
    page.goto(address)
    page.wait_for("document.body.dataset.loaded === 'true'")
    return page


CHART_FACTS = """
[...document.querySelectorAll('.chart')].map((chart) => ({
  id: chart.id,
  svg: chart.querySelector('svg') !== null,
  x: (chart.querySelector('.x-label') || {}).textContent || '',
  y: (chart.querySelector('.y-label') || {}).textContent || '',
  legend: [...chart.querySelectorAll('.legend li')].map((li) => li.textContent),
  rows: chart.querySelectorAll('details table tbody tr').length,
}))
"""


class TestLayout:
    @pytest.mark.parametrize("width", WIDTHS)
    def test_no_horizontal_overflow(
        self, served: tuple[CollectorProcess, list[Run]], browser: Browser, width: int
    ) -> None:
        """At 1280 and 390 px nothing is wider than the window, with every table open.

        A chart's table of numbers may scroll inside its own box; nothing else may be wider.
        """
        page = loaded(browser, url(served[0]), width)
        page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
        sizes = page.evaluate(
            "({scroll: document.documentElement.scrollWidth, window: window.innerWidth,"
            " widest: Math.max(...[...document.querySelectorAll('body *')]"
            ".filter((e) => !e.closest('.table-scroll table'))"
            ".map((e) => e.getBoundingClientRect().right))})"
        )
        assert sizes["window"] == width
        assert sizes["scroll"] <= width
        assert sizes["widest"] <= width + 0.5

    @pytest.mark.parametrize("width", WIDTHS)
    def test_every_chart_has_axes_a_legend_and_a_table(
        self, served: tuple[CollectorProcess, list[Run]], browser: Browser, width: int
    ) -> None:
        """Each chart drew an SVG with labelled axes (with units), a legend and a number table."""
        page = loaded(browser, url(served[0]), width)
        facts = {c["id"]: c for c in page.evaluate(CHART_FACTS)}
        assert sorted(facts) == sorted(CHARTS)
        for chart in facts.values():
            assert chart["svg"], chart
            assert chart["x"], chart
            assert chart["y"], chart
            assert chart["legend"], chart
            assert chart["rows"] > 0, chart
        assert facts["chart-adoption"]["y"] == "share of runs (%)"
        assert facts["chart-adoption"]["x"].startswith("Date (UTC), per ")
        assert {"1.0.0", "1.1.0"} <= set(facts["chart-adoption"]["legend"])


class TestTables:
    def test_health_table_lists_every_version(
        self, served: tuple[CollectorProcess, list[Run]], browser: Browser
    ) -> None:
        """Health's table has a row per version with closed runs, those without failures too."""
        collector, runs = served
        page = loaded(browser, url(collector), 1280)
        listed = page.evaluate(
            "[...document.querySelectorAll('#chart-health details tbody tr')]"
            ".map((tr) => tr.cells[0].textContent)"
        )
        assert sorted(listed) == sorted({r.version for r in runs if r.closed})
        assert HOSTILE_VERSION in listed


class TestPicker:
    def test_period_picker_changes_what_is_shown(
        self, served: tuple[CollectorProcess, list[Run]], browser: Browser
    ) -> None:
        """All time shows every run; choosing 'Last 7 days' shows only the last week's."""
        collector, runs = served
        page = loaded(browser, url(collector), 1280)
        assert page.evaluate("document.getElementById('period').value") == "all"
        assert (
            page.evaluate("document.getElementById('total-runs').textContent") == f"{len(runs):,}"
        )
        page.evaluate(
            "(() => { const s = document.getElementById('period'); s.value = '7';"
            " s.dispatchEvent(new Event('change')); })()"
        )
        week = sum(1 for r in runs if r.day > today() - 7)
        page.wait_for(f"document.getElementById('total-runs').textContent === '{week:,}'")
        note = page.evaluate("document.getElementById('period-note').textContent")
        since = datetime.date.today() - datetime.timedelta(days=6)
        assert since.isoformat() in note
        assert page.evaluate("window.location.search") == "?period=7"
        weekly_rows = page.evaluate(
            "document.querySelectorAll('#chart-runs details tbody tr').length"
        )
        assert weekly_rows <= 7


class TestEscaping:
    def test_hostile_names_stay_text(
        self, served: tuple[CollectorProcess, list[Run]], browser: Browser
    ) -> None:
        """Markup in project names and versions shows as text; no element is injected."""
        page = loaded(browser, url(served[0]), 1280)
        cells = page.evaluate(
            "[...document.querySelectorAll('#leaderboard td.project')].map((td) => td.textContent)"
        )
        assert SCRIPT_NAME in cells
        assert IMG_NAME in cells
        assert page.evaluate("document.querySelectorAll('img, b').length") == 0
        scripts = page.evaluate("[...document.scripts].map((s) => s.getAttribute('src'))")
        assert scripts == ["/static/dashboard.js"]
        legend = page.evaluate(
            "[...document.querySelectorAll('#chart-adoption .legend li')].map((l) => l.textContent)"
        )
        assert HOSTILE_VERSION in legend

    def test_full_names_on_focus(
        self, served: tuple[CollectorProcess, list[Run]], browser: Browser
    ) -> None:
        """A long component name cut on the axis is shown whole when its bar has focus."""
        page = loaded(browser, url(served[0]), 390)
        names = page.evaluate(
            "[...document.querySelectorAll('#chart-components .legend li')]"
            ".map((l) => l.textContent)"
        )
        assert LONG_COMPONENT in names
        page.evaluate(
            "[...document.querySelectorAll('#chart-components .slice')]"
            f".find((s) => s.getAttribute('aria-label').includes({json.dumps(LONG_COMPONENT)}))"
            ".focus()"
        )
        tip = page.wait_for(
            "!document.getElementById('tip').hidden && document.getElementById('tip').textContent"
        )
        assert LONG_COMPONENT in tip


class TestEmpty:
    def test_empty_collector_prints_the_endpoint_line(
        self, tmp_path: Path, browser: Browser
    ) -> None:
        """With no runs, the page prints the exact variable to set, with this collector's port."""
        collector = CollectorProcess(tmp_path).start()
        try:
            page = browser.page(390)
            page.goto(url(collector))
            page.wait_for("document.body.dataset.loaded === 'empty'")
            line = page.evaluate("document.getElementById('endpoint-line').textContent")
            overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
            icon = page.evaluate("document.querySelector('link[rel=icon]').href")
        finally:
            collector.stop()
        assert line == f"<PRODUCT>_USAGE_TRACKING_ENDPOINT=udp://127.0.0.1:{collector.udp[1]}"
        assert not overflow
        assert icon.endswith("/favicon.svg")


LEADERBOARD_NAMES = (
    "[...document.querySelectorAll('#leaderboard td.project')].map((td) => td.textContent)"
)


class TestCI:
    @pytest.mark.parametrize("period", ["all", "30"])
    def test_ci_runs_are_left_out_until_the_box_is_ticked(
        self, served: tuple[CollectorProcess, list[Run]], browser: Browser, period: str
    ) -> None:
        """As opened, the CI run is in no count; with ?ci=include the box is ticked and it is."""
        collector, runs = served
        in_period = [r for r in runs if period == "all" or r.day > today() - int(period)]
        default = loaded(browser, url(collector, f"?period={period}"), 1280)
        assert default.evaluate("document.getElementById('include-ci').checked") is False
        assert CI_PROJECT not in default.evaluate(LEADERBOARD_NAMES)
        total = default.evaluate("document.getElementById('total-runs').textContent")
        assert total == f"{len(in_period):,}"
        with_ci = loaded(browser, url(collector, f"?period={period}&ci=include"), 1280)
        assert with_ci.evaluate("document.getElementById('include-ci').checked") is True
        assert CI_PROJECT in with_ci.evaluate(LEADERBOARD_NAMES)
        total = with_ci.evaluate("document.getElementById('total-runs').textContent")
        assert total == f"{len(in_period) + 1:,}"

    def test_ticking_the_box_counts_ci_runs(
        self, served: tuple[CollectorProcess, list[Run]], browser: Browser
    ) -> None:
        """Ticking the box reloads the views with CI runs and keeps the choice in the address."""
        collector, runs = served
        page = loaded(browser, url(collector), 1280)
        page.evaluate(
            "(() => { const b = document.getElementById('include-ci'); b.checked = true;"
            " b.dispatchEvent(new Event('change')); })()"
        )
        page.wait_for(f"document.getElementById('total-runs').textContent === '{len(runs) + 1:,}'")
        assert page.evaluate("window.location.search") == "?ci=include"
