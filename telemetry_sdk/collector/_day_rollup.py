"""The per-day rollups: what one run counts for on the day it started, for views of any period.

They are rows of the same ``rollup`` table as the all-time counts, so every engine keeps them
with the same upserts, in the same transaction as the runs. A per-day row's kind is
``day:<kind>`` and its key is the day (six digits, days since 1970-01-01) and the name
(``"002001/1.2.0"``): a period is a range of keys, and a view sums the rows of one kind
over that range, never reading the runs. The kinds, and what each column holds:

==============  ============  ================================================================
kind            name          runs / points / x / y
==============  ============  ================================================================
day:total       ``""``        runs / points / - / -
day:level       1, 2 or 3     runs / points / - / -
day:version     version       runs / - / - / -
day:python      version       runs / - / - / -
day:platform    system        runs / - / - / -
day:project     name          runs / points / - / -
by:project      (see below)   runs / points / - / -
day:component   name          runs that used it / - / - / -
day:health      version       runs reporting app counts / of those, runs with a failed app /
                              apps / failed apps
day:open        version       level-3 runs whose start arrived / - / of those, runs with no
                              close yet / -
day:exec        bucket index  runs / - / - / -
==============  ============  ================================================================

A run without a version counts under the name ``""`` in ``day:health`` and ``day:open``.

``by:project`` holds the same counts as ``day:project`` keyed the other way round, by name
then day (``"ocean\x1f002001"``; the separator cannot occur in a project name, which is
printable), so that whether a project ran before a day is one index seek.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

__all__ = [
    "BY_PROJECT",
    "DAY_DIGITS",
    "PREFIX",
    "SEPARATOR",
    "add_run",
    "day_key",
    "key_day",
    "key_name",
    "key_range",
]

#: The kind prefix of per-day rows.
PREFIX = "day:"
#: The kind of the per-project rows keyed by name, then day.
BY_PROJECT = "by:project"
#: Between the name and the day in ``by:project`` keys.
SEPARATOR = "\x1f"
#: Digits of the day in a key (days since 1970 stay below 10**6 until the year 4707).
DAY_DIGITS = 6

Add = Callable[[str, str, int, int, int, int], None]


def day_key(day: int, name: str) -> str:
    """The key of ``name`` on ``day``."""
    return f"{day:0{DAY_DIGITS}d}/{name}"


def key_day(key: str) -> int:
    """The day of a per-day key."""
    return int(key[:DAY_DIGITS])


def key_name(key: str) -> str:
    """The name of a per-day key."""
    return key[DAY_DIGITS + 1 :]


def key_range(first: int, last: int) -> tuple[str, str]:
    """``(low, high)``: the keys of days ``first`` to ``last`` are ``>= low`` and ``< high``."""
    return f"{first:0{DAY_DIGITS}d}", f"{last + 1:0{DAY_DIGITS}d}"


def add_run(
    add: Add,
    times: int,
    *,
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
    """Call ``add(kind, key, runs, points, x, y)`` for what ``times`` such runs count for."""
    points = times * (2 if level == 3 else 1)

    def put(kind: str, name: str, pts: int = 0, x: int = 0, y: int = 0) -> None:
        add(PREFIX + kind, day_key(day, name), times, pts, x, y)

    put("total", "", points)
    put("level", str(level), points)
    if version is not None:
        put("version", version)
    if python_v is not None:
        put("python", python_v)
    if platform is not None:
        put("platform", platform)
    if project is not None:
        put("project", project, points)
        add(BY_PROJECT, f"{project}{SEPARATOR}{day:0{DAY_DIGITS}d}", times, points, 0, 0)
    for name in components:
        put("component", name)
    if app_count is not None and app_fails is not None:
        put(
            "health",
            version or "",
            times if app_fails > 0 else 0,
            times * app_count,
            times * app_fails,
        )
    if level == 3 and has_start:
        put("open", version or "", 0, 0 if has_close else times)
    if exec_bucket is not None:
        put("exec", str(exec_bucket))
