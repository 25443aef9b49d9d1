"""Collector reads at scale: leaderboard and stats latency over HTTP, and resident memory.

    python bench/query_bench.py --db /tmp/runs.db --runs 10000000   # fills it first if needed
    python bench/query_bench.py --db /tmp/runs.db                    # reuse a filled database
    python bench/query_bench.py --quick                              # 2,000 runs, to check it runs
    python bench/query_bench.py --db postgresql://postgres@127.0.0.1/test --runs 10000000

The database is filled by ``datagen.py`` (through the store's batch path) unless it already
holds at least ``--runs`` runs. Then ``python -m telemetry_sdk collector`` is started on it in
its own process, and ``--requests`` sequential requests (one new connection each, as a
browser or a script would) go to each of ``/api/leaderboard``, ``/api/stats`` and
``/api/products``, cycling through every product, after a warm-up, to each again with
``ci=include`` (the views counting CI runs too), and to every view of a period (the last 365
days; the leaderboard also of the last 30 and 90). Reported: p50, p95, p99
latency per endpoint, and the collector's VmRSS and VmHWM from /proc after the queries.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import datagen
from _collector_proc import CollectorProcess, file_mib, is_postgres
from _common import BENCH, clean_env, fmt_ms, machine_line, median, percentile, print_table, verdict

LATENCY_TARGET = 0.050
MEMORY_TARGET_MIB = 200


def latency_rows(latencies: dict[str, list[float]], *, judged: bool) -> list[list[object]]:
    """One table row per endpoint: requests, p50, p95, p99 and (when judged) the verdict."""
    rows: list[list[object]] = []
    for name, values in latencies.items():
        p95 = percentile(values, 95)
        rows.append(
            [
                name,
                len(values),
                fmt_ms(median(values)),
                fmt_ms(p95),
                fmt_ms(percentile(values, 99)),
                "p95 <= 50 ms" if judged else "-",
                verdict(p95 <= LATENCY_TARGET) if judged else "-",
            ]
        )
    return rows


#: (name in the table, path, days) of the period views timed.
PERIOD_VIEWS = [
    ("/api/leaderboard?since&until", "/api/leaderboard", 30),
    ("/api/leaderboard?since&until", "/api/leaderboard", 90),
    ("/api/leaderboard?since&until", "/api/leaderboard", 365),
    ("/api/stats?since&until", "/api/stats", 365),
    ("/api/adoption/versions", "/api/adoption/versions", 365),
    ("/api/adoption/python", "/api/adoption/python", 365),
    ("/api/components", "/api/components", 365),
    ("/api/upgrades", "/api/upgrades", 365),
    ("/api/projects", "/api/projects", 365),
    ("/api/health", "/api/health", 365),
    ("/api/never-closed", "/api/never-closed", 365),
]


def period_query(days: int) -> str:
    """``since=...&until=...``: the last ``days`` days, today included (UTC)."""
    today = datetime.datetime.now(datetime.UTC).date()
    since = today - datetime.timedelta(days=days - 1)
    return f"since={since.isoformat()}&until={today.isoformat()}"


def stored_runs(db: Path | str) -> int:
    if is_postgres(db):
        import psycopg

        with psycopg.connect(str(db)) as pg:
            try:
                rows = pg.execute("SELECT runs FROM rollup WHERE kind = 'total'").fetchall()
            except psycopg.errors.UndefinedTable:
                return 0
        return sum(r[0] for r in rows)
    db = Path(db)
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT runs FROM rollup WHERE kind = 'total'").fetchall()
        return sum(r[0] for r in row)
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def timed_get(collector: CollectorProcess, path: str) -> float:
    began = time.perf_counter()
    body = collector.get(path)
    elapsed = time.perf_counter() - began
    json.loads(body)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--db",
        help="database to query, a SQLite path or postgresql://... (default: a temporary file)",
    )
    parser.add_argument(
        "--products", type=int, default=60, help="products datagen spreads runs over"
    )
    parser.add_argument("--runs", type=int, default=10_000_000, help="runs the database must hold")
    parser.add_argument("--requests", type=int, default=300, help="requests per endpoint")
    parser.add_argument(
        "--load-rate",
        type=float,
        default=20_000,
        help="datagrams/s offered by loadgen.py during the second pass of queries (0: none)",
    )
    parser.add_argument("--load-seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="2,000 runs, 20 requests each")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.requests, args.load_rate, args.load_seconds = 2000, 20, 2000, 1.0

    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        db: Path | str = args.db or Path(tmp) / "runs.db"
        have = stored_runs(db)
        if have < args.runs:
            print(f"  filling {db} with {args.runs - have:,} runs ...", file=sys.stderr, flush=True)
            fill = datagen.fill(
                db,
                args.runs - have,
                batch=50_000,
                seed=int(time.time()),
                products=args.products,
            )
            print(
                f"# filled {fill['runs']:,.0f} runs in {fill['seconds']:,.0f} s "
                f"({fill['runs_per_s']:,.0f} runs/s, store batch path, batches of 50,000 records)"
            )
        total = stored_runs(db)
        print(f"# database: {total:,} runs, {file_mib(db):,.0f} MiB")

        started = time.perf_counter()
        with CollectorProcess(db, Path(tmp)) as collector:
            startup = time.perf_counter() - started
            memory_idle = collector.memory_kib()
            listing = json.loads(collector.get("/api/products"))
            if isinstance(listing, dict):  # {"products": [...]}
                listing = listing["products"]
            products = [p["product"] for p in listing]
            paths = {
                "/api/leaderboard?product=P": [
                    f"/api/leaderboard?product={urllib.parse.quote(p)}" for p in products
                ],
                "/api/stats?product=P": [
                    f"/api/stats?product={urllib.parse.quote(p)}" for p in products
                ],
                "/api/products": ["/api/products"],
                # The same views counting CI runs too (sums over two rollup kinds).
                "/api/leaderboard?product=P&ci=include": [
                    f"/api/leaderboard?product={urllib.parse.quote(p)}&ci=include" for p in products
                ],
                "/api/stats?product=P&ci=include": [
                    f"/api/stats?product={urllib.parse.quote(p)}&ci=include" for p in products
                ],
                "/api/products?ci=include": ["/api/products?ci=include"],
            }
            # Every view of a period, over the last 365 days (the longest preset of the
            # dashboard's picker), and the leaderboard of the last 30 and 90 days too.
            for name, path, days in PERIOD_VIEWS:
                paths[f"{name} ({days} d)"] = [
                    f"{path}?product={urllib.parse.quote(p)}&{period_query(days)}" for p in products
                ]
            for group in paths.values():  # warm-up: every path once
                for path in group:
                    timed_get(collector, path)
            latencies: dict[str, list[float]] = {name: [] for name in paths}
            for i in range(args.requests):
                for name, group in paths.items():
                    latencies[name].append(timed_get(collector, group[i % len(group)]))
            memory = collector.memory_kib()

            # Second pass: the same queries while the collector ingests a paced load.
            loaded: dict[str, list[float]] = {name: [] for name in paths}
            ingest: dict[str, float] = {}
            if args.load_rate > 0:
                sender = subprocess.Popen(
                    [
                        sys.executable,
                        str(BENCH / "loadgen.py"),
                        "--target",
                        f"127.0.0.1:{collector.udp_port}",
                        "--rate",
                        str(args.load_rate),
                        "--duration",
                        str(args.load_seconds),
                    ],
                    env=clean_env(),
                    stdout=subprocess.PIPE,
                    text=True,
                )
                i = 0
                while sender.poll() is None:
                    for name, group in paths.items():
                        loaded[name].append(timed_get(collector, group[i % len(group)]))
                    i += 1
                load = json.loads((sender.communicate()[0] or "{}").strip().splitlines()[-1])
                after = collector.drain()
                ingest = {
                    "sent": load["sent"],
                    "accepted": after.get("accepted_total", 0),
                    "written": after.get("written_total", 0),
                }
            memory_loaded = collector.memory_kib()

    rows = latency_rows(latencies, judged=True)
    print_table(
        f"HTTP latency with {total:,} runs stored ({len(products)} products; sequential requests)",
        ["endpoint", "requests", "p50", "p95", "p99", "target", "result"],
        rows,
    )
    if ingest:
        rows = latency_rows(loaded, judged=False)
        print_table(
            f"The same, while ingesting {args.load_rate:,.0f} datagrams/s for {args.load_seconds:g} s "
            f"(sent {ingest['sent']:,.0f}, accepted {ingest['accepted']:,.0f}, written {ingest['written']:,.0f})",
            ["endpoint", "requests", "p50", "p95", "p99", "target", "result"],
            rows,
        )

    def mib(data: dict[str, int], key: str) -> str:
        return f"{data.get(key, 0) / 1024:,.0f} MiB"

    rss, hwm = memory.get("VmRSS", 0) / 1024, memory.get("VmHWM", 0) / 1024
    parts = f"collector + {memory.get('processes', 1) - 1} child process(es)"
    print_table(
        "Collector resident memory (from /proc/<pid>/status, summed over its process tree)",
        ["figure", "measured", "target", "result"],
        [
            ["collector start-up until listening", f"{startup:.2f} s", "-", "-"],
            ["VmRSS after start-up", mib(memory_idle, "VmRSS"), "-", "-"],
            [
                f"VmRSS after the queries ({parts})",
                f"{rss:,.0f} MiB",
                f"<= {MEMORY_TARGET_MIB} MiB",
                verdict(rss <= MEMORY_TARGET_MIB),
            ],
            [
                f"VmHWM (peak) after the queries ({parts})",
                f"{hwm:,.0f} MiB",
                f"<= {MEMORY_TARGET_MIB} MiB",
                verdict(hwm <= MEMORY_TARGET_MIB),
            ],
            [
                "  of which the collector process: VmRSS / VmHWM",
                f"{mib(memory, 'main.VmRSS')} / {mib(memory, 'main.VmHWM')}",
                "-",
                "-",
            ],
            [
                "  of which child processes: VmRSS / VmHWM",
                f"{mib(memory, 'children.VmRSS')} / {mib(memory, 'children.VmHWM')}",
                "-",
                "-",
            ],
            *(
                [
                    [
                        f"VmRSS / VmHWM after ingesting under load ({parts})",
                        f"{mib(memory_loaded, 'VmRSS')} / {mib(memory_loaded, 'VmHWM')}",
                        f"<= {MEMORY_TARGET_MIB} MiB",
                        verdict(memory_loaded.get("VmHWM", 0) / 1024 <= MEMORY_TARGET_MIB),
                    ]
                ]
                if ingest
                else []
            ),
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
