"""The read views of any period, computed from the per-day rollups (``_day_rollup``).

Every function takes a ``Query`` (run one SQL statement with ``?`` parameters, return the
rows; see ``Store.view``) and never reads the runs: each sums rollup rows of one kind over
the period's range of keys, so its cost grows with the number of days and names in the
period, not with the number of runs. The SQL is the same for every engine.
"""

from __future__ import annotations

import datetime
from typing import Any

from ._day_rollup import BY_PROJECT, DAY_DIGITS, PREFIX, SEPARATOR, key_day, key_name, key_range
from ._period import Period, bucket_start, date_of
from ._rollup import CI_PREFIX, EXEC_BUCKETS
from ._statistics import failure_p_value, is_flagged, upgrade_times
from ._store_views import (
    AppTotals,
    BucketCount,
    DayCount,
    LeaderboardRow,
    NamedCount,
    ProductStats,
    ProductTotals,
    Query,
    rank,
)
from ._summaries import (
    Count,
    NeverClosed,
    ProjectCounts,
    Release,
    Series,
    SeriesPoint,
    Summary,
    Totals,
    VersionHealth,
)

__all__ = [
    "SERIES_NAMES",
    "counts",
    "data_days",
    "health",
    "leaderboard",
    "never_closed",
    "period_products",
    "period_stats",
    "projects",
    "releases",
    "resolve_period",
    "series",
    "summary",
    "totals",
]

#: How many names a chart draws; the rest are summed as "other".
SERIES_NAMES = 8
#: ``substr(key, _NAME_AT)`` is the name of a per-day key (SQL counts from 1).
_NAME_AT = DAY_DIGITS + 2
_NAME = f"substr(key, {_NAME_AT})"
#: All days up to a period's end (release order and upgrade times look back that far).
_EPOCH = date_of(0)


def _kinds(kind: str, include_ci: bool) -> tuple[str, ...]:
    """The rollup kinds of ``kind``: a CI run's rows are under ``CI_PREFIX`` kinds."""
    return (kind, CI_PREFIX + kind) if include_ci else (kind,)


def _kind_is(kind: str, include_ci: bool, column: str = "kind") -> tuple[str, tuple[str, ...]]:
    """``column = ?`` (or ``IN (?, ?)`` with CI runs) and its parameters."""
    kinds = _kinds(kind, include_ci)
    if len(kinds) == 1:
        return f"{column} = ?", kinds
    return f"{column} IN ({', '.join('?' for _ in kinds)})", kinds


def _where(
    kind: str, product: str, period: Period, include_ci: bool = False
) -> tuple[str, tuple[Any, ...]]:
    low, high = key_range(period.first, period.last)
    kind_sql, kinds = _kind_is(PREFIX + kind, include_ci)
    return (
        f"{kind_sql} AND product = ? AND key >= ? AND key < ?",
        (*kinds, product, low, high),
    )


def _sum(
    query: Query, product: str, kind: str, period: Period, include_ci: bool = False
) -> list[tuple[Any, ...]]:
    """``name, runs, points, x, y`` summed over the period, one row per name."""
    where, params = _where(kind, product, period, include_ci)
    return query(
        f"SELECT {_NAME}, SUM(runs), SUM(points), SUM(x), SUM(y) FROM rollup "
        f"WHERE {where} GROUP BY {_NAME}",
        params,
    )


def _days(
    query: Query, product: str, kind: str, period: Period, include_ci: bool = False
) -> list[tuple[int, str, int]]:
    """``(day, name, runs)`` of every per-day row of ``kind`` in the period (one per key)."""
    where, params = _where(kind, product, period, include_ci)
    if include_ci:
        rows = query(f"SELECT key, SUM(runs) FROM rollup WHERE {where} GROUP BY key", params)
    else:
        rows = query(f"SELECT key, runs FROM rollup WHERE {where}", params)
    return [(key_day(k), key_name(k), int(r)) for k, r in rows]


def data_days(query: Query, product: str, include_ci: bool = False) -> tuple[int, int] | None:
    """The first and last day with runs of ``product`` (CI runs if asked), or ``None``."""
    kind_sql, kinds = _kind_is(PREFIX + "total", include_ci)
    row = query(
        f"SELECT MIN(key), MAX(key) FROM rollup WHERE {kind_sql} AND product = ? AND runs > 0",
        (*kinds, product),
    )[0]
    return None if row[0] is None else (key_day(row[0]), key_day(row[1]))


def resolve_period(
    query: Query,
    product: str,
    since: datetime.date | None,
    until: datetime.date | None,
    today: datetime.date | None = None,
    include_ci: bool = False,
) -> Period:
    """The period asked for. Without ``until``: today, or the last day with runs if later.
    Without ``since``: the first day with runs (all time), or ``until`` if none. CI runs'
    days count only with ``include_ci``.
    """
    today = today or datetime.datetime.now(datetime.UTC).date()
    days = data_days(query, product, include_ci)
    if until is None:
        until = max(today, date_of(days[1])) if days else today
    if since is None:
        since = min(until, date_of(days[0])) if days else until
    return Period(since, until)


def leaderboard(
    query: Query, product: str, period: Period, limit: int, include_ci: bool = False
) -> list[LeaderboardRow]:
    """Named projects ranked by points earned in the period; equal points share a rank."""
    where, params = _where("project", product, period, include_ci)
    rows = query(
        f"SELECT {_NAME}, SUM(points), SUM(runs) FROM rollup WHERE {where} GROUP BY {_NAME} "
        f"HAVING SUM(runs) > 0 ORDER BY SUM(points) DESC, SUM(runs) DESC, {_NAME} LIMIT ?",
        (*params, limit),
    )
    return rank([(k, int(p), int(r)) for k, p, r in rows])


def totals(query: Query, product: str, period: Period, include_ci: bool = False) -> Totals:
    """Runs, points, named projects, apps and failed apps of the period."""
    total = _sum(query, product, "total", period, include_ci)
    runs, points = (int(total[0][1]), int(total[0][2])) if total else (0, 0)
    where, params = _where("project", product, period, include_ci)
    named = query(f"SELECT COUNT(DISTINCT {_NAME}) FROM rollup WHERE {where} AND runs > 0", params)[
        0
    ][0]
    apps = failed = 0
    for _, _, _, x, y in _sum(query, product, "health", period, include_ci):
        apps += int(x)
        failed += int(y)
    return Totals(runs, points, int(named), apps, failed)


def counts(
    query: Query, product: str, kind: str, period: Period, include_ci: bool = False
) -> list[Count]:
    """Runs per name of ``kind`` (version, python, platform, component, level, exec)."""
    found = _sum(query, product, kind, period, include_ci)
    rows = [(str(k), int(r)) for k, r, _, _, _ in found if r > 0]
    return [Count(k, r) for k, r in sorted(rows, key=lambda item: (-item[1], item[0]))]


def series(
    query: Query, product: str, kind: str, period: Period, include_ci: bool = False
) -> Series:
    """Runs per day or week of the largest ``SERIES_NAMES`` names of ``kind``, in the order
    they first appear in the period.

    For versions and Python versions ``other`` is every other run (runs that sent no
    version included); for components, the other components' runs.
    """
    bucket = period.bucket
    per_bucket: dict[int, dict[str, int]] = {}
    for day, key, runs in _days(query, product, kind, period, include_ci):
        slot = per_bucket.setdefault(bucket_start(day, bucket), {})
        slot[key] = slot.get(key, 0) + runs
    by_name: dict[str, int] = {}
    for slot in per_bucket.values():
        for key, runs in slot.items():
            by_name[key] = by_name.get(key, 0) + runs
    ranked = sorted(by_name.items(), key=lambda item: (-item[1], item[0]))
    largest = {k for k, runs in ranked[:SERIES_NAMES] if runs > 0}
    # Drawn (and listed) in the order they first appear: releases stack oldest first.
    first_seen: dict[str, int] = {}
    for start in sorted(per_bucket):
        for key in sorted(per_bucket[start]):
            if key in largest and per_bucket[start][key] > 0:
                first_seen.setdefault(key, start)
    names = sorted(first_seen, key=lambda k: (first_seen[k], -by_name[k], k))
    all_runs: dict[int, int] = {}
    for day, _, runs in _days(query, product, "total", period, include_ci):
        start = bucket_start(day, bucket)
        all_runs[start] = all_runs.get(start, 0) + runs
    points = []
    for start in period.buckets():
        slot = per_bucket.get(start, {})
        named = {name: slot.get(name, 0) for name in names}
        total = all_runs.get(start, 0)
        whole = sum(slot.values()) if kind == "component" else total
        points.append(SeriesPoint(date_of(start), total, named, whole - sum(named.values())))
    return Series(kind, bucket, names, points)


def releases(query: Query, product: str, period: Period, include_ci: bool = False) -> list[Release]:
    """Upgrade times of the releases that ran in the period, from all days up to its end."""
    history = Period(_EPOCH, period.until)
    daily: dict[int, dict[str, int]] = {}
    for day, key, runs in _days(query, product, "version", history, include_ci):
        daily.setdefault(day, {})[key] = runs
    everything: dict[int, dict[str, int]] = {}
    for day, _, runs in _days(query, product, "total", history, include_ci):
        # Runs that sent no version count in the whole, for no release.
        versions = dict(daily.get(day, {}))
        unversioned = runs - sum(versions.values())
        if unversioned > 0:
            versions[""] = unversioned
        everything[day] = versions
    in_period = {key for day, found in daily.items() if day >= period.first for key in found}
    return [
        Release(
            u.version,
            date_of(u.first_day),
            None if u.half_day is None else date_of(u.half_day),
            u.days,
        )
        for u in upgrade_times(everything, period.last)
        if u.version in in_period and u.version != ""
    ]


def _release_order(query: Query, product: str, until: int, include_ci: bool = False) -> list[str]:
    """Versions in the order of their first run (up to day ``until``)."""
    where, params = _where("version", product, Period(_EPOCH, date_of(until)), include_ci)
    rows = query(f"SELECT {_NAME}, MIN(key) FROM rollup WHERE {where} GROUP BY {_NAME}", params)
    return [k for k, _ in sorted(rows, key=lambda r: (r[1][:DAY_DIGITS], r[0]))]


def health(
    query: Query, product: str, period: Period, include_ci: bool = False
) -> list[VersionHealth]:
    """Failure rates per version in the period, each compared with the release before it."""
    rows = {
        str(k): (int(r), int(p), int(x), int(y))
        for k, r, p, x, y in _sum(query, product, "health", period, include_ci)
        if r > 0
    }
    order = [v for v in _release_order(query, product, period.last, include_ci) if v in rows]
    order += sorted(v for v in rows if v not in order and v != "")
    if "" in rows:
        order.append("")
    out: list[VersionHealth] = []
    previous: str | None = None
    for version in order:
        runs, failed_runs, apps, failed_apps = rows[version]
        p_value: float | None = None
        flagged = False
        compared = previous if version != "" else None
        if compared is not None:
            before = (rows[compared][1], rows[compared][0])
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
                compared,
                p_value,
                flagged,
            )
        )
        if version != "":
            previous = version
    return out


def never_closed(
    query: Query, product: str, period: Period, include_ci: bool = False
) -> list[NeverClosed]:
    """Level-3 runs started in the period whose close has not arrived, per version."""
    order = _release_order(query, product, period.last, include_ci)
    position = {v: i for i, v in enumerate(order)}
    found = _sum(query, product, "open", period, include_ci)
    rows = [(str(k), int(r), int(x)) for k, r, _, x, _ in found if r > 0]
    rows.sort(key=lambda item: (position.get(item[0], len(order)), item[0]))
    return [NeverClosed(k, r, x, x / r if r else None) for k, r, x in rows]


def projects(query: Query, product: str, period: Period, include_ci: bool = False) -> ProjectCounts:
    """Distinct named projects in the period; returning ones also ran before it."""
    where, params = _where("project", product, period, include_ci)
    before = f"{period.first:0{DAY_DIGITS}d}"
    by_sql, by_kinds = _kind_is(BY_PROJECT, include_ci, "b.kind")
    # Whether a project ran before the period: one index seek in the by-name rows.
    row = query(
        f"SELECT COUNT(*), SUM(CASE WHEN EXISTS (SELECT 1 FROM rollup AS b WHERE {by_sql} "
        "AND b.product = ? AND b.key > a.name || ? AND b.key < a.name || ? AND b.runs > 0) "
        "THEN 1 ELSE 0 END) FROM "
        f"(SELECT DISTINCT {_NAME} AS name FROM rollup WHERE {where} AND runs > 0) AS a",
        (*by_kinds, product, SEPARATOR, SEPARATOR + before, *params),
    )[0]
    named = int(row[0])
    returning = int(row[1] or 0)
    return ProjectCounts(named, named - returning, returning)


def summary(
    query: Query, product: str, period: Period, top: int = 20, include_ci: bool = False
) -> Summary:
    """Everything the report shows about ``product`` in ``period`` and the one before
    (CI runs left out unless ``include_ci``)."""
    previous = period.previous()
    ci = include_ci
    return Summary(
        product=product,
        period=period,
        previous_period=previous,
        totals=totals(query, product, period, ci),
        previous_totals=totals(query, product, previous, ci),
        projects=projects(query, product, period, ci),
        leaderboard=leaderboard(query, product, period, top, ci),
        versions=series(query, product, "version", period, ci),
        version_counts=counts(query, product, "version", period, ci),
        releases=releases(query, product, period, ci),
        python_versions=counts(query, product, "python", period, ci),
        platforms=counts(query, product, "platform", period, ci),
        components=counts(query, product, "component", period, ci),
        health=health(query, product, period, ci),
        never_closed=never_closed(query, product, period, ci),
    )


def period_stats(
    query: Query, product: str, period: Period, include_ci: bool = False
) -> ProductStats:
    """The dashboard's figures for ``period``, in the shape of the all-time ``stats``."""
    levels = {c.name: c.runs for c in counts(query, product, "level", period, include_ci)}
    buckets = {c.name: c.runs for c in counts(query, product, "exec", period, include_ci)}
    health_rows = _sum(query, product, "health", period, include_ci)
    app_runs = sum(int(r[1]) for r in health_rows)
    apps = sum(int(r[3]) for r in health_rows)
    failed_apps = sum(int(r[4]) for r in health_rows)
    per_day: dict[int, int] = {}
    points = 0
    where, params = _where("total", product, period, include_ci)
    for key, runs, day_points in query(
        f"SELECT key, runs, points FROM rollup WHERE {where}", params
    ):
        per_day[key_day(key)] = per_day.get(key_day(key), 0) + int(runs)
        points += int(day_points)

    def top(kind: str) -> list[NamedCount]:
        found = counts(query, product, kind, period, include_ci)
        return [NamedCount(c.name, c.runs) for c in found[:20]]

    return ProductStats(
        product=product,
        runs=sum(per_day.values()),
        points=points,
        levels={str(n): levels.get(str(n), 0) for n in (1, 2, 3)},
        runs_per_day=[
            DayCount(date_of(d).isoformat(), r) for d, r in sorted(per_day.items()) if r > 0
        ],
        versions=top("version"),
        python_versions=top("python"),
        platforms=top("platform"),
        components=top("component"),
        apps=AppTotals(app_runs, apps, failed_apps),
        execution_time=[
            BucketCount(label, buckets.get(str(i), 0)) for i, (_, label) in enumerate(EXEC_BUCKETS)
        ],
    )


def period_products(query: Query, period: Period, include_ci: bool = False) -> list[ProductTotals]:
    """Every product with runs in the period, with its runs and points there; most first."""
    low, high = key_range(period.first, period.last)
    kind_sql, kinds = _kind_is(PREFIX + "total", include_ci)
    rows = query(
        f"SELECT product, SUM(runs), SUM(points) FROM rollup WHERE {kind_sql} AND key >= ? "
        "AND key < ? GROUP BY product HAVING SUM(runs) > 0",
        (*kinds, low, high),
    )
    found = [ProductTotals(p, int(r), int(s)) for p, r, s in rows]
    return sorted(found, key=lambda t: (-t.runs, t.product))
