"""The read views: typed shapes, and the rollup queries every engine answers the same way.

Each view is an attrs class whose ``to_json()`` gives the JSON the HTTP API serves. The
queries read only the ``rollup`` table (and, for one run, what the engine loads), with
``?`` placeholders; an engine hands in a ``Query`` that runs them (PostgreSQL's store swaps
the placeholders for its own).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from attrs import asdict, frozen

from ._rollup import CI_PREFIX, EXEC_BUCKETS
from ._run_merge import HeldClose, RunRow, correlator_text
from ._run_status import run_status

__all__ = [
    "AppTotals",
    "BucketCount",
    "DayCount",
    "LeaderboardRow",
    "NamedCount",
    "ProductStats",
    "ProductTotals",
    "Query",
    "RunDetail",
    "day_text",
    "rank",
    "read_leaderboard",
    "read_products",
    "read_stats",
]

#: Runs one SQL statement (``?`` placeholders) and returns every row.
Query = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]

_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()
#: The chart of runs per day shows this many days at most (the latest).
_DAYS_SHOWN = 366
#: Rows of the top lists (versions, platforms, ...).
_TOP = 20


def day_text(day: int) -> str:
    """A day number (since 1970-01-01) as an ISO date."""
    return datetime.date.fromordinal(_EPOCH_ORDINAL + day).isoformat()


@frozen
class ProductTotals:
    """A product with its run and point totals."""

    product: str
    runs: int
    points: int

    def to_json(self) -> dict[str, Any]:
        """As the API serves it."""
        return asdict(self)


@frozen
class LeaderboardRow:
    """A named project's place on its product's leaderboard (equal points, equal rank)."""

    rank: int
    project: str
    points: int
    runs: int

    def to_json(self) -> dict[str, Any]:
        """As the API serves it."""
        return asdict(self)


@frozen
class NamedCount:
    """Runs that reported one value (a version, a platform, a component)."""

    name: str
    runs: int


@frozen
class DayCount:
    """Runs first received on one day (ISO date, UTC)."""

    day: str
    runs: int


@frozen
class BucketCount:
    """Runs whose execution time falls in one bucket of ``EXEC_BUCKETS``."""

    bucket: str
    runs: int


@frozen
class AppTotals:
    """Apps run and failed, over the runs that reported them."""

    runs: int
    apps: int
    failures: int

    @property
    def failure_rate(self) -> float:
        """Failed apps per app (0 without apps)."""
        return self.failures / self.apps if self.apps else 0.0


@frozen
class ProductStats:
    """Usage figures of one product, for the dashboard."""

    product: str
    runs: int
    points: int
    #: Runs per tracking level ("1", "2", "3").
    levels: dict[str, int]
    runs_per_day: list[DayCount]
    versions: list[NamedCount]
    python_versions: list[NamedCount]
    platforms: list[NamedCount]
    components: list[NamedCount]
    apps: AppTotals
    execution_time: list[BucketCount]

    def to_json(self) -> dict[str, Any]:
        """As the API serves it."""
        out = asdict(self)
        out["apps"]["failure_rate"] = self.apps.failure_rate
        return out


def _components_json(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def run_json(row: RunRow, now: int | None = None) -> dict[str, Any]:
    """One run as the API serves it; ``status`` as of ``now`` (epoch seconds; default: now)."""
    return {
        "product": row.product,
        "version": row.version,
        "python_v": row.python_v,
        "platform": row.platform,
        "level": row.level,
        "project": row.project,
        "components": _components_json(row.components),
        "close_components": _components_json(row.close_components),
        "start": row.start,
        "end": row.end,
        "execution_time": row.execution_time,
        "app_count": row.app_count,
        "app_fails": row.app_fails,
        "has_start": row.has_start,
        "has_close": row.has_close,
        "received_day": day_text(row.day),
        "ci": row.ci,
        "heartbeats": row.heartbeats,
        "last_received": row.last_received,
        "status": run_status(
            level=row.level,
            has_close=row.has_close,
            last_received=row.received if row.last_received is None else row.last_received,
            heartbeats=row.heartbeats,
            execution_time=row.execution_time,
            now=int(time.time()) if now is None else now,
        ),
    }


def held_json(close: HeldClose) -> dict[str, Any]:
    """A held Parsl close as the API serves it."""
    return {
        "project": close.project,
        "close_components": _components_json(close.close_components),
        "end": close.end,
        "execution_time": close.execution_time,
        "app_count": close.app_count,
        "app_fails": close.app_fails,
        "received_day": day_text(close.day),
    }


@frozen
class RunDetail:
    """Everything held about one correlator: its runs (one per product), a held close."""

    key: bytes
    runs: list[RunRow]
    held_close: HeldClose | None

    @property
    def correlator(self) -> str:
        """The correlator, as the SDK sends it."""
        return correlator_text(self.key)

    def to_json(self) -> dict[str, Any]:
        """As the API serves it."""
        return {
            "correlator": self.correlator,
            "runs": [run_json(r) for r in self.runs],
            "pending_close": None if self.held_close is None else held_json(self.held_close),
        }


# CI runs count under their own kinds (``_rollup.CI_PREFIX``). By default the views read only
# the others; with ``include_ci`` they add both up. The default queries stay the plain ones
# (each walks an index in order); the sums are only for a reader who asks for CI runs.


def _kinds(kind: str, include_ci: bool) -> tuple[str, ...]:
    return (kind, CI_PREFIX + kind) if include_ci else (kind,)


def _kind_in(kinds: Sequence[str]) -> str:
    return "kind IN (" + ", ".join("?" for _ in kinds) + ")"


def _sum(column: str) -> str:
    return f"CAST(COALESCE(SUM({column}), 0) AS BIGINT)"


def read_products(query: Query, *, include_ci: bool = False) -> list[ProductTotals]:
    """Every product with its run and point totals, most runs first (CI runs if asked)."""
    if not include_ci:
        rows = query(
            "SELECT product, runs, points FROM rollup WHERE kind = 'total' AND runs > 0 "
            "ORDER BY runs DESC, product",
            (),
        )
    else:
        kinds = _kinds("total", include_ci)
        rows = query(
            f"SELECT product, {_sum('runs')} AS r, {_sum('points')} FROM rollup "
            f"WHERE {_kind_in(kinds)} GROUP BY product HAVING SUM(runs) > 0 "
            "ORDER BY r DESC, product",
            kinds,
        )
    return [ProductTotals(p, r, s) for p, r, s in rows]


def read_leaderboard(
    query: Query, product: str, limit: int = 50, *, include_ci: bool = False
) -> list[LeaderboardRow]:
    """Named projects of ``product`` ranked by points (level 1-2: 1, level 3: 2 a run)."""
    if not include_ci:
        rows = query(
            "SELECT key, points, runs FROM rollup WHERE kind = 'project' AND product = ? "
            "AND runs > 0 ORDER BY points DESC, runs DESC, key LIMIT ?",
            (product, limit),
        )
    else:
        kinds = _kinds("project", include_ci)
        rows = query(
            f"SELECT key, {_sum('points')} AS p, {_sum('runs')} AS r FROM rollup "
            f"WHERE {_kind_in(kinds)} AND product = ? GROUP BY key HAVING SUM(runs) > 0 "
            "ORDER BY p DESC, r DESC, key LIMIT ?",
            (*kinds, product, limit),
        )
    return rank([(name, int(points), int(runs)) for name, points, runs in rows])


def rank(rows: Sequence[tuple[str, int, int]]) -> list[LeaderboardRow]:
    """Rank ``(project, points, runs)`` rows, best first; equal points share a rank (1, 1, 3)."""
    ordered = sorted(rows, key=lambda r: (-r[1], -r[2], r[0]))
    out: list[LeaderboardRow] = []
    for index, (name, points, runs) in enumerate(ordered):
        place = out[-1].rank if out and out[-1].points == points else index + 1
        out.append(LeaderboardRow(place, name, points, runs))
    return out


def _by_key(query: Query, kind: str, product: str, include_ci: bool) -> list[tuple[Any, ...]]:
    """``(key, runs)`` of one kind, every key with runs."""
    if not include_ci:
        return query(
            "SELECT key, runs FROM rollup WHERE kind = ? AND product = ? AND runs > 0",
            (kind, product),
        )
    kinds = _kinds(kind, include_ci)
    return query(
        f"SELECT key, {_sum('runs')} FROM rollup WHERE {_kind_in(kinds)} AND product = ? "
        "GROUP BY key HAVING SUM(runs) > 0",
        (*kinds, product),
    )


def _totals(query: Query, kind: str, product: str, include_ci: bool) -> tuple[int, ...]:
    """``(runs, points, x, y)`` of a kind with one key, summed over CI if asked."""
    kinds = _kinds(kind, include_ci)
    rows = query(
        f"SELECT {_sum('runs')}, {_sum('points')}, {_sum('x')}, {_sum('y')} FROM rollup "
        f"WHERE {_kind_in(kinds)} AND product = ?",
        (*kinds, product),
    )
    return tuple(int(v) for v in rows[0]) if rows else (0, 0, 0, 0)


def _top(query: Query, kind: str, product: str, include_ci: bool = False) -> list[NamedCount]:
    if not include_ci:
        rows = query(
            "SELECT key, runs FROM rollup WHERE kind = ? AND product = ? AND runs > 0 "
            "ORDER BY runs DESC, key LIMIT ?",
            (kind, product, _TOP),
        )
    else:
        kinds = _kinds(kind, include_ci)
        rows = query(
            f"SELECT key, {_sum('runs')} AS r FROM rollup WHERE {_kind_in(kinds)} "
            "AND product = ? GROUP BY key HAVING SUM(runs) > 0 ORDER BY r DESC, key LIMIT ?",
            (*kinds, product, _TOP),
        )
    return [NamedCount(k, r) for k, r in rows]


def read_stats(query: Query, product: str, *, include_ci: bool = False) -> ProductStats:
    """Runs per day, versions, Python versions, platforms, components, apps, run times.

    CI runs are left out unless ``include_ci``. Run it in one snapshot: it takes several
    statements.
    """
    runs, points, _, _ = _totals(query, "total", product, include_ci)
    per_day = sorted((int(k), r) for k, r in _by_key(query, "day", product, include_ci))
    per_day = per_day[-_DAYS_SHOWN:]
    levels: dict[str, int] = dict(_by_key(query, "level", product, include_ci))
    app_runs, _, app_count, app_fails = _totals(query, "apps", product, include_ci)
    buckets: dict[str, int] = dict(_by_key(query, "exec", product, include_ci))
    return ProductStats(
        product=product,
        runs=runs,
        points=points,
        levels={str(n): levels.get(str(n), 0) for n in (1, 2, 3)},
        runs_per_day=[DayCount(day_text(d), r) for d, r in per_day],
        versions=_top(query, "version", product, include_ci),
        python_versions=_top(query, "python", product, include_ci),
        platforms=_top(query, "platform", product, include_ci),
        components=_top(query, "component", product, include_ci),
        apps=AppTotals(app_runs, app_count, app_fails),
        execution_time=[
            BucketCount(label, buckets.get(str(i), 0)) for i, (_, label) in enumerate(EXEC_BUCKETS)
        ],
    )
