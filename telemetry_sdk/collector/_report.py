"""The report for funders: what it holds, as tables made from a period's ``Summary``.

``tables`` decides what the report holds, once; each format only lays the tables out
(``_report_markdown``, ``_report_csv``, ``_report_html``). Shares are fractions in CSV and
percentages elsewhere (``format_cell``); names from datagrams are escaped by each format.
"""

from __future__ import annotations

from typing import Literal

from attrs import frozen

from ._statistics import FLAG_MIN_RUNS, FLAG_P_VALUE, UPGRADE_WINDOW_DAYS
from ._summaries import Count, Summary

__all__ = ["Cell", "Column", "Table", "format_cell", "tables"]

Cell = str | int | float | None
Kind = Literal["text", "int", "share", "p", "change"]


@frozen
class Column:
    """A column: its heading and how its values are written."""

    name: str
    kind: Kind = "int"


@frozen
class Table:
    """One section of the report."""

    key: str
    title: str
    columns: list[Column]
    rows: list[list[Cell]]
    note: str = ""


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _change(now: int, before: int) -> float | None:
    return (now - before) / before if before else None


def _counts(key: str, title: str, items: list[Count], total: int) -> Table:
    return Table(
        key,
        title,
        [Column("name", "text"), Column("runs"), Column("share of runs", "share")],
        [[c.name, c.runs, _share(c.runs, total)] for c in items],
    )


def _overview(summary: Summary) -> Table:
    now, before = summary.totals, summary.previous_totals

    def row(label: str, pick: str) -> list[Cell]:
        a, b = getattr(now, pick), getattr(before, pick)
        return [label, a, b, _change(a, b)]

    prev = summary.previous_period
    return Table(
        "overview",
        "Overview",
        [
            Column("figure", "text"),
            Column("this period"),
            Column(f"previous period ({prev.since} to {prev.until})"),
            Column("change", "change"),
        ],
        [
            row("runs", "runs"),
            row("points", "points"),
            row("distinct named projects", "named_projects"),
            row("apps run", "apps"),
            row("apps failed", "failed_apps"),
        ],
        "Change is relative to the previous period of the same length.",
    )


def tables(summary: Summary) -> list[Table]:
    """The report's sections, in order."""
    runs = summary.totals.runs
    projects = summary.projects
    upgrade = {r.version: r for r in summary.releases}
    version_rows: list[list[Cell]] = []
    # Releases in the order they came out, then versions first seen before the history.
    order = {r.version: i for i, r in enumerate(summary.releases)}
    by_release = sorted(summary.version_counts, key=lambda c: order.get(c.name, len(order)))
    for c in by_release:
        release = upgrade.get(c.name)
        days: Cell = None
        if release is not None:
            days = "not yet" if release.days is None else release.days
        version_rows.append(
            [
                c.name,
                c.runs,
                _share(c.runs, runs),
                None if release is None else release.first_day.isoformat(),
                days,
            ]
        )
    series = summary.versions
    share_rows: list[list[Cell]] = []
    for p in series.points:
        row: list[Cell] = [p.start.isoformat(), p.runs]
        row += [_share(p.counts[name], p.runs) for name in series.names]
        share_rows.append([*row, _share(p.other, p.runs)])
    per = "day" if series.bucket == "day" else "week (from Monday)"
    return [
        _overview(summary),
        Table(
            "projects",
            "Projects",
            [Column("named projects"), Column("new"), Column("returning")],
            [[projects.named, projects.new, projects.returning]],
            "New projects first ran in this period; returning ones also ran before it.",
        ),
        Table(
            "leaderboard",
            "Top named projects",
            [Column("rank"), Column("project", "text"), Column("points"), Column("runs")],
            [[r.rank, r.project, r.points, r.runs] for r in summary.leaderboard],
            "A level 1-2 run earns 1 point, a level 3 run 2. Equal points share a rank.",
        ),
        Table(
            "versions",
            "Version adoption",
            [
                Column("version", "text"),
                Column("runs"),
                Column("share of runs", "share"),
                Column("first run", "text"),
                Column("days to half of the runs", "text"),
            ],
            version_rows,
            "Days to half of the runs: from a release's first run to the first day on which "
            f"it carried at least half of the runs of the trailing {UPGRADE_WINDOW_DAYS} days.",
        ),
        Table(
            "version_share",
            f"Share of runs per version, per {per}",
            [Column(per, "text"), Column("runs")]
            + [Column(name, "share") for name in series.names]
            + [Column("other", "share")],
            share_rows,
        ),
        _counts("python", "Python versions", summary.python_versions, runs),
        _counts("platforms", "Platforms", summary.platforms, runs),
        _counts("components", "Components (runs that used each)", summary.components, runs),
        Table(
            "health",
            "Failures by version",
            [
                Column("version", "text"),
                Column("runs reporting apps"),
                Column("runs with a failed app"),
                Column("run failure rate", "share"),
                Column("apps"),
                Column("failed apps"),
                Column("app failure rate", "share"),
                Column("compared with", "text"),
                Column("p-value", "p"),
                Column("flag", "text"),
            ],
            [
                [
                    h.version or "(no version)",
                    h.runs,
                    h.failed_runs,
                    h.run_failure_rate,
                    h.apps,
                    h.failed_apps,
                    h.app_failure_rate,
                    h.previous,
                    h.p_value,
                    "worse" if h.flagged else "",
                ]
                for h in summary.health
            ],
            "Flagged 'worse' when its share of runs with a failed app is higher than the "
            f"previous release's by a one-sided two-proportion z-test at p < {FLAG_P_VALUE}, "
            f"with at least {FLAG_MIN_RUNS} runs reporting apps on each side.",
        ),
        Table(
            "never_closed",
            "Level-3 runs that never closed",
            [
                Column("version", "text"),
                Column("level-3 starts"),
                Column("never closed"),
                Column("share", "share"),
            ],
            [
                [n.version or "(no version)", n.starts, n.never_closed, n.share]
                for n in summary.never_closed
            ],
            "Runs still going count as not closed until their close arrives.",
        ),
    ]


def format_cell(value: Cell, kind: Kind) -> str:
    """A value as people read it (Markdown, HTML)."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if kind == "share":
        return f"{value:.1%}".replace("%", " %")
    if kind == "change":
        return f"{value:+.1%}".replace("%", " %")
    if kind == "p":
        return "< 0.0001" if value < 0.0001 else f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}"
