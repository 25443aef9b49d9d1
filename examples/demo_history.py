"""About 120 days of made-up minflow usage, for the demo's dashboard (clearly demo data).

Releases every few weeks, each taken up gradually (every project upgrades after its own
delay), one release (1.2.0) whose runs fail far more often until 1.2.1 fixes it, projects
that come and go (all named ``demo-...``), several Python versions and platforms. Every run
becomes the datagrams the SDK would send (a start, and at level 3 a close), so the collector
receives them through its normal ingest path.
"""

from __future__ import annotations

import datetime
import random
import uuid
from collections.abc import Iterator

from telemetry_sdk._wire import CloseMessage, Component, StartMessage, encode

#: (version, days before today it came out); 1.4.0 is what the live demo runs send.
RELEASES = [
    ("1.0.0", 160),
    ("1.1.0", 105),
    ("1.2.0", 76),
    ("1.2.1", 66),
    ("1.3.0", 38),
    ("1.4.0", 12),
]
#: A run of this version has a failed app this often (1.2.0 broke something).
FAILURE_CHANCE = {"1.2.0": 0.32}
USUAL_FAILURE_CHANCE = 0.05
#: (Python version, share at the start, change of share per day).
PYTHONS = [
    ("3.10.14", 0.25, -0.002),
    ("3.11.9", 0.35, 0.0),
    ("3.12.4", 0.3, 0.001),
    ("3.13.0", 0.1, 0.002),
]
PLATFORMS = [("Linux", 0.78), ("Darwin", 0.17), ("Windows", 0.05)]
EXECUTORS = ["minflow.executors.ThreadPoolExecutor", "minflow.executors.HighThroughputExecutor"]
PROVIDERS = ["minflow.providers.LocalProvider", "minflow.providers.SlurmProvider"]
DAYS = 120


def _project_pool(rng: random.Random) -> list[tuple[str, int, int, float]]:
    """(name, first day, last day, upgrade delay in days) of the named demo projects."""
    topics = [
        "ocean-model", "genome-pipeline", "climate-ensemble", "protein-fold", "galaxy-survey",
        "crop-yield", "seismic-inversion", "traffic-sim", "epidemic-forecast", "materials-screen",
        "river-flow", "student-lab", "cosmology-mocks", "neuro-imaging", "wind-farm",
        "air-quality", "drug-docking", "glacier-melt", "power-grid", "bird-migration",
    ]  # fmt: skip
    pool = []
    for topic in topics:
        start = rng.randint(-40, DAYS - 10)
        length = rng.randint(20, 200)
        pool.append((f"demo-{topic}", start, start + length, rng.expovariate(1 / 10)))
    return pool


def _version(days_ago_of_run: int, delay: float) -> str:
    """The newest release out for at least ``delay`` days when the run started."""
    chosen = RELEASES[0][0]
    for version, released in RELEASES:
        if released - days_ago_of_run >= delay:
            chosen = version
    return chosen


def _weighted(rng: random.Random, items: list[tuple[str, float]]) -> str:
    return rng.choices([name for name, _ in items], [w for _, w in items])[0]


def datagrams(today: datetime.date, seed: int = 2024) -> Iterator[bytes]:
    """The datagrams of every made-up run of the last ``DAYS`` days, oldest first."""
    rng = random.Random(seed)
    projects = _project_pool(rng)
    midnight = datetime.datetime.combine(today, datetime.time(), datetime.UTC)
    for offset in range(DAYS, 0, -1):
        day = midnight - datetime.timedelta(days=offset)
        weekend = day.weekday() >= 5
        # Usage grows over the period and dips at weekends.
        volume = int((18 + 22 * (DAYS - offset) / DAYS) * (0.45 if weekend else 1.0))
        active = [p for p in projects if p[1] <= DAYS - offset <= p[2]]
        pythons = [(v, max(0.01, w + drift * (DAYS - offset))) for v, w, drift in PYTHONS]
        for _ in range(rng.randint(volume - 4, volume + 4)):
            if active and rng.random() < 0.65:
                project, _, _, delay = rng.choice(active)
                name: str | None = project
            else:
                name, delay = None, rng.expovariate(1 / 14)
            yield from _run(rng, day, offset, name, _version(offset, delay), pythons)


def _run(
    rng: random.Random,
    day: datetime.datetime,
    offset: int,
    project: str | None,
    version: str,
    pythons: list[tuple[str, float]],
) -> Iterator[bytes]:
    level = rng.choices([1, 2, 3], [0.25, 0.3, 0.45])[0]
    correlator = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    start = int((day + datetime.timedelta(seconds=rng.randint(0, 86_399))).timestamp())
    components = None
    if level >= 2:
        components = (
            Component("minflow.config.Config", {"executors": 1}),
            Component(rng.choice(EXECUTORS)),
            Component(_weighted(rng, [(PROVIDERS[0], 0.7), (PROVIDERS[1], 0.3)])),
        )
    yield encode(
        StartMessage(
            correlator=correlator,
            product="minflow",
            version=version,
            python_v=_weighted(rng, pythons),
            platform_system=_weighted(rng, PLATFORMS),
            tracking_level=level,
            project_name=project,
            components=components,
            start=start,
        )
    )[0]
    # A few level-3 runs never close (killed jobs); the rest report their apps.
    if level < 3 or rng.random() < 0.04:
        return
    apps = rng.randint(4, 60)
    failed = rng.random() < FAILURE_CHANCE.get(version, USUAL_FAILURE_CHANCE)
    fails = rng.randint(1, 3) if failed else 0
    duration = rng.lognormvariate(5, 1.5)
    yield encode(
        CloseMessage(
            correlator=correlator,
            product="minflow",
            version=version,
            tracking_level=3,
            project_name=project,
            end=start + int(duration),
            execution_time=round(duration, 3),
            components=(Component("minflow", {"app_count": apps, "app_fails": fails}),),
        )
    )[0]
