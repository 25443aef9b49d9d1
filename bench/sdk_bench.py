"""What telemetry-sdk costs its host: app-thread time, exit time, import time, delivery.

    python bench/sdk_bench.py                # everything (about a minute)
    python bench/sdk_bench.py --only calls   # start() / record_app() / close() on the app thread
    python bench/sdk_bench.py --only first   # close() of a fresh process's first short run
    python bench/sdk_bench.py --only environment   # the Environment component's look-up
    python bench/sdk_bench.py --only otel    # start() / close() with a span per run
    python bench/sdk_bench.py --only exit    # extra exit time when DNS never answers
    python bench/sdk_bench.py --only import  # import time in fresh processes
    python bench/sdk_bench.py --only delivery
    python bench/sdk_bench.py --quick        # tiny sizes, to check that it runs

Sections:

- calls: in this process, after a warm-up, ``--calls`` whole runs at level 3 against a loopback
  socket: the time of ``start()``, ``record_app()`` and ``close()`` on the calling thread.
- first: ``--first-runs`` fresh processes running the three-app minflow workflow at level 3
  (loopback resolver): ``close()`` of the process's first and only run.
- environment: ``Environment``'s look-up, uncached and cached.
- otel: ``start()`` and ``close()`` with a span per run (the ``file`` hook) and without,
  interleaved in one loop.
- exit: fresh processes running the three-app minflow workflow with a resolver that never
  answers (``_resolver/sitecustomize.py``), at level 0 and at level 3 with and without
  ``close()``, interleaved; the extra whole-process time of level 3 over level 0.
- import: fresh processes timing ``import attrs`` and ``import telemetry_sdk`` (which imports
  attrs), interleaved; the difference of the medians; and whether cattrs got imported.
- delivery: ``--delivery-runs`` runs in this process at each level 0-3 against a loopback
  socket, then ``--process-runs`` fresh processes at level 3 with and without ``close()``;
  every (run, message) pair that arrived and decoded is counted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from _common import (
    BENCH,
    RESOLVER_DIR,
    UdpCounter,
    clean_env,
    fmt_ms,
    fmt_us,
    machine_line,
    median,
    percentile,
    print_table,
    verdict,
)

Row = list[object]


# -- calls on the app thread --


def bench_calls(calls: int, warmup: int) -> list[Row]:
    import socket

    from telemetry_sdk import Config, Level, Product, UsageTracker
    from telemetry_sdk._collect import build_start
    from telemetry_sdk._transport import flush
    from telemetry_sdk._wire import encode

    rows: list[Row] = []
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setblocking(False)
    with UdpCounter() as counter, sender:
        address = ("127.0.0.1", counter.port)
        product = Product(
            name="benchflow", version="1.0.0", endpoint=f"udp://127.0.0.1:{counter.port}"
        )
        config = Config(usage_tracking=3, project_name="bench")
        starts: list[float] = []
        closes: list[float] = []
        inits: list[float] = []
        inline: list[float] = []
        clock = time.perf_counter
        for i in range(warmup + calls):
            t0 = clock()
            tracker = UsageTracker(config, product)
            t1 = clock()
            tracker.start()
            t2 = clock()
            for _ in range(3):
                tracker.record_app()
            flush(1.0)  # the start message is on its way: close() meets an idle worker
            # What start() saves the calling thread: the same start message, built, encoded
            # and sent inline (no log line, no look-up: less than the worker does).
            t5 = clock()
            payload, _ = encode(
                build_start(product, config, Level.EXECUTION, tracker.correlator, time.time())
            )
            sender.sendto(payload, address)
            t6 = clock()
            t3 = clock()
            tracker.close()
            t4 = clock()
            if i >= warmup:
                inits.append(t1 - t0)
                starts.append(t2 - t1)
                closes.append(t4 - t3)
                inline.append(t6 - t5)
            if i % 50 == 0:
                counter.drain(0.0)
        counter.drain(0.2)

        # record_app(): batches of 1,000 calls, per-call time of each batch.
        tracker = UsageTracker(config, product)
        tracker.start()
        record = tracker.record_app
        batches: list[float] = []
        for _ in range(max(20, calls // 10)):
            t0 = clock()
            for _ in range(1000):
                record()
            batches.append((clock() - t0) / 1000)
        fails: list[float] = []
        for _ in range(max(20, calls // 10)):
            t0 = clock()
            for _ in range(1000):
                record(failed=True)
            fails.append((clock() - t0) / 1000)
        tracker.close()
        counter.drain(0.2)

    n = len(starts)
    rows.append(
        [
            "UsageTracker(config, product), level 3, not the process's first",
            n,
            fmt_us(median(inits)),
            fmt_us(percentile(inits, 99)),
            "<= 50 us median",
            verdict(median(inits) <= 50e-6),
        ]
    )
    rows.append(
        [
            "the same start message built, encoded and sent inline (same run)",
            n,
            fmt_us(median(inline)),
            fmt_us(percentile(inline, 99)),
            "-",
            "-",
        ]
    )
    ratio = median(starts) / median(inline)
    rows.append(
        [
            "start() / inline, ratio of the medians",
            n,
            f"{ratio:.2f}",
            "-",
            "<= 0.6",
            verdict(ratio <= 0.6),
        ]
    )
    rows.append(
        [
            "start(), level 3, after warm-up",
            n,
            fmt_us(median(starts)),
            fmt_us(percentile(starts, 99)),
            "<= 20 us median, <= 60 us p99",
            verdict(median(starts) <= 20e-6 and percentile(starts, 99) <= 60e-6),
        ]
    )
    rows.append(
        [
            "record_app() (batches of 1,000)",
            len(batches),
            fmt_us(median(batches)),
            fmt_us(percentile(batches, 99)),
            "<= 2 us median",
            verdict(median(batches) <= 2e-6),
        ]
    )
    rows.append(
        [
            "record_app(failed=True) (batches of 1,000)",
            len(fails),
            fmt_us(median(fails)),
            fmt_us(percentile(fails, 99)),
            "-",
            "-",
        ]
    )
    rows.append(
        [
            "close(), level 3, live listener, start already sent",
            n,
            fmt_ms(median(closes)),
            fmt_ms(percentile(closes, 99)),
            "<= 5 ms",
            verdict(median(closes) <= 5e-3),
        ]
    )
    return rows


# -- fresh processes --


def run_workflow(
    level: int, port: int, resolver: str, state: str, *, close: bool, drop: bool = False
) -> tuple[float, float]:
    """Run ``_sdk_workflow.py`` once; return (whole-process seconds, close() seconds)."""
    cmd = [sys.executable, str(BENCH / "_sdk_workflow.py"), str(level), str(port)]
    if not close:
        cmd.append("--no-close")
    if drop:
        cmd.append("--drop")
    env = clean_env(
        PYTHONPATH=str(RESOLVER_DIR),
        BENCH_RESOLVER=resolver,
        BENCH_NAMES="tracking.bench.invalid",
        XDG_STATE_HOME=f"{state}/state",
        XDG_CONFIG_HOME=f"{state}/config",
    )
    began = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        msg = f"workflow failed ({proc.returncode}): {proc.stderr[-2000:]}"
        raise RuntimeError(msg)
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])["cleanup"]


def bench_exit(runs: int) -> list[Row]:
    cases: dict[str, tuple[int, bool, bool]] = {
        "level 0": (0, True, False),
        "level 3, close()": (3, True, False),
        "level 3, no close() (exit hook)": (3, False, False),
        "level 3, no close(), tracker dropped": (3, False, True),
    }
    walls: dict[str, list[float]] = {name: [] for name in cases}
    closes: dict[str, list[float]] = {name: [] for name in cases}
    with UdpCounter() as counter, tempfile.TemporaryDirectory() as state:
        for _ in range(runs):
            for name, (level, close, drop) in cases.items():
                wall, cleanup = run_workflow(
                    level, counter.port, "hang", state, close=close, drop=drop
                )
                walls[name].append(wall)
                closes[name].append(cleanup)
        arrived = len(counter.drain(0.2))
    base = median(walls["level 0"])
    rows: list[Row] = []
    for name in cases:
        extra = median(walls[name]) - base
        target = name != "level 0"
        rows.append(
            [
                f"DNS never answers, {name}",
                runs,
                f"{median(walls[name]) * 1e3:,.0f} ms",
                f"{extra * 1e3:+,.0f} ms" if target else "-",
                fmt_ms(median(closes[name])) if name.endswith("close()") else "-",
                "<= +250 ms" if target else "-",
                verdict(extra <= 0.25) if target else "-",
            ]
        )
    rows.append(
        [
            "  (datagrams that arrived: none can, the name never resolves)",
            "-",
            str(arrived),
            "-",
            "-",
            "-",
            "-",
        ]
    )
    return rows


IMPORT_PROBE = (
    "import sys, time\n"
    "t = time.perf_counter()\n"
    "import {module}\n"
    "d = time.perf_counter() - t\n"
    "print(d, int('cattrs' in sys.modules), int('telemetry_sdk.collector' in sys.modules))\n"
)


_IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)")


def import_breakdown(runs: int, top: int = 12) -> list[Row]:
    """Modules ``import telemetry_sdk`` loads beyond ``import attrs``, by median self time."""
    env = clean_env()

    def self_times(module: str) -> dict[str, float]:
        samples: dict[str, list[float]] = {}
        for _ in range(runs):
            err = subprocess.run(
                [sys.executable, "-X", "importtime", "-c", f"import {module}"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stderr
            for match in _IMPORTTIME.finditer(err):
                samples.setdefault(match.group(2), []).append(int(match.group(1)) / 1e6)
        return {name: median(values) for name, values in samples.items()}

    base = self_times("attrs")
    extra = {k: v for k, v in self_times("telemetry_sdk").items() if k not in base}
    own = sum(v for k, v in extra.items() if k.startswith("telemetry_sdk"))
    rows: list[Row] = [
        ["all modules beyond attrs", len(extra), fmt_ms(sum(extra.values()))],
        ["  of which telemetry_sdk's own", "-", fmt_ms(own)],
    ]
    for name, seconds in sorted(extra.items(), key=lambda kv: -kv[1])[:top]:
        rows.append([f"  {name}", "-", fmt_ms(seconds)])
    return rows


def bench_import(runs: int) -> list[Row]:
    modules = ["attrs", "telemetry_sdk"]
    inproc: dict[str, list[float]] = {m: [] for m in modules}
    whole: dict[str, list[float]] = {m: [] for m in modules}
    loaded: dict[str, set[tuple[int, int]]] = {m: set() for m in modules}
    env = clean_env()
    for _ in range(runs):
        for module in modules:
            began = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", IMPORT_PROBE.format(module=module)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            whole[module].append(time.perf_counter() - began)
            inproc[module].append(float(out[0]))
            loaded[module].add((int(out[1]), int(out[2])))
    extra_in = median(inproc["telemetry_sdk"]) - median(inproc["attrs"])
    extra_whole = median(whole["telemetry_sdk"]) - median(whole["attrs"])
    cattrs = any(c for c, _ in loaded["telemetry_sdk"])
    collector = any(c for _, c in loaded["telemetry_sdk"])
    return [
        [
            "import attrs (the import statement alone)",
            runs,
            fmt_ms(median(inproc["attrs"])),
            "-",
            "-",
            "-",
        ],
        [
            "import telemetry_sdk (the import statement alone)",
            runs,
            fmt_ms(median(inproc["telemetry_sdk"])),
            f"{extra_in * 1e3:+,.1f} ms",
            "<= +15 ms",
            verdict(extra_in <= 0.015),
        ],
        [
            "python -c 'import attrs', whole process",
            runs,
            fmt_ms(median(whole["attrs"])),
            "-",
            "-",
            "-",
        ],
        [
            "python -c 'import telemetry_sdk', whole process",
            runs,
            fmt_ms(median(whole["telemetry_sdk"])),
            f"{extra_whole * 1e3:+,.1f} ms",
            "<= +15 ms",
            verdict(extra_whole <= 0.015),
        ],
        [
            "import telemetry_sdk loads cattrs / the collector",
            runs,
            f"{'yes' if cattrs else 'no'} / {'yes' if collector else 'no'}",
            "-",
            "no / no",
            verdict(not cattrs and not collector),
        ],
    ]


# -- delivery --


def bench_delivery(runs: int, process_runs: int) -> list[Row]:
    from telemetry_sdk import Config, Product, UsageTracker

    rows: list[Row] = []
    with UdpCounter() as counter:
        product = Product(
            name="benchflow", version="1.0.0", endpoint=f"udp://127.0.0.1:{counter.port}"
        )
        for level in (0, 1, 2, 3):
            config = Config(usage_tracking=level, project_name="bench")
            wanted: set[tuple[str, str]] = set()
            got: set[tuple[str, str]] = set()
            for i in range(runs):
                with UsageTracker(config, product) as tracker:
                    tracker.record_app()
                if level:
                    wanted.add((tracker.correlator, "start"))
                if level == 3:
                    wanted.add((tracker.correlator, "close"))
                if i % 50 == 49:
                    got |= _keys(counter.drain(0.0))
            got |= _keys(counter.drain(0.3))
            rows.append(_delivery_row(f"in-process runs, level {level}", runs, wanted, got))

        with tempfile.TemporaryDirectory() as state:
            for name, close, drop in (
                ("close()", True, False),
                ("no close() (exit hook)", False, False),
                ("no close(), tracker dropped before exit", False, True),
            ):
                count = 0
                for _ in range(process_runs):
                    run_workflow(3, counter.port, "loopback", state, close=close, drop=drop)
                    count += len(_keys(counter.drain(0.05)))
                count += len(_keys(counter.drain(0.3)))
                rows.append(
                    _fraction_row(
                        f"fresh processes, level 3, {name}", process_runs, count, 2 * process_runs
                    )
                )
    return rows


def _keys(datagrams: list[bytes]) -> set[tuple[str, str]]:
    """(correlator, kind) of each datagram; raises if one does not decode."""
    from telemetry_sdk._wire import CloseMessage, decode

    keys = set()
    for datagram in datagrams:
        message = decode(datagram)
        keys.add((message.correlator, "close" if isinstance(message, CloseMessage) else "start"))
    return keys


def _delivery_row(
    name: str, runs: int, wanted: set[tuple[str, str]], got: set[tuple[str, str]]
) -> Row:
    arrived = len(wanted & got)
    stray = len(got - wanted)
    expected = len(wanted)
    pct = 100.0 * arrived / expected if expected else 100.0
    ok = arrived == expected and not stray
    return [
        name,
        runs,
        f"{arrived}/{expected} ({pct:.1f} %)" + (f", {stray} unexpected" if stray else ""),
        "100 %",
        verdict(ok),
    ]


def _fraction_row(name: str, runs: int, arrived: int, expected: int) -> Row:
    pct = 100.0 * arrived / expected if expected else 100.0
    return [
        name,
        runs,
        f"{arrived}/{expected} ({pct:.1f} %)",
        "100 %",
        verdict(arrived == expected),
    ]


# -- the first close() of a fresh process --


def bench_first(runs: int) -> list[Row]:
    """close() in fresh processes whose only run is the three-app workflow (loopback)."""
    closes: list[float] = []
    with UdpCounter() as counter, tempfile.TemporaryDirectory() as state:
        for _ in range(runs):
            _, cleanup = run_workflow(3, counter.port, "loopback", state, close=True)
            closes.append(cleanup)
            counter.drain(0.0)
    return [
        [
            "close() of a fresh process's first and only run (three apps, level 3)",
            runs,
            fmt_ms(median(closes)),
            f"{fmt_ms(min(closes))} / {fmt_ms(max(closes))}",
            "<= 5 ms median",
            verdict(median(closes) <= 5e-3),
        ]
    ]


# -- the Environment component --


def bench_environment(runs: int) -> list[Row]:
    from telemetry_sdk import Environment
    from telemetry_sdk._environment import detect

    clock = time.perf_counter
    fresh: list[float] = []
    cached: list[float] = []
    Environment().usage_information()
    for _ in range(runs):
        t0 = clock()
        detect()
        t1 = clock()
        Environment().usage_information()
        t2 = clock()
        fresh.append(t1 - t0)
        cached.append(t2 - t1)
    return [
        [
            "detect(): look at variables, /dev, /proc, /sys (once per process)",
            runs,
            fmt_us(median(fresh)),
            fmt_us(percentile(fresh, 99)),
            "< 1 ms",
            verdict(median(fresh) < 1e-3),
        ],
        [
            "Environment().usage_information(), cached (every later run)",
            runs,
            fmt_us(median(cached)),
            fmt_us(percentile(cached, 99)),
            "-",
            "-",
        ],
    ]


# -- OpenTelemetry spans --


def bench_otel(calls: int, warmup: int) -> list[Row]:
    """start() and close() with and without a span (the file hook), interleaved."""
    from telemetry_sdk import Config, Product, UsageTracker
    from telemetry_sdk._transport import flush

    os.environ["BENCHOTEL_USAGE_TRACKING_OTEL"] = "file"
    clock = time.perf_counter
    times: dict[str, list[float]] = {k: [] for k in ("start", "close", "start+", "close+")}
    with UdpCounter() as counter:
        endpoint = f"udp://127.0.0.1:{counter.port}"
        plain = Product(name="benchflow", version="1.0.0", endpoint=endpoint)
        spanned = Product(name="benchotel", version="1.0.0", endpoint=endpoint)
        config = Config(usage_tracking=3, project_name="bench")
        for i in range(warmup + calls):
            for product, mark in ((plain, ""), (spanned, "+")):
                tracker = UsageTracker(config, product)
                t0 = clock()
                tracker.start()
                t1 = clock()
                flush(1.0)
                t2 = clock()
                tracker.close()
                t3 = clock()
                if i >= warmup:
                    times["start" + mark].append(t1 - t0)
                    times["close" + mark].append(t3 - t2)
            if i % 50 == 0:
                counter.drain(0.0)
        counter.drain(0.2)
    del os.environ["BENCHOTEL_USAGE_TRACKING_OTEL"]
    rows: list[Row] = []
    for call in ("start", "close"):
        base, spans = median(times[call]), median(times[call + "+"])
        rows.append([f"{call}(), no span", calls, fmt_us(base), "-"])
        rows.append(
            [
                f"{call}(), span on (file hook)",
                calls,
                fmt_us(spans),
                f"{(spans - base) * 1e6:+,.1f} us",
            ]
        )
    return rows


SECTIONS = ("calls", "first", "environment", "otel", "exit", "import", "delivery")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only these sections")
    parser.add_argument("--calls", type=int, default=2000, help="timed runs for the calls section")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--exit-runs", type=int, default=10, help="fresh processes per exit case")
    parser.add_argument(
        "--first-runs", type=int, default=20, help="fresh processes for the first close()"
    )
    parser.add_argument("--import-runs", type=int, default=40, help="fresh processes per import")
    parser.add_argument("--delivery-runs", type=int, default=1000, help="in-process runs per level")
    parser.add_argument(
        "--process-runs", type=int, default=20, help="fresh processes per delivery case"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check that it runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.calls, args.warmup, args.exit_runs, args.import_runs = 50, 10, 1, 3
        args.first_runs = 2
        args.delivery_runs, args.process_runs = 20, 1
    sections = args.only or list(SECTIONS)

    # Keep this process' own tracking state and log out of the user's folders.
    tmp = tempfile.TemporaryDirectory()
    for name in list(os.environ):
        if name.startswith("DO_NOT_TRACK") or "_USAGE_TRACKING" in name:
            del os.environ[name]
    os.environ["XDG_STATE_HOME"] = f"{tmp.name}/state"
    os.environ["XDG_CONFIG_HOME"] = f"{tmp.name}/config"

    print(machine_line())
    failures = 0
    if "calls" in sections:
        rows = bench_calls(args.calls, args.warmup)
        print_table(
            "App-thread cost (this process)",
            ["figure", "n", "median", "p99", "target", "result"],
            rows,
        )
        failures += sum(r[-1] == "FAIL" for r in rows)
    if "first" in sections:
        rows = bench_first(args.first_runs)
        print_table(
            "First close() of a fresh process (loopback, medians)",
            ["figure", "runs", "median", "min / max", "target", "result"],
            rows,
        )
        failures += sum(r[-1] == "FAIL" for r in rows)
    if "environment" in sections:
        rows = bench_environment(args.calls)
        print_table(
            "Environment component (this process)",
            ["figure", "n", "median", "p99", "target", "result"],
            rows,
        )
        failures += sum(r[-1] == "FAIL" for r in rows)
    if "otel" in sections:
        print_table(
            "OpenTelemetry span per run, on the calling thread (this process, medians)",
            ["figure", "n", "median", "span's cost"],
            bench_otel(max(50, args.calls // 4), args.warmup),
        )
    if "exit" in sections:
        rows = bench_exit(args.exit_runs)
        print_table(
            "Exit when DNS never answers (fresh processes, three-app minflow workflow, medians)",
            ["case", "runs", "whole process", "over level 0", "close()", "target", "result"],
            rows,
        )
        failures += sum(r[-1] == "FAIL" for r in rows)
    if "import" in sections:
        rows = bench_import(args.import_runs)
        print_table(
            "Import time (fresh processes, medians)",
            ["figure", "runs", "median", "over attrs", "target", "result"],
            rows,
        )
        failures += sum(r[-1] == "FAIL" for r in rows)
        print_table(
            f"What import telemetry_sdk adds over import attrs (python -X importtime, self time, "
            f"median of {min(args.import_runs, 15)} runs)",
            ["module", "modules", "self time"],
            import_breakdown(min(args.import_runs, 15)),
        )
    if "delivery" in sections:
        rows = bench_delivery(args.delivery_runs, args.process_runs)
        print_table(
            "Datagrams delivered to a loopback listener",
            ["case", "runs", "delivered", "target", "result"],
            rows,
        )
        failures += sum(r[-1] == "FAIL" for r in rows)
    tmp.cleanup()
    print(f"\n{failures} target(s) missed" if failures else "\nall targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
