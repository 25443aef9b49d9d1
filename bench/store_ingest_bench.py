"""Lossless ingest by store: SQLite, PostgreSQL with one collector, PostgreSQL with two.

    python bench/store_ingest_bench.py                       # 10k .. 60k/s, 10 s, 2 trials each
    python bench/store_ingest_bench.py --rates 20000 --trials 3
    python bench/store_ingest_bench.py --quick               # 2,000/s for 1 s, to check it runs

All three set-ups are measured in the same run, interleaved rate by rate, so they meet the
same machine. A trial starts fresh: a new SQLite file, or a new schema in the PostgreSQL
database ``--postgres`` (default: the test server on 127.0.0.1). ``loadgen.py`` offers the
rate for ``--duration`` seconds; with two collectors, two loadgen processes offer half each,
one to each collector, both writing the same database. After the load the script waits for
every collector to drain, then compares what was sent with ``accepted_total`` and
``written_total`` summed over the collectors and with the rows in the database. A trial is
lossless when all of them match. Reported: per set-up, the highest rate at which every
trial was lossless (rates are tried in order; a set-up stops at its first loss).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _collector_proc import (
    CollectorProcess,
    db_counts,
    drop_postgres_schema,
    postgres_schema,
)
from _common import BENCH, clean_env, machine_line, print_table

SETUPS = {"sqlite": 1, "postgres-1": 1, "postgres-2": 2}


def trial(setup: str, rate: float, duration: float, workdir: Path, base: str) -> dict[str, Any]:
    collectors = SETUPS[setup]
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    db: Path | str = (
        workdir / f"{schema}.db" if setup == "sqlite" else postgres_schema(base, schema)
    )
    procs: list[CollectorProcess] = []
    try:
        for index in range(collectors):
            procs.append(CollectorProcess(db, workdir, name=f"{schema}-{index}"))
        senders = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(BENCH / "loadgen.py"),
                    "--target",
                    f"127.0.0.1:{proc.udp_port}",
                    "--rate",
                    str(rate / collectors),
                    "--duration",
                    str(duration),
                    "--seed",
                    str(int(time.time()) * 10 + index),
                ],
                env=clean_env(),
                stdout=subprocess.PIPE,
                text=True,
            )
            for index, proc in enumerate(procs)
        ]
        loads = [json.loads(s.communicate()[0].strip().splitlines()[-1]) for s in senders]
        began = time.monotonic()
        metrics = [proc.drain() for proc in procs]
        drain = time.monotonic() - began
    finally:
        for proc in procs:
            proc.stop()
    counts = db_counts(db)
    if setup == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    else:
        drop_postgres_schema(base, schema)
    sent = sum(int(load["sent"]) for load in loads)
    accepted = sum(m.get("accepted_total", 0) for m in metrics)
    written = sum(m.get("written_total", 0) for m in metrics)
    ok = (
        all(load["errors"] == 0 for load in loads)
        and accepted == sent
        and written == sent
        and counts["runs"] == sum(load["runs"] for load in loads)
        and counts["closed"] == sum(load["closes"] for load in loads)
    )
    achieved = sum(load["achieved_rate"] for load in loads)
    return {
        "setup": setup, "rate": rate, "achieved": achieved, "sent": sent,
        "accepted": accepted, "written": written, "counts": counts,
        "runs": sum(load["runs"] for load in loads), "drain": drain, "ok": ok,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="10000,20000,30000,40000,50000,60000")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument(
        "--postgres", default="postgresql://postgres@127.0.0.1:5432/test", help="database URL"
    )
    parser.add_argument("--setups", default=",".join(SETUPS), help="comma-separated")
    parser.add_argument("--quick", action="store_true", help="2,000/s for 1 s, one trial")
    args = parser.parse_args(argv)
    if args.quick:
        args.rates, args.duration, args.trials = "2000", 1.0, 1
    rates = [float(r) for r in args.rates.split(",")]
    setups = args.setups.split(",")
    print(machine_line())
    rows = []
    best = dict.fromkeys(setups, 0.0)
    stopped: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        for rate in rates:
            for setup in setups:
                if setup in stopped:
                    continue
                results = []
                for number in range(args.trials):
                    print(f"  {setup} {rate:,.0f}/s trial {number + 1}", file=sys.stderr)
                    results.append(trial(setup, rate, args.duration, Path(tmp), args.postgres))
                for r in results:
                    rows.append([
                        setup, f"{rate:,.0f}", f"{r['achieved']:,.0f}", f"{r['sent']:,}",
                        f"{r['accepted']:,.0f}", f"{r['written']:,.0f}",
                        f"{r['counts']['runs']:,}/{r['runs']:,}", f"{r['drain']:.1f} s",
                        "yes" if r["ok"] else "NO",
                    ])  # fmt: skip
                if all(r["ok"] for r in results):
                    best[setup] = rate
                else:
                    stopped.add(setup)
    print_table(
        f"Ingest by store, {args.duration:g} s of load per trial (one row per trial)",
        ["set-up", "offered/s", "achieved/s", "sent", "accepted", "written", "runs stored",
         "drain", "lossless"],
        rows,
    )  # fmt: skip
    print_table(
        "Highest offered rate with every trial lossless",
        ["set-up", "rate/s"],
        [[s, f"{best[s]:,.0f}" if best[s] else "none"] for s in setups],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
