"""What one run counts for in the per-day rollups, which answer every view for any period.

The store keeps a table of counts keyed by (product, kind, day, key), kept current by the
writer in the same transaction as the runs (adding what a new or changed run counts for,
subtracting what its old row counted for). Every period view sums rows of one kind over a
range of days; none reads the runs. The kinds, and what each column holds:

===========  ============  ==================================================================
kind         key           runs / points / x / y
===========  ============  ==================================================================
total        ``""``        runs / points / - / -
level        1, 2 or 3     runs / points / - / -
version      version       runs / - / - / -
python       version       runs / - / - / -
platform     system        runs / - / - / -
project      name          runs / points / - / -
component    name          runs that used it / - / - / -
health       version       runs reporting app counts / of those, runs with a failed app /
                           apps / failed apps
open         version       level-3 runs whose start arrived / - / of those, runs with no
                           close yet / -
exec         bucket index  runs / - / - / -
===========  ============  ==================================================================

A run without a version counts under the key ``""`` in ``health`` and ``open``.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["EXEC_BUCKETS", "DayDeltas", "add_run", "exec_bucket"]

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

#: (kind, product, day, key) -> [runs, points, x, y] to add.
DayDeltas = dict[tuple[str, str, int, str], list[int]]


def exec_bucket(seconds: float) -> int:
    """The index in ``EXEC_BUCKETS`` of an execution time."""
    for index, (bound, _) in enumerate(EXEC_BUCKETS):
        if seconds < bound:
            return index
    return len(EXEC_BUCKETS) - 1


def add_run(
    deltas: DayDeltas,
    times: int,
    *,
    product: str,
    day: int,
    level: int,
    version: str | None,
    python_v: str | None,
    platform: str | None,
    project: str | None,
    components: Iterable[str],
    has_start: bool,
    has_close: bool,
    app_count: int | None,
    app_fails: int | None,
    exec_bucket: int | None,
) -> None:
    """Add what ``times`` runs like this count for (a negative ``times`` subtracts)."""
    points = times * (2 if level == 3 else 1)

    def add(kind: str, key: str, pts: int = 0, x: int = 0, y: int = 0, runs: int = times) -> None:
        entry = deltas.get((kind, product, day, key))
        if entry is None:
            entry = deltas[(kind, product, day, key)] = [0, 0, 0, 0]
        entry[0] += runs
        entry[1] += pts
        entry[2] += x
        entry[3] += y

    add("total", "", points)
    add("level", str(level), points)
    if version is not None:
        add("version", version)
    if python_v is not None:
        add("python", python_v)
    if platform is not None:
        add("platform", platform)
    if project is not None:
        add("project", project, points)
    for name in components:
        add("component", name)
    if app_count is not None and app_fails is not None:
        failed = times if app_fails > 0 else 0
        add("health", version or "", failed, times * app_count, times * app_fails)
    if level == 3 and has_start:
        add("open", version or "", 0, 0 if has_close else times)
    if exec_bucket is not None:
        add("exec", str(exec_bucket))
