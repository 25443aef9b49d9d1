"""Generated usage history for the period-view, report and API tests.

The tests compute what they expect from these ``Run`` objects themselves; the collector
only ever sees the datagrams' records.
"""

from __future__ import annotations

import datetime
import random
import uuid
from collections import Counter, defaultdict

import attrs
from _collector_support import close_message, datagram, start_message

from telemetry_sdk._wire import CloseMessage, Component, StartMessage
from telemetry_sdk.collector import Record, SQLiteStore, record_from_message
from telemetry_sdk.collector._period import day_number

FIRST_DAY = day_number(datetime.date(2025, 1, 1))
DAY_S = 86_400


@attrs.frozen
class Run:
    """One generated run: what the test knows independently of the collector."""

    day: int
    version: str
    python: str
    project: str | None
    level: int
    closed: bool
    apps: int
    fails: int
    components: tuple[str, ...] = ("minflow.ThreadPoolExecutor",)
    correlator: str = attrs.field(factory=lambda: str(uuid.uuid4()))

    @property
    def points(self) -> int:
        return 2 if self.level == 3 else 1


def messages(run: Run) -> list[StartMessage | CloseMessage]:
    """The messages the SDK sends for the run."""
    start_s = run.day * DAY_S + 3600
    out: list[StartMessage | CloseMessage] = [
        start_message(
            correlator=run.correlator,
            version=run.version,
            python_v=run.python,
            tracking_level=run.level,
            project_name=run.project,
            components=tuple(Component(c) for c in run.components),
            start=start_s,
        )
    ]
    if run.closed:
        out.append(
            close_message(
                run.correlator,
                version=run.version,
                end=start_s + 60,
                components=(Component("minflow", {"app_count": run.apps, "app_fails": run.fails}),),
            )
        )
    return out


def datagrams(run: Run) -> list[bytes]:
    """The run's datagrams, as sent over UDP."""
    return [datagram(m) for m in messages(run)]


def records(run: Run, received_late: int = 0) -> list[Record]:
    """The run's messages as the collector records them (received ``received_late`` days on)."""
    received = run.day * DAY_S + 3600 + received_late * DAY_S
    return [record_from_message(m, received + 60 * i) for i, m in enumerate(messages(run))]


def history(seed: int = 7, days: int = 60, first_day: int = FIRST_DAY) -> list[Run]:
    """Releases every 20 days taking over the runs, one failing badly, projects coming and going."""
    rng = random.Random(seed)
    versions = ["1.0.0", "1.1.0", "1.2.0"]
    out: list[Run] = []
    for offset in range(days):
        day = first_day + offset
        released = versions[: offset // 20 + 1]
        for _ in range(rng.randint(4, 9)):
            # The newest release takes a growing share of its release's days.
            newest = released[-1]
            age = offset % 20
            version = newest if rng.random() < min(0.9, 0.1 + age * 0.06) else rng.choice(released)
            level = rng.choice([1, 2, 3, 3])
            closed = level == 3 and rng.random() < 0.8
            fail_share = 0.6 if version == "1.1.0" else 0.05
            fails = 1 if closed and rng.random() < fail_share else 0
            project = rng.choice([None, "ocean", "genome", f"lab-{offset // 15}"])
            out.append(
                Run(
                    day, version, rng.choice(["3.11.7", "3.12.1"]), project, level, closed,
                    4 if closed else 0, fails,
                )
            )  # fmt: skip
    return out


def load(store: SQLiteStore, runs: list[Run]) -> None:
    batch: list[Record] = []
    for run in runs:
        batch.extend(records(run))
    for i in range(0, len(batch), 500):
        store.write_batch(batch[i : i + 500])


def expected_board(runs: list[Run], first: int, last: int) -> list[tuple[int, str, int, int]]:
    """(rank, project, points, runs) counted from ``runs`` started on days first..last."""
    points: Counter[str] = Counter()
    count: Counter[str] = Counter()
    for run in runs:
        if run.project is not None and first <= run.day <= last:
            points[run.project] += run.points
            count[run.project] += 1
    ordered = sorted(points, key=lambda p: (-points[p], -count[p], p))
    out: list[tuple[int, str, int, int]] = []
    for i, name in enumerate(ordered):
        rank = out[-1][0] if out and out[-1][2] == points[name] else i + 1
        out.append((rank, name, points[name], count[name]))
    return out


def expected_upgrades(runs: list[Run], last: int) -> dict[str, tuple[datetime.date, int | None]]:
    """Version -> (first day, days until it carried half of a trailing week's runs)."""
    per_day: dict[int, Counter[str]] = defaultdict(Counter)
    for run in runs:
        per_day[run.day][run.version] += 1
    out = {}
    for version in sorted({r.version for r in runs if r.day <= last}):
        first = min(r.day for r in runs if r.version == version)
        half = None
        for day in range(first, last + 1):
            week = [per_day[d] for d in range(day - 6, day + 1)]
            if 2 * sum(c[version] for c in week) >= sum(sum(c.values()) for c in week):
                half = day
                break
        out[version] = (
            datetime.date(1970, 1, 1) + datetime.timedelta(days=first),
            None if half is None else half - first,
        )
    return out
