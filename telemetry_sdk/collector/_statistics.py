"""The arithmetic behind the maintainers' answers, as pure functions over plain counts.

Two rules live here and nowhere else:

* **Upgrade time.** A release's upgrade time is the number of days from the day of its
  first run to the first day on which it carried at least half of the runs of the seven
  days ending that day (a trailing week, so that one busy or quiet day does not decide it).
  A release that has not reached half yet has no upgrade time ("not yet").
* **Version flag.** A version is flagged when the share of its runs that had at least one
  failed app is higher than the previous version's (the release before it, by first run) by
  a one-sided two-proportion z-test at p < 0.01, with at least 30 runs reporting apps on
  each side. Runs, not apps, are the units: the apps of one run fail together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from attrs import frozen

__all__ = [
    "FLAG_MIN_RUNS",
    "FLAG_P_VALUE",
    "UPGRADE_WINDOW_DAYS",
    "Upgrade",
    "failure_p_value",
    "is_flagged",
    "upgrade_times",
]

#: The trailing window (days) over which a release's share of runs is measured.
UPGRADE_WINDOW_DAYS = 7
#: A version is flagged below this p-value ...
FLAG_P_VALUE = 0.01
#: ... and only with at least this many runs reporting apps on each side.
FLAG_MIN_RUNS = 30


@frozen
class Upgrade:
    """When a release first ran, and when (if yet) it carried half of the runs."""

    version: str
    first_day: int
    half_day: int | None

    @property
    def days(self) -> int | None:
        """Days from the first run to carrying half of the runs; ``None``: not yet."""
        return None if self.half_day is None else self.half_day - self.first_day


def upgrade_times(daily: Mapping[int, Mapping[str, int]], last_day: int) -> list[Upgrade]:
    """The upgrade time of every version in ``daily`` (day -> version -> runs), up to ``last_day``.

    Versions come out in the order of their first run (ties by name).
    """
    days = sorted(d for d in daily if d <= last_day)
    if not days:
        return []
    first_seen: dict[str, int] = {}
    for day in days:
        for version, runs in daily[day].items():
            if runs > 0 and version not in first_seen:
                first_seen[version] = day
    start = days[0]
    span = last_day - start + 1
    totals = [0] * span
    for day in days:
        totals[day - start] = sum(daily[day].values())
    window_total = _trailing_sums(totals)
    out: list[Upgrade] = []
    for version, first in sorted(first_seen.items(), key=lambda item: (item[1], item[0])):
        shares = [0] * span
        for day in days:
            if day >= first:
                shares[day - start] = daily[day].get(version, 0)
        window_runs = _trailing_sums(shares)
        half = next(
            (
                start + i
                for i in range(first - start, span)
                if window_total[i] > 0 and 2 * window_runs[i] >= window_total[i]
            ),
            None,
        )
        out.append(Upgrade(version, first, half))
    return out


def _trailing_sums(values: Sequence[int]) -> list[int]:
    sums: list[int] = []
    running = 0
    for i, value in enumerate(values):
        running += value
        if i >= UPGRADE_WINDOW_DAYS:
            running -= values[i - UPGRADE_WINDOW_DAYS]
        sums.append(running)
    return sums


def failure_p_value(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """One-sided p-value that ``after``'s failure share is higher than ``before``'s.

    Each side is ``(runs with a failure, runs)``; a pooled two-proportion z-test. ``None``
    when a side has no runs or no run of either side differs (nothing to test).
    """
    failed_a, runs_a = before
    failed_b, runs_b = after
    if runs_a <= 0 or runs_b <= 0:
        return None
    pooled = (failed_a + failed_b) / (runs_a + runs_b)
    variance = pooled * (1 - pooled) * (1 / runs_a + 1 / runs_b)
    if variance <= 0:
        return None
    z = (failed_b / runs_b - failed_a / runs_a) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2))


def is_flagged(before: tuple[int, int], after: tuple[int, int]) -> bool:
    """Whether ``after`` fails clearly more often than ``before`` (the module's rule)."""
    if before[1] < FLAG_MIN_RUNS or after[1] < FLAG_MIN_RUNS:
        return False
    p_value = failure_p_value(before, after)
    return p_value is not None and p_value < FLAG_P_VALUE
