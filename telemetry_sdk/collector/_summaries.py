"""The typed answers the collector gives: what the API returns, the report prints, the page draws.

Each is a frozen attrs class built by the read views (``_period_views``) from the rollups;
``to_json`` turns any of them into the API's JSON shape (dates as ``YYYY-MM-DD``).
"""

from __future__ import annotations

import datetime
from typing import Any, Literal

import cattrs
from attrs import frozen

from ._period import Bucket, Period
from ._store_views import LeaderboardRow

__all__ = [
    "Count",
    "NeverClosed",
    "ProjectCounts",
    "Release",
    "Series",
    "SeriesPoint",
    "Summary",
    "Totals",
    "VersionHealth",
    "to_json",
]


@frozen
class Count:
    """How many runs one name (a version, platform, component ...) had."""

    name: str
    runs: int


@frozen
class Totals:
    """A period's totals."""

    runs: int
    points: int
    named_projects: int
    apps: int
    failed_apps: int


@frozen
class SeriesPoint:
    """One day or week of a chart: all runs, the named series' runs, and the rest."""

    start: datetime.date
    runs: int
    counts: dict[str, int]
    other: int


@frozen
class Series:
    """Runs per day or week of the largest few names; the rest add up in ``other``.

    ``names`` are the largest few (by runs over the period), in the order they first appear;
    every point carries a count for every name (0 when absent).
    """

    kind: str
    bucket: Bucket
    names: list[str]
    points: list[SeriesPoint]


@frozen
class Release:
    """How fast users took up a release (see ``_statistics`` for the rule)."""

    version: str
    first_day: datetime.date
    half_day: datetime.date | None
    #: Days from the first run to carrying half the runs; ``None``: not yet.
    days: int | None


@frozen
class VersionHealth:
    """A version's app failures, with the counts behind them and the flag."""

    version: str
    #: Runs that reported app counts (closed runs of products that count apps).
    runs: int
    #: Of those, runs with at least one failed app.
    failed_runs: int
    apps: int
    failed_apps: int
    app_failure_rate: float | None
    run_failure_rate: float | None
    #: The version it is compared with (the release before it), if any.
    previous: str | None
    #: One-sided p-value that this version's runs fail more often than ``previous``'s.
    p_value: float | None
    flagged: bool


@frozen
class NeverClosed:
    """Level-3 runs of a version whose close never arrived, as a share of its starts."""

    version: str
    starts: int
    never_closed: int
    share: float | None


@frozen
class ProjectCounts:
    """Distinct named projects in a period, new versus returning (seen before the period)."""

    named: int
    new: int
    returning: int


Kind = Literal["version", "python", "platform", "component"]


@frozen
class Summary:
    """Everything the report shows about one product in one period."""

    product: str
    period: Period
    previous_period: Period
    totals: Totals
    previous_totals: Totals
    projects: ProjectCounts
    leaderboard: list[LeaderboardRow]
    versions: Series
    version_counts: list[Count]
    releases: list[Release]
    python_versions: list[Count]
    platforms: list[Count]
    components: list[Count]
    health: list[VersionHealth]
    never_closed: list[NeverClosed]


_converter = cattrs.Converter()
_converter.register_unstructure_hook(datetime.date, datetime.date.isoformat)


def to_json(value: Any) -> Any:
    """The API's JSON form of a summary object (or a list of them)."""
    return _converter.unstructure(value)
