"""``telemetry-sdk collector report``: its numbers, its three formats, hostile names, errors."""

from __future__ import annotations

import base64
import csv
import io
import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
from _chromium import CHROMIUM, Browser
from _collector_support import start_message
from _history_support import FIRST_DAY, Run, history, load

from telemetry_sdk import cli
from telemetry_sdk._wire import Component
from telemetry_sdk.collector import Record, SQLiteStore, record_from_message
from telemetry_sdk.collector._period import date_of

HOSTILE = "<script>alert(1)</script>|**x**"
FORMULA = "=HYPERLINK(1)"
SINCE, UNTIL = date_of(FIRST_DAY + 30), date_of(FIRST_DAY + 59)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Run]]:
    """Sixty days of history plus two runs with hostile project names, and two runs from CI
    (not in the runs returned: the report leaves them out unless --include-ci)."""
    path = tmp_path_factory.mktemp("report") / "usage.db"
    runs = history()
    runs += [
        Run(FIRST_DAY + 40, "1.2.0", "3.12.1", HOSTILE, 3, True, 2, 0),
        Run(FIRST_DAY + 41, "1.2.0", "3.12.1", FORMULA, 1, False, 0, 0),
    ]
    store = SQLiteStore.open(path)
    try:
        load(store, runs)
        store.write_batch(ci_records(FIRST_DAY + 45, 2))
    finally:
        store.close()
    return path, runs


def ci_records(day: int, count: int) -> list[Record]:
    """The starts of ``count`` level-1 runs of project ``ci-bot`` from CI, version 1.2.0."""
    at = day * 86_400 + 3600
    return [
        record_from_message(
            start_message(
                version="1.2.0",
                project_name="ci-bot",
                components=(Component("telemetry_sdk.Environment", {"ci": "gitlab_ci"}),),
                start=at,
            ),
            at,
        )
        for _ in range(count)
    ]


def report(
    path: Path, capsys: pytest.CaptureFixture[str], fmt: str, *extra: str
) -> tuple[int, str, str]:
    capsys.readouterr()
    status = cli.main(
        ["collector", "report", "--db", str(path), "--product", "minflow",
         "--since", SINCE.isoformat(), "--until", UNTIL.isoformat(), "--format", fmt, *extra]
    )  # fmt: skip
    out = capsys.readouterr()
    return status, out.out, out.err


def csv_sections(text: str) -> dict[str, list[list[str]]]:
    sections: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for row in csv.reader(io.StringIO(text)):
        if not row:
            current = None
        elif row[0] == "section":
            current = sections[row[1]] = []
        elif current is not None:
            current.append(row)
    return sections


class TestNumbers:
    def test_ci_runs_only_with_include_ci(
        self, database: tuple[Path, list[Run]], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """CI runs are out of the report's figures unless --include-ci, which counts them."""
        path, runs = database
        first, last = FIRST_DAY + 30, FIRST_DAY + 59
        inside = [r for r in runs if first <= r.day <= last]
        counted = {}
        for extra in ((), ("--include-ci",)):
            status, out, _ = report(path, capsys, "csv", *extra)
            assert status == 0
            sections = csv_sections(out)
            overview = {row[0]: row[1:] for row in sections["overview"][1:]}
            counted[extra] = int(overview["runs"][0])
            projects = (
                [row[1] for row in sections["leaderboard"][1:]] if "leaderboard" in sections else []
            )
            assert ("ci-bot" in str(sections)) == bool(extra), projects
        assert counted[()] == len(inside)
        assert counted[("--include-ci",)] == len(inside) + 2

    def test_csv_figures_equal_counts_of_the_runs(
        self, database: tuple[Path, list[Run]], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Runs, points, projects, versions and the previous period, counted from the runs."""
        path, runs = database
        status, out, _ = report(path, capsys, "csv")
        assert status == 0
        sections = csv_sections(out)
        first, last = FIRST_DAY + 30, FIRST_DAY + 59
        inside = [r for r in runs if first <= r.day <= last]
        before = [r for r in runs if first - 30 <= r.day < first]
        overview = {row[0]: row[1:] for row in sections["overview"][1:]}
        assert overview["runs"][:2] == [str(len(inside)), str(len(before))]
        assert overview["points"][:2] == [
            str(sum(r.points for r in inside)), str(sum(r.points for r in before)),
        ]  # fmt: skip
        named = {r.project for r in inside if r.project}
        earlier = {r.project for r in runs if r.project and r.day < first}
        assert sections["projects"][1] == [
            str(len(named)), str(len(named - earlier)), str(len(named & earlier)),
        ]  # fmt: skip
        versions = Counter(r.version for r in inside)
        got = {row[0]: int(row[1]) for row in sections["versions"][1:]}
        assert got == dict(versions)
        health = {row[0]: (int(row[1]), int(row[2])) for row in sections["health"][1:]}
        assert health == {
            v: (
                sum(1 for r in inside if r.version == v and r.closed),
                sum(1 for r in inside if r.version == v and r.fails),
            )
            for v in versions
        }

    def test_markdown_and_html_show_the_same_figures(
        self, database: tuple[Path, list[Run]], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The total runs and every project's points appear in all three formats."""
        path, runs = database
        inside = [r for r in runs if FIRST_DAY + 30 <= r.day <= FIRST_DAY + 59]
        points = Counter()
        for r in inside:
            if r.project:
                points[r.project] += r.points
        _, md, _ = report(path, capsys, "md")
        _, html, _ = report(path, capsys, "html")
        assert f"| runs | {len(inside):,} |" in md
        assert f"<td class='text'>runs</td><td class='num'>{len(inside):,}</td>" in html
        for project, value in points.items():
            if project.startswith("lab"):
                assert f"| {project} | {value} |" in md


class TestFormats:
    def test_html_is_one_self_contained_file(
        self, database: tuple[Path, list[Run]], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """No script, no external link or image; inline SVG charts; an A4 page rule."""
        path, _ = database
        _, html, _ = report(path, capsys, "html")
        found: list[tuple[str, dict[str, str | None]]] = []

        class Tags(HTMLParser):
            def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
                found.append((tag, dict(attrs)))

        Tags().feed(html)
        tags = [t for t, _ in found]
        assert "script" not in tags
        assert "img" not in tags
        assert "link" not in tags
        assert tags.count("svg") >= 4
        assert not [a for _, a in found if any(k in a for k in ("src", "href"))]
        assert "@page { size: A4" in html
        assert "share of runs (%)" in html

    def test_hostile_names_are_text_in_every_format(
        self, database: tuple[Path, list[Run]], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Markup stays escaped in HTML and Markdown; a formula is quoted in CSV."""
        path, _ = database
        _, html, _ = report(path, capsys, "html")
        assert "<script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;|**x**" in html
        _, md, _ = report(path, capsys, "md")
        assert "<script>" not in md
        assert r"\<script\>alert(1)\</script\>\|\*\*x\*\*" in md
        _, text, _ = report(path, capsys, "csv")
        rows = csv_sections(text)["leaderboard"]
        assert ["'" + FORMULA] in [row[1:2] for row in rows]
        assert [HOSTILE] in [row[1:2] for row in rows]

    def test_out_writes_the_file(
        self, database: tuple[Path, list[Run]], capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """--out FILE holds the same report as the terminal would show."""
        path, _ = database
        _, shown, _ = report(path, capsys, "md")
        target = tmp_path / "report.md"
        status, out, _ = report(path, capsys, "md", "--out", str(target))
        assert status == 0
        assert "wrote the md report" in out
        assert target.read_text() == shown


class TestErrors:
    def test_missing_database(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A missing database is one line, exit 1."""
        status, _, err = report(tmp_path / "none.db", capsys, "md")
        assert status == 1
        assert "no database at" in err

    @pytest.mark.parametrize("bad", ["2025-13-01", "20250101", "1999-12-31", "tomorrow"])
    def test_bad_dates_are_usage_errors(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str
    ) -> None:
        """A date that is not YYYY-MM-DD from 2000 on is refused, naming the option."""
        status = cli.main(["collector", "report", "--db", str(tmp_path / "x.db"), "--since", bad])
        assert status == 2
        assert "--since: a date must be YYYY-MM-DD, from 2000-01-01" in capsys.readouterr().err

    def test_until_before_since(
        self, database: tuple[Path, list[Run]], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--until before --since is refused with exit 2."""
        path, _ = database
        status = cli.main(
            ["collector", "report", "--db", str(path), "--since", "2025-02-01",
             "--until", "2025-01-01"]
        )  # fmt: skip
        assert status == 2
        assert "is before --since" in capsys.readouterr().err

    def test_unwritable_out(
        self, database: tuple[Path, list[Run]], capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """An --out in a missing directory is one line, exit 1, and no partial file."""
        path, _ = database
        status, _, err = report(path, capsys, "md", "--out", str(tmp_path / "no" / "r.md"))
        assert status == 1
        assert "cannot write" in err


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium (Debian: chromium)")
class TestPrint:
    def test_html_prints_on_a4_without_overflow(
        self,
        database: tuple[Path, list[Run]],
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
    ) -> None:
        """In Chromium the report fits A4's text width (182 mm) and prints on A4 pages."""
        path, _ = database
        target = tmp_path / "report.html"
        status, _, _ = report(path, capsys, "html", "--out", str(target))
        assert status == 0
        browser = Browser(tmp_path / "profile")
        try:
            page = browser.page(688)  # 182 mm at 96 px per inch
            page.goto(target.as_uri())
            widths = page.evaluate(
                "({scroll: document.documentElement.scrollWidth, window: window.innerWidth})"
            )
            pdf = base64.b64decode(
                page.call("Page.printToPDF", {"preferCSSPageSize": True})["data"]
            )
        finally:
            browser.close()
        assert widths["scroll"] <= widths["window"]
        boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)
        assert boxes
        for width, height in boxes:
            assert (round(float(width)), round(float(height))) == (595, 842)  # A4 in points
