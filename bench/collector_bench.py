"""Collector ingest: the highest offered rate it stores without losing a datagram.

    python bench/collector_bench.py                          # rates 20k .. 100k/s, 10 s each
    python bench/collector_bench.py --rates 50000 --trials 5 # repeat one rate
    python bench/collector_bench.py --quick                  # 2,000/s for 1 s, to check it runs
    python bench/collector_bench.py --burst 200000 --rcvbuf 67108864 --trials 3
                                                             # unpaced bursts, kernel drops

For each trial: a fresh database, ``python -m telemetry_sdk collector`` in its own process
on free loopback ports, and ``loadgen.py`` in another process offering the rate for
``--duration`` seconds (valid, distinct, pre-encoded datagrams, paced in small bursts). After
the load, the script waits until the collector has drained its queue, then compares what was
sent with ``accepted_total`` and ``written_total`` from ``/metrics`` and with the rows in the
database (runs, and runs with a close). A trial is lossless when all of them match. Rates go
up until a rate loses datagrams in any trial (``--keep-going`` tries every rate).

With ``--burst N`` it sends N datagrams unpaced instead (as fast as one sender can), to a
collector started with ``--rcvbuf BYTES``, and reports the achieved rate and the kernel's
drops at the socket (``/proc/net/udp`` and the collector's ``kernel_dropped_total``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _collector_proc import CollectorProcess, db_counts
from _common import BENCH, clean_env, machine_line, print_table, verdict

TARGET = 70_000


def trial(
    rate: float, duration: float, processes: int, workdir: Path, *extra: str
) -> dict[str, object]:
    db = workdir / f"ingest-{int(rate)}-{time.monotonic_ns()}.db"
    with CollectorProcess(db, workdir, *extra) as collector:
        cmd = [
            sys.executable,
            str(BENCH / "loadgen.py"),
            "--target",
            f"127.0.0.1:{collector.udp_port}",
            "--rate",
            str(rate),
            "--duration",
            str(duration),
            "--processes",
            str(processes),
        ]
        out = subprocess.run(
            cmd, env=clean_env(), capture_output=True, text=True, check=True
        ).stdout
        load = json.loads(out.strip().splitlines()[-1])
        began = time.monotonic()
        metrics = collector.drain()
        drain = time.monotonic() - began
        memory = collector.memory_kib()
        drops = collector.udp_drops()
    counts = db_counts(db)
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    sent = int(load["sent"])
    ok = (
        load["errors"] == 0
        and metrics.get("received_total") == sent
        and metrics.get("accepted_total") == sent
        and metrics.get("written_total") == sent
        and counts["runs"] == load["runs"]
        and counts["closed"] == load["closes"]
    )
    return {
        "rate": rate,
        "load": load,
        "metrics": metrics,
        "counts": counts,
        "drain": drain,
        "memory": memory,
        "drops": drops,
        "ok": ok,
    }


def dropped_inside(metrics: dict[str, float]) -> float:
    """Datagrams the collector received and then dropped on purpose (limits, full queues)."""
    return sum(
        metrics.get(name, 0.0)
        for name in ("rate_limited_total", "queue_dropped_total", "backlog_dropped_total")
    )


def burst_trials(count: int, rcvbuf: int, trials: int) -> int:
    """Unpaced bursts of ``count`` datagrams into a collector with ``--rcvbuf``."""
    rows = []
    clean = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(trials):
            print(f"  burst of {count:,}, trial {i + 1}/{trials} ...", file=sys.stderr, flush=True)
            # An offered rate no sender reaches, for just long enough: the burst is unpaced.
            rate = 1e9
            r = trial(rate, count / rate, 1, Path(tmp), "--rcvbuf", str(rcvbuf))
            load, m = r["load"], r["metrics"]
            drops = r["drops"]
            clean += bool(r["ok"]) and drops == 0
            rows.append(
                [
                    f"{load['sent']:,}",
                    f"{load['achieved_rate']:,.0f}",
                    f"{m.get('received_total', 0):,.0f}",
                    f"{m.get('written_total', 0):,.0f}",
                    "?" if drops is None else f"{drops:,}",
                    f"{m.get('kernel_dropped_total', 0):,.0f}",
                    f"{m.get('receive_buffer_bytes', 0) / 1048576:,.0f} MiB",
                    f"{r['drain']:.1f} s",
                    "yes" if r["ok"] else "NO",
                ]
            )
    print_table(
        f"Unpaced bursts, one sender, collector --rcvbuf {rcvbuf:,} (one row per trial)",
        [
            "sent",
            "achieved/s",
            "received",
            "written",
            "kernel drops (/proc/net/udp)",
            "kernel_dropped_total",
            "receive buffer granted",
            "drain after load",
            "lossless",
        ],
        rows,
    )
    print_table(
        "Target",
        ["figure", "measured", "target", "result"],
        [
            [
                "trials with zero kernel drops and zero loss",
                f"{clean}/{trials}",
                "all",
                verdict(clean == trials),
            ]
        ],
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rates",
        default="20000,30000,40000,50000,60000,70000,80000,100000",
        help="comma-separated offered rates, datagrams/s, tried in order",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per trial")
    parser.add_argument("--trials", type=int, default=2, help="trials per rate")
    parser.add_argument("--processes", type=int, default=1, help="sender processes")
    parser.add_argument(
        "--keep-going", action="store_true", help="try every rate, even after a loss"
    )
    parser.add_argument("--quick", action="store_true", help="2,000/s for 1 s, one trial")
    parser.add_argument(
        "--burst", type=int, default=0, help="send this many datagrams unpaced instead"
    )
    parser.add_argument(
        "--rcvbuf", type=int, default=64 << 20, help="the collector's --rcvbuf with --burst"
    )
    args = parser.parse_args(argv)
    if args.burst:
        print(machine_line())
        return burst_trials(args.burst, args.rcvbuf, args.trials)
    if args.quick:
        args.rates, args.duration, args.trials = "2000", 1.0, 1
    rates = [float(r) for r in args.rates.split(",")]

    print(machine_line())
    rows = []
    best = 0.0
    failed = False
    summary: list[tuple[float, list[dict[str, Any]]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for rate in rates:
            results = []
            for i in range(args.trials):
                print(
                    f"  {rate:,.0f}/s, trial {i + 1}/{args.trials} ...", file=sys.stderr, flush=True
                )
                results.append(trial(rate, args.duration, args.processes, Path(tmp)))
            for r in results:
                load, m, c = r["load"], r["metrics"], r["counts"]
                rows.append(
                    [
                        f"{rate:,.0f}",
                        f"{load['achieved_rate']:,.0f}",
                        f"{load['sent']:,}",
                        f"{m.get('received_total', 0):,.0f}",
                        f"{m.get('accepted_total', 0):,.0f}",
                        f"{m.get('written_total', 0):,.0f}",
                        f"{c['runs']:,}/{load['runs']:,}",
                        f"{c['closed']:,}/{load['closes']:,}",
                        f"{load['sent'] - m.get('accepted_total', 0):,.0f}",
                        "?" if r["drops"] is None else f"{r['drops']:,}",
                        f"{dropped_inside(m):,.0f}",
                        f"{r['drain']:.1f} s",
                        f"{r['memory'].get('VmHWM', 0) / 1024:,.0f} MiB",
                        "yes" if r["ok"] else "NO",
                    ]
                )
            summary.append((rate, results))
            if all(r["ok"] for r in results):
                if not failed:
                    best = rate
            else:
                failed = True
                if not args.keep_going:
                    break
    print_table(
        f"Ingest, {args.duration:g} s of load per trial, SQLite (one row per trial)",
        [
            "offered/s",
            "achieved/s",
            "sent",
            "received",
            "accepted",
            "written",
            "runs stored",
            "closes stored",
            "lost",
            "kernel drops",
            "dropped by collector",
            "drain after load",
            "collector VmHWM (all processes)",
            "lossless",
        ],
        rows,
    )
    per_rate = []
    for rate, results in summary:
        losses = [int(r["load"]["sent"] - r["metrics"].get("written_total", 0)) for r in results]
        per_rate.append(
            [
                f"{rate:,.0f}",
                f"{sum(r['ok'] for r in results)}/{len(results)}",
                f"{max(losses):,}",
                f"{max(r['memory'].get('VmHWM', 0) for r in results) / 1024:,.0f} MiB",
            ]
        )
    print_table(
        "Per offered rate",
        ["offered/s", "lossless trials", "worst loss (datagrams)", "highest collector VmHWM"],
        per_rate,
    )
    print_table(
        "Target",
        ["figure", "measured", "target", "result"],
        [
            [
                "highest offered rate with zero loss (every trial at it and at every lower rate)",
                f"{best:,.0f}/s",
                f">= {TARGET:,}/s",
                verdict(best >= TARGET) if not args.quick else "- (quick)",
            ]
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
