"""The dashboard in a real headless Chromium: it renders, charts have data, names are text."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from html.parser import HTMLParser
from pathlib import Path

import pytest
from _collector_support import CollectorProcess, close_message, datagram, start_message

from telemetry_sdk._wire import Component

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium (Debian: chromium)"),
]

SCRIPT_NAME = "<script>alert(1)</script>"
IMG_NAME = "<img src=x onerror=alert(2)>"


class DomCollector(HTMLParser):
    """The elements of a rendered page: tag, attributes, and the text inside each id."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str | None] = []
        self.text_by_id: dict[str, list[str]] = {}
        self.open_ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.elements.append((tag, attributes))
        element_id = attributes.get("id")
        if tag in ("img", "br", "meta", "link", "input"):
            return
        self.stack.append(element_id)
        if element_id:
            self.open_ids.append(element_id)
            self.text_by_id.setdefault(element_id, [])

    def handle_endtag(self, tag: str) -> None:
        if self.stack:
            element_id = self.stack.pop()
            if element_id and self.open_ids and self.open_ids[-1] == element_id:
                self.open_ids.pop()

    def handle_data(self, data: str) -> None:
        for element_id in self.open_ids:
            self.text_by_id[element_id].append(data)

    def inside(self, element_id: str) -> str:
        return "".join(self.text_by_id.get(element_id, []))


def chromium(url: str, profile: Path, *mode: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=5000", *mode, url,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)


def dom_of(url: str, profile: Path) -> DomCollector:
    result = chromium(url, profile, "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = DomCollector()
    dom.feed(result.stdout)
    return dom


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DomCollector]:
    """The dashboard rendered by Chromium after runs with hostile project names and one CI
    run arrived: as opened (``/``) and asked to include CI runs (``/?ci=include``)."""
    directory = tmp_path_factory.mktemp("browser")
    collector = CollectorProcess(directory).start()
    try:
        sent = 0
        for i, name in enumerate([SCRIPT_NAME, IMG_NAME, "plain-project"] * 3):
            correlator = str(uuid.uuid4())
            message = start_message(
                correlator=correlator,
                version=f"1.{i % 3}.0",
                platform_system=["Linux", "Darwin"][i % 2],
                tracking_level=3,
                project_name=name,
                components=(Component("minflow.ThreadPoolExecutor"),),
                start=1795305801,
            )
            collector.send(datagram(message), datagram(close_message(correlator)))
            sent += 2
        ci_run = start_message(
            tracking_level=3,
            project_name="ci-bot",
            components=(Component("telemetry_sdk.Environment", {"ci": "github_actions"}),),
            start=1795305801,
        )
        collector.send(datagram(ci_run), datagram(close_message(ci_run.correlator)))
        collector.wait_processed(sent + 2)
        url = f"http://127.0.0.1:{collector.http[1]}/"
        return {
            "default": dom_of(url, directory / "profile"),
            "with_ci": dom_of(url + "?ci=include", directory / "profile-ci"),
        }
    finally:
        collector.stop()


@pytest.fixture(scope="module")
def rendered(pages: dict[str, DomCollector]) -> DomCollector:
    """The dashboard as opened."""
    return pages["default"]


class TestDashboard:
    def test_page_renders_with_data(self, rendered: DomCollector) -> None:
        """The page loaded its data: totals and the leaderboard are filled in."""
        body = next(attrs for tag, attrs in rendered.elements if tag == "body")
        assert body.get("data-loaded") == "true"
        assert rendered.inside("total-runs") == "9"
        assert rendered.inside("total-points") == "18"

    def test_charts_have_data_points(self, rendered: DomCollector) -> None:
        """Every chart drew marks: a point per day, a bar per version, platform, component."""
        classes = [(attrs.get("class"), tag) for tag, attrs in rendered.elements]
        assert ("point", "circle") in classes
        assert sum(1 for c in classes if c == ("bar", "rect")) >= 3 + 2 + 1 + 1 + 1
        for chart, label in [
            ("chart-versions", "1.2.0"),
            ("chart-platforms", "Darwin"),
            ("chart-components", "minflow.ThreadPoolExecutor"),
        ]:
            assert label in rendered.inside(chart)

    def test_hostile_project_names_are_text(self, rendered: DomCollector) -> None:
        """Project names with markup show as text; no element was injected."""
        table = rendered.inside("leaderboard")
        assert SCRIPT_NAME in table
        assert IMG_NAME in table
        tags = [tag for tag, _ in rendered.elements]
        assert "img" not in tags
        scripts = [attrs for tag, attrs in rendered.elements if tag == "script"]
        assert scripts == [{"src": "/static/dashboard.js", "defer": ""}]

    def test_ci_runs_are_left_out_until_the_box_is_ticked(self, pages) -> None:
        """As opened, the CI run is in no count; with ?ci=include the box is ticked and it is."""
        default, with_ci = pages["default"], pages["with_ci"]
        assert "ci-bot" not in default.inside("leaderboard")
        assert default.inside("total-runs") == "9"
        box = next(attrs for tag, attrs in default.elements if attrs.get("id") == "include-ci")
        assert "checked" not in box
        assert "ci-bot" in with_ci.inside("leaderboard")
        assert with_ci.inside("total-runs") == "10"
