"""The read views of any period, computed from the per-day rollups (``_day_rollup``).

Every function takes a ``Query`` (run one SQL statement with ``?`` parameters, return the
rows) and never reads the runs table: each sums rollup rows of one kind over the period's
days, so its cost grows with the number of days and names, not with the number of runs.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any, Protocol

from ._day_rollup import EXEC_BUCKETS
from ._period import Period, bucket_start, date_of
from ._statistics import failure_p_value, is_flagged, upgrade_times
from ._summaries import (
    Count,
    NeverClosed,
    ProjectCounts,
    RankedProject,
    Release,
    Series,
    SeriesPoint,
    Summary,
    Totals,
    VersionHealth,
)

__all__ = [
    "SERIES_NAMES",
    "Query",
    "components",
    "counts",
    "data_days",
    "health",
    "leaderboard",
    "never_closed",
    "period_stats",
    "projects",
    "rank",
    "releases",
    "resolve_period",
    "series",
    "summary",
    "totals",
]

#: How many names a chart draws; the rest are summed as "other".
SERIES_NAMES = 8


class Query(Protocol):
    """Run one read statement (``?`` parameters) and return its rows."""

    def __call__(self, sql: str, params: Sequence[Any] = ...) -> list[tuple[Any, ...]]: ...


def data_days(query: Query, product: str) -> tuple[int, int] | None:
    """The first and last day with runs of ``product``, or ``None``."""
    row = query(
        "SELECT MIN(day), MAX(day) FROM day_rollup WHERE product = ? AND kind = 'total'",
        (product,),
    )[0]
    return None if row[0] is None else (int(row[0]), int(row[1]))


def resolve_period(
    query: Query,
    product: str,
    since: datetime.date | None,
    until: datetime.date | None,
    today: datetime.date | None = None,
) -> Period:
    """The period asked for; a missing end is the first (last) day with runs, or today."""
    today = today or datetime.datetime.now(datetime.UTC).date()
    days = data_days(query, product)
    if until is None:
        until = max(today, date_of(days[1])) if days else today
    if since is None:
        since = min(until, date_of(days[0])) if days else until
    return Period(since, until)


def _sum(query: Query, product: str, kind: str, period: Period) -> list[tuple[Any, ...]]:
    """``key, runs, points, x, y`` summed over the period, one row per key."""
    return query(
        "SELECT key, SUM(runs), SUM(points), SUM(x), SUM(y) FROM day_rollup "
        "WHERE product = ? AND kind = ? AND day BETWEEN ? AND ? GROUP BY key",
        (product, kind, period.first, period.last),
    )


def rank(rows: Sequence[tuple[str, int, int]]) -> list[RankedProject]:
    """Rank ``(project, points, runs)`` rows, best first; equal points share a rank."""
    ordered = sorted(rows, key=lambda r: (-r[1], -r[2], r[0]))
    out: list[RankedProject] = []
    for index, (name, points, runs) in enumerate(ordered):
        place = out[-1].rank if out and out[-1].points == points else index + 1
        out.append(RankedProject(place, name, points, runs))
    return out


def leaderboard(query: Query, product: str, period: Period, limit: int) -> list[RankedProject]:
    """Named projects ranked by points earned in the period."""
    rows = query(
        "SELECT key, SUM(points) AS p, SUM(runs) AS r FROM day_rollup "
        "WHERE product = ? AND kind = 'project' AND day BETWEEN ? AND ? "
        "GROUP BY key HAVING r > 0 ORDER BY p DESC, r DESC, key LIMIT ?",
        (product, period.first, period.last, limit),
    )
    return rank([(k, int(p), int(r)) for k, p, r in rows])


def totals(query: Query, product: str, period: Period) -> Totals:
    """Runs, points, named projects, apps and failed apps of the period."""
    total = _sum(query, product, "total", period)
    runs, points = (int(total[0][1]), int(total[0][2])) if total else (0, 0)
    named = query(
        "SELECT COUNT(DISTINCT key) FROM day_rollup "
        "WHERE product = ? AND kind = 'project' AND day BETWEEN ? AND ?",
        (product, period.first, period.last),
    )[0][0]
    apps = failed = 0
    for _, _, _, x, y in _sum(query, product, "health", period):
        apps += int(x)
        failed += int(y)
    return Totals(runs, points, int(named), apps, failed)


def counts(query: Query, product: str, kind: str, period: Period) -> list[Count]:
    """Runs per name of ``kind`` (version, python, platform, component, level, exec)."""
    rows = [(str(k), int(r)) for k, r, _, _, _ in _sum(query, product, kind, period) if r > 0]
    return [Count(k, r) for k, r in sorted(rows, key=lambda item: (-item[1], item[0]))]


def series(query: Query, product: str, kind: str, period: Period) -> Series:
    """Runs per day or week of the largest ``SERIES_NAMES`` names of ``kind``."""
    bucket = period.bucket
    per_bucket: dict[int, dict[str, int]] = {}
    for day, key, runs in query(
        "SELECT day, key, runs FROM day_rollup "
        "WHERE product = ? AND kind = ? AND day BETWEEN ? AND ?",
        (product, kind, period.first, period.last),
    ):
        slot = per_bucket.setdefault(bucket_start(int(day), bucket), {})
        slot[key] = slot.get(key, 0) + int(runs)
    totals_by_name: dict[str, int] = {}
    for slot in per_bucket.values():
        for key, runs in slot.items():
            totals_by_name[key] = totals_by_name.get(key, 0) + runs
    names = [k for k, _ in sorted(totals_by_name.items(), key=lambda item: (-item[1], item[0]))][
        :SERIES_NAMES
    ]
    # All runs per bucket: for versions and Python versions, runs without one count too.
    all_runs: dict[int, int] = {}
    for day, runs in query(
        "SELECT day, runs FROM day_rollup "
        "WHERE product = ? AND kind = 'total' AND day BETWEEN ? AND ?",
        (product, period.first, period.last),
    ):
        start = bucket_start(int(day), bucket)
        all_runs[start] = all_runs.get(start, 0) + int(runs)
    points = []
    for start in period.buckets():
        slot = per_bucket.get(start, {})
        named = {name: slot.get(name, 0) for name in names}
        total = all_runs.get(start, 0)
        if kind == "component":
            other = sum(slot.values()) - sum(named.values())
        else:
            other = total - sum(named.values())
        points.append(SeriesPoint(date_of(start), total, named, other))
    return Series(kind, bucket, names, points)


def releases(query: Query, product: str, period: Period) -> list[Release]:
    """Upgrade times of the releases that ran in the period, from all days up to its end."""
    daily: dict[int, dict[str, int]] = {}
    for day, key, runs in query(
        "SELECT day, key, runs FROM day_rollup WHERE product = ? AND kind = 'version' AND day <= ?",
        (product, period.last),
    ):
        daily.setdefault(int(day), {})[key] = int(runs)
    daily_total: dict[int, dict[str, int]] = {}
    for day, runs in query(
        "SELECT day, runs FROM day_rollup WHERE product = ? AND kind = 'total' AND day <= ?",
        (product, period.last),
    ):
        # Runs without a version count in the whole, not for any release.
        versioned = sum(daily.get(int(day), {}).values())
        daily_total[int(day)] = dict(daily.get(int(day), {}))
        if int(runs) > versioned:
            daily_total[int(day)][""] = int(runs) - versioned
    in_period = {key for day, versions in daily.items() if day >= period.first for key in versions}
    return [
        Release(
            u.version,
            date_of(u.first_day),
            None if u.half_day is None else date_of(u.half_day),
            u.days,
        )
        for u in upgrade_times(daily_total, period.last)
        if u.version in in_period and u.version != ""
    ]


def _release_order(query: Query, product: str, until: int) -> list[str]:
    """Versions in the order of their first run (up to day ``until``)."""
    rows = query(
        "SELECT key, MIN(day) FROM day_rollup WHERE product = ? AND kind = 'version' "
        "AND day <= ? GROUP BY key",
        (product, until),
    )
    return [k for k, _ in sorted(rows, key=lambda r: (int(r[1]), r[0]))]


def health(query: Query, product: str, period: Period) -> list[VersionHealth]:
    """Failure rates per version in the period, each compared with the release before it."""
    rows = {
        str(k): (int(r), int(p), int(x), int(y))
        for k, r, p, x, y in _sum(query, product, "health", period)
        if r > 0
    }
    order = [v for v in _release_order(query, product, period.last) if v in rows]
    if "" in rows:
        order.append("")
    out: list[VersionHealth] = []
    previous: str | None = None
    for version in order:
        runs, failed_runs, apps, failed_apps = rows[version]
        p_value = flagged = None
        if previous is not None and version != "":
            before = (rows[previous][1], rows[previous][0])
            p_value = failure_p_value(before, (failed_runs, runs))
            flagged = is_flagged(before, (failed_runs, runs))
        out.append(
            VersionHealth(
                version,
                runs,
                failed_runs,
                apps,
                failed_apps,
                failed_apps / apps if apps else None,
                failed_runs / runs if runs else None,
                previous if version != "" else None,
                p_value,
                bool(flagged),
            )
        )
        if version != "":
            previous = version
    return out


def never_closed(query: Query, product: str, period: Period) -> list[NeverClosed]:
    """Level-3 runs started in the period whose close has not arrived, per version."""
    order = _release_order(query, product, period.last)
    position = {v: i for i, v in enumerate(order)}
    rows = [
        (str(k), int(r), int(x)) for k, r, _, x, _ in _sum(query, product, "open", period) if r > 0
    ]
    rows.sort(key=lambda item: (position.get(item[0], len(order)), item[0]))
    return [NeverClosed(k, r, x, x / r if r else None) for k, r, x in rows]


def projects(query: Query, product: str, period: Period) -> ProjectCounts:
    """Distinct named projects in the period; returning ones also ran before it."""
    row = query(
        "SELECT COUNT(*), SUM(EXISTS (SELECT 1 FROM day_rollup AS b WHERE b.product = ? "
        "AND b.kind = 'project' AND b.key = a.key AND b.day < ?)) FROM "
        "(SELECT DISTINCT key FROM day_rollup WHERE product = ? AND kind = 'project' "
        "AND day BETWEEN ? AND ?) AS a",
        (product, period.first, product, period.first, period.last),
    )[0]
    named = int(row[0])
    returning = int(row[1] or 0)
    return ProjectCounts(named, named - returning, returning)


def components(query: Query, product: str, period: Period) -> Series:
    """Runs that used each component, per day or week."""
    return series(query, product, "component", period)


def summary(query: Query, product: str, period: Period, top: int = 20) -> Summary:
    """Everything the report shows about ``product`` in ``period`` and the one before."""
    previous = period.previous()
    return Summary(
        product=product,
        period=period,
        previous_period=previous,
        totals=totals(query, product, period),
        previous_totals=totals(query, product, previous),
        projects=projects(query, product, period),
        leaderboard=leaderboard(query, product, period, top),
        versions=series(query, product, "version", period),
        version_counts=counts(query, product, "version", period),
        releases=releases(query, product, period),
        python_versions=counts(query, product, "python", period),
        platforms=counts(query, product, "platform", period),
        components=counts(query, product, "component", period),
        health=health(query, product, period),
        never_closed=never_closed(query, product, period),
    )


def period_stats(query: Query, product: str, period: Period) -> dict[str, Any]:
    """The dashboard's figures for ``period``, in the shape of the all-time ``stats``."""
    total = totals(query, product, period)
    levels = {c.name: c.runs for c in counts(query, product, "level", period)}
    buckets = {c.name: c.runs for c in counts(query, product, "exec", period)}
    health_rows = _sum(query, product, "health", period)
    per_day = query(
        "SELECT day, runs FROM day_rollup WHERE product = ? AND kind = 'total' "
        "AND day BETWEEN ? AND ? AND runs > 0 ORDER BY day",
        (product, period.first, period.last),
    )

    def top(kind: str) -> list[dict[str, Any]]:
        return [{"name": c.name, "runs": c.runs} for c in counts(query, product, kind, period)[:20]]

    return {
        "product": product,
        "since": period.since.isoformat(),
        "until": period.until.isoformat(),
        "runs": total.runs,
        "points": total.points,
        "levels": {str(n): levels.get(str(n), 0) for n in (1, 2, 3)},
        "runs_per_day": [{"day": date_of(int(d)).isoformat(), "runs": int(r)} for d, r in per_day],
        "versions": top("version"),
        "python_versions": top("python"),
        "platforms": top("platform"),
        "components": top("component"),
        "apps": {
            "runs": sum(int(r[1]) for r in health_rows),
            "apps": total.apps,
            "failures": total.failed_apps,
            "failure_rate": total.failed_apps / total.apps if total.apps else 0.0,
        },
        "execution_time": [
            {"bucket": label, "runs": buckets.get(str(i), 0)}
            for i, (_, label) in enumerate(EXEC_BUCKETS)
        ],
    }
