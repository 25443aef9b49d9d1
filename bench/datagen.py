"""Fill a collector database with synthetic, realistic runs, fast, through the store's batch path.

    python bench/datagen.py --db /tmp/runs.db --runs 10000000     # several minutes
    python bench/datagen.py --db /tmp/small.db --runs 100000

The runs are spread the way real usage is: a few large products and a long tail
(Zipf-like weights over 60 products), many versions per product, thousands of projects
(about 40 % of runs name none), levels 1-3 (40/25/35 %), four Python versions, three
platforms, components from level 2 on, app counts and run times at level 3, and a close
for 70 % of level-3 runs. Receipt days spread over the last 400 days. Correlators are
random UUIDs, as the SDK sends them. Records go through the store's ``write_batch`` (the
writer's path, which keeps the rollup tables current) in batches of ``--batch``, on SQLite
or PostgreSQL (``--db postgresql://...``).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _collector_proc import file_mib  # noqa: E402

from telemetry_sdk._wire_rules import COUNT_MAX, DURATION_MAX  # noqa: E402
from telemetry_sdk.collector import Record, open_store  # noqa: E402

DAY = 86400


def zipf_weights(n: int, s: float = 1.1) -> list[float]:
    return [1.0 / (k**s) for k in range(1, n + 1)]


class Universe:
    """The products, versions, projects and component sets that runs are drawn from."""

    def __init__(self, rng: random.Random, products: int = 60) -> None:
        import orjson

        self.products = [f"product-{i:02d}" if i else "minflow" for i in range(products)]
        self.product_weights = zipf_weights(products)
        self.versions = {
            p: [f"{1 + v // 10}.{v % 10}.{rng.randrange(10)}" for v in range(rng.randint(5, 40))]
            for p in self.products
        }
        self.projects = {
            p: [f"{p}-project-{j:04d}" for j in range(max(5, int(3000 * w)))]
            for p, w in zip(self.products, self.product_weights, strict=True)
        }
        self.pythons = ["3.10.14", "3.11.7", "3.12.4", "3.13.0"]
        self.python_weights = [2, 5, 4, 1]
        self.platforms = ["Linux", "Darwin", "Windows"]
        self.platform_weights = [80, 15, 5]
        self.components: dict[str, list[str]] = {}
        for p in self.products:
            sets = []
            for k in range(12):
                names = [
                    f"{p}.config.Config",
                    f"{p}.executors.Executor{k % 4}",
                    f"{p}.providers.Provider{k % 3}",
                ]
                wire = [{"c": names[0], "executors_len": 1 + k % 3}, names[1], names[2]]
                sets.append(orjson.dumps(wire).decode())
            self.components[p] = sets


def correlator(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def batches(
    runs: int, batch: int, seed: int, now: int, products: int = 60
) -> Iterator[list[Record]]:
    """Yield lists of ``Record`` (starts, and closes right after their start) for ``runs`` runs."""
    rng = random.Random(seed)
    u = Universe(rng, products)
    made = 0
    while made < runs:
        n = min(batch, runs - made)
        products = rng.choices(u.products, u.product_weights, k=n)
        levels = rng.choices((1, 2, 3), (40, 25, 35), k=n)
        pythons = rng.choices(u.pythons, u.python_weights, k=n)
        platforms = rng.choices(u.platforms, u.platform_weights, k=n)
        out = []
        for product, level, python_v, platform in zip(
            products, levels, pythons, platforms, strict=True
        ):
            corr = correlator(rng)
            versions = u.versions[product]
            version = versions[min(int(rng.expovariate(0.25)), len(versions) - 1)]
            project = None
            if rng.random() >= 0.4:
                projects = u.projects[product]
                project = projects[min(int(rng.paretovariate(1.2)) - 1, len(projects) - 1)]
            components = None
            if level >= 2:
                components = rng.choice(u.components[product])
            received = now - rng.randrange(400 * DAY)
            start = received if level == 3 else None
            out.append(
                Record(
                    "start",
                    corr,
                    product,
                    version,
                    python_v,
                    platform,
                    level,
                    project,
                    components,
                    start,
                    None,
                    None,
                    None,
                    None,
                    received,
                )
            )
            if level == 3 and rng.random() < 0.7:
                seconds = round(rng.lognormvariate(3.0, 2.0), 3)
                seconds = min(seconds, DURATION_MAX)
                apps = min(int(rng.paretovariate(1.0)), COUNT_MAX)
                fails = rng.randrange(apps + 1) if rng.random() < 0.1 else 0
                close_components = f'[{{"c":"{product}","app_count":{apps},"app_fails":{fails}}}]'
                out.append(
                    Record(
                        "close",
                        corr,
                        product,
                        version,
                        None,
                        None,
                        3,
                        project,
                        close_components,
                        None,
                        received + int(seconds),
                        seconds,
                        apps,
                        fails,
                        received + int(seconds),
                    )
                )
        made += n
        yield out


def fill(
    db: Path | str,
    runs: int,
    *,
    batch: int = 5000,
    seed: int = 1,
    progress: bool = True,
    products: int = 60,
) -> dict[str, float]:
    """Add ``runs`` runs to the database at ``db``; return counts and timings."""
    store = open_store(db)
    began = time.perf_counter()
    records = made = 0
    next_report = began + 10
    try:
        for chunk in batches(runs, batch, seed, int(time.time()), products):
            store.write_batch(chunk)
            records += len(chunk)
            made += sum(1 for r in chunk if r.kind == "start")
            if progress and time.perf_counter() >= next_report:
                rate = made / (time.perf_counter() - began)
                print(f"  {made:,} runs ({rate:,.0f} runs/s)", file=sys.stderr, flush=True)
                next_report += 10
    finally:
        store.close()
    elapsed = time.perf_counter() - began
    return {"runs": made, "records": records, "seconds": elapsed, "runs_per_s": made / elapsed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--db",
        required=True,
        help="database URL: a SQLite file (created if missing) or postgresql://...",
    )
    parser.add_argument(
        "--products", type=int, default=60, help="products (1: every run is minflow's)"
    )
    parser.add_argument("--runs", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=5000, help="records per write_batch")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    result = fill(args.db, args.runs, batch=args.batch, seed=seed, products=args.products)
    size = file_mib(args.db)
    print(
        f"{result['runs']:,} runs ({result['records']:,} records) in {result['seconds']:,.1f} s: "
        f"{result['runs_per_s']:,.0f} runs/s; database {size:,.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
