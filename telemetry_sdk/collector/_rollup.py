"""The rollup counts: what one run contributes to the views, as pure arithmetic.

The leaderboard and the stats never scan the runs: they read the ``rollup`` table, one row
per (kind, product, key) holding ``runs``, ``points``, ``x`` and ``y``. Each run
contributes a fixed set of counts (its day, version, platform, project, components, ...);
when a run changes, its old contribution is subtracted and its new one added, so fills,
duplicates and deletions stay exact. A run from CI (its ``Environment`` component says so)
counts under the same kinds prefixed with ``CI_PREFIX`` (``ci:total``, ``ci:project``, ...),
so the views leave CI runs out unless asked to include them. Every engine applies the
``Deltas`` computed here as ``n = n + delta`` upserts, in ``sorted`` key order.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import orjson
from attrs import frozen

from ._day_rollup import add_run
from ._run_merge import DAY, RunRow

__all__ = [
    "CI_PREFIX",
    "EXEC_BUCKETS",
    "Deltas",
    "RollupKey",
    "Signature",
    "component_names",
    "exec_bucket",
    "run_day",
    "signature",
    "tally",
    "upgrade_to_days",
]

#: Upper bounds (seconds) and labels of the execution time histogram.
EXEC_BUCKETS: tuple[tuple[float, str], ...] = (
    (1.0, "< 1 s"),
    (10.0, "1-10 s"),
    (60.0, "10 s-1 min"),
    (600.0, "1-10 min"),
    (3600.0, "10 min-1 h"),
    (36000.0, "1-10 h"),
    (float("inf"), "> 10 h"),
)

#: Prefixed to the kind of every count a CI run contributes.
CI_PREFIX = "ci:"

#: A rollup row's key: (kind, product, key).
RollupKey = tuple[str, str, str]
#: Changes to rollup rows: key -> [runs, points, x, y].
Deltas = dict[RollupKey, list[int]]


def exec_bucket(seconds: float) -> int:
    """The index in ``EXEC_BUCKETS`` of an execution time."""
    for index, (bound, _) in enumerate(EXEC_BUCKETS):
        if seconds < bound:
            return index
    return len(EXEC_BUCKETS) - 1


@functools.lru_cache(maxsize=4096)
def _names(components: str | None, *, skip_app_counts: bool) -> tuple[str, ...]:
    if not components:
        return ()
    names: dict[str, None] = {}
    for item in orjson.loads(components):
        if isinstance(item, str):
            names[item] = None
        elif isinstance(item, dict) and not (skip_app_counts and "app_count" in item):
            names[str(item["c"])] = None
    return tuple(names)


def component_names(row: RunRow) -> tuple[str, ...]:
    """The names of a run's components: from its start, else from its close.

    A close's component that only reports app counts (Parsl's DataFlowKernel in a close)
    is not counted as a component the run used.
    """
    if row.has_start:
        return _names(row.components, skip_app_counts=False)
    return _names(row.close_components, skip_app_counts=True)


@frozen
class Signature:
    """Everything about a run the rollups depend on (hashable, so equal runs group)."""

    product: str
    level: int
    day: int
    version: str | None
    python_v: str | None
    platform: str | None
    project: str | None
    components: tuple[str, ...]
    app_count: int | None
    app_fails: int | None
    bucket: int | None
    has_start: bool
    has_close: bool
    #: A CI run counts under ``CI_PREFIX`` kinds (its per-day rows too).
    ci: bool = False


def run_day(row: RunRow) -> int:
    """The day a run counts on: the day it started, else the day it was first received."""
    if row.has_start and row.start is not None:
        return row.start // DAY
    return row.received // DAY


def signature(row: RunRow) -> Signature | None:
    """What a run counts for; ``None`` if it counts for nothing (no level known yet)."""
    if row.level is None:
        return None
    return Signature(
        product=row.product,
        level=row.level,
        day=run_day(row),
        version=row.version,
        python_v=row.python_v,
        platform=row.platform,
        project=row.project,
        components=component_names(row),
        app_count=row.app_count,
        app_fails=row.app_fails,
        bucket=None if row.execution_time is None else exec_bucket(row.execution_time),
        has_start=row.has_start,
        has_close=row.has_close,
        ci=row.ci is True,
    )


def _contribute(sig: Signature, times: int, deltas: Deltas) -> None:
    """Add what ``times`` runs with this signature count for (negative ``times`` subtracts)."""
    product = sig.product
    points = times * (2 if sig.level == 3 else 1)
    prefix = CI_PREFIX if sig.ci else ""

    def add(kind: str, key: str, pts: int = 0, x: int = 0, y: int = 0) -> None:
        put(kind, key, times, pts, x, y)

    def put(kind: str, key: str, runs: int, pts: int, x: int, y: int) -> None:
        kind = prefix + kind
        entry = deltas.get((kind, product, key))
        if entry is None:
            entry = deltas[(kind, product, key)] = [0, 0, 0, 0]
        entry[0] += runs
        entry[1] += pts
        entry[2] += x
        entry[3] += y

    add("total", "", points)
    add("level", str(sig.level), points)
    add("day", str(sig.day), points)
    if sig.version is not None:
        add("version", sig.version)
    if sig.python_v is not None:
        add("python", sig.python_v)
    if sig.platform is not None:
        add("platform", sig.platform)
    if sig.project is not None:
        add("project", sig.project, points)
    for name in sig.components:
        add("component", name)
    if sig.app_count is not None:
        add("apps", "", 0, times * sig.app_count, times * (sig.app_fails or 0))
    if sig.bucket is not None:
        add("exec", str(sig.bucket))
    add_run(
        put,
        times,
        day=sig.day,
        level=sig.level,
        version=sig.version,
        python_v=sig.python_v,
        platform=sig.platform,
        project=sig.project,
        components=sig.components,
        has_start=sig.has_start,
        has_close=sig.has_close,
        app_count=sig.app_count,
        app_fails=sig.app_fails,
        exec_bucket=sig.bucket,
    )


def tally(changes: Iterable[tuple[RunRow | None, RunRow | None]]) -> Deltas:
    """The rollup deltas of runs going from ``old`` to ``new`` (``None``: absent).

    Runs with the same signature are grouped first, so a batch of a thousand similar runs
    costs a few dozen additions.
    """
    counts: dict[Signature, int] = {}
    for old, new in changes:
        if old is not None and (sig := signature(old)) is not None:
            counts[sig] = counts.get(sig, 0) - 1
        if new is not None and (sig := signature(new)) is not None:
            counts[sig] = counts.get(sig, 0) + 1
    deltas: Deltas = {}
    for sig, times in counts.items():
        if times:
            _contribute(sig, times, deltas)
    return {k: v for k, v in sorted(deltas.items()) if any(v)}


def upgrade_to_days(rows: Sequence[RunRow]) -> Deltas:
    """What schema 4's rollups lack for ``rows`` (runs held when upgrading to schema 5).

    Schemas 3 and 4 counted a run on the day it was first received and kept no per-day rows.
    For each held run this moves its ``day`` count to the day it started and adds its
    per-day rows; counts of runs that retention already removed stay as they were. A CI
    run's rows are its ``CI_PREFIX`` kinds (``ci:day``, ``ci:day:<kind>``, ``ci:by:project``).
    """
    deltas: Deltas = {
        key: list(value)
        for key, value in tally([(None, row) for row in rows]).items()
        if key[0].removeprefix(CI_PREFIX) == "day"
        or key[0].removeprefix(CI_PREFIX).startswith(("day:", "by:"))
    }
    for row in rows:
        sig = signature(row)
        if sig is None:
            continue
        kind = CI_PREFIX + "day" if sig.ci else "day"
        old = deltas.setdefault((kind, sig.product, str(row.received // DAY)), [0, 0, 0, 0])
        old[0] -= 1
        old[1] -= 2 if sig.level == 3 else 1
    return {k: v for k, v in sorted(deltas.items()) if any(v)}
