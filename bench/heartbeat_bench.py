"""What heartbeats cost the SDK's worker thread: the timer, one heartbeat, idle runs.

    python bench/heartbeat_bench.py            # everything (about 30 s)
    python bench/heartbeat_bench.py --quick    # tiny sizes, to check that it runs

Sections (all in this process, against a loopback UDP socket and a real log file):

- **timer**: what the worker loop adds per wake-up, ``Timer.wait()`` then ``Timer.due()``
  with nothing due, and what a run's start and close add (``add`` then ``cancel``, and the
  removal of the empty entry a cancel leaves), with 0 to 10,000 open runs scheduled;
  medians of batches of 1,000 calls.
- **one heartbeat**: ``HeartbeatRun.beat()`` then the worker's per-message function
  (``_transport._process``: build, encode, log both lines, send) for a progress message,
  against the same for the run's start message, interleaved.
- **idle**: the process's CPU time while 1,000 level-3 runs with the default interval (one
  hour) are open and nothing is sent: the worker sleeps until the next heartbeat is due.
- **many runs**: ``--runs`` runs open at once with ``heartbeat_interval=1.0`` for ``--seconds``;
  heartbeats that reached the listener, and process CPU time per heartbeat.

Target: the timer adds at most 1 us per worker wake-up with 10,000 open runs, and an idle
process with 1,000 open runs uses no measurable CPU (< 5 ms over the idle period).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import UdpCounter, fmt_us, machine_line, median, print_table, verdict

Row = list[object]


def bench_timer(sizes: list[int], batches: int) -> list[Row]:
    from telemetry_sdk._timer import Timer

    rows: list[Row] = []
    clock = time.perf_counter
    for size in sizes:
        timer: Timer[object] = Timer()
        now = time.monotonic()
        items = [object() for _ in range(size)]
        for i, item in enumerate(items):
            timer.add(item, now + 3600.0 + i * 1e-3, 3600.0)
        wakes: list[float] = []
        pairs: list[float] = []
        extra = object()
        for _ in range(batches):
            t0 = clock()
            for _ in range(1000):
                timer.wait(now)
                timer.due(now)
            wakes.append((clock() - t0) / 1000)
        for _ in range(batches):
            # A cancelled run leaves an empty heap entry; the wait() after the batch drops
            # those at the top, so the pair pays for its own clean-up.
            t0 = clock()
            for _ in range(1000):
                timer.add(extra, now + 1800.0, 3600.0)
                timer.cancel(extra)
            timer.wait(now)
            pairs.append((clock() - t0) / 1000)
        rows.append(
            [
                f"{size:,} open runs",
                batches,
                fmt_us(median(wakes)),
                fmt_us(median(pairs)),
                verdict(median(wakes) <= 1e-6) if size == max(sizes) else "-",
            ]
        )
    return rows


def _product(port: int):  # type: ignore[no-untyped-def]
    from telemetry_sdk import Product

    return Product(name="benchflow", version="1.0.0", endpoint=f"udp://127.0.0.1:{port}")


def bench_one_heartbeat(folder: Path, count: int) -> list[Row]:
    from telemetry_sdk import Config, UsageTracker, _transport

    state = _transport._state
    rows: list[Row] = []
    with UdpCounter() as counter:
        config = Config(
            usage_tracking=3, project_name="bench", log_path=folder / "one.jsonl",
            heartbeat_interval=3600.0,
        )  # fmt: skip
        tracker = UsageTracker(config, _product(counter.port))
        tracker.start()
        _transport.flush(2.0)
        run = tracker._run
        assert run is not None
        beats: list[float] = []
        starts: list[float] = []
        clock = time.perf_counter
        for i in range(count + 100):
            t0 = clock()
            job = run.beat()  # type: ignore[attr-defined]
            _transport._process(state, job, resolve=True)
            t1 = clock()
            start_job = run._start_job(time.time())
            t2 = clock()
            _transport._process(state, start_job, resolve=True)
            t3 = clock()
            if i >= 100:
                beats.append(t1 - t0)
                starts.append(t3 - t2)
            if i % 200 == 0:
                counter.drain(0.0)
        state.log.flush(30.0)
        tracker.close()
        counter.drain(0.2)
    rows.append(["one heartbeat: beat() + build, encode, log, send", count, fmt_us(median(beats))])
    rows.append(
        ["a start message: build, encode, log, send (same run)", count, fmt_us(median(starts))]
    )
    rows.append(
        ["heartbeat / start, ratio of the medians", count, f"{median(beats) / median(starts):.2f}"]
    )
    return rows


def bench_idle(folder: Path, runs: int, seconds: float) -> list[Row]:
    from telemetry_sdk import Config, UsageTracker, _transport

    with UdpCounter() as counter:
        config = Config(usage_tracking=3, log_path=folder / "idle.jsonl")  # the default: 1 h
        trackers = [UsageTracker(config, _product(counter.port)) for _ in range(runs)]
        for tracker in trackers:
            tracker.start()
        _transport.flush(10.0)
        _transport._state.log.flush(30.0)
        counter.drain(0.2)
        scheduled = len(_transport._state.timer)
        cpu0 = time.process_time()
        time.sleep(seconds)
        cpu = time.process_time() - cpu0
        for tracker in trackers:
            tracker.close(timeout=0)
        _transport.flush(10.0)
        counter.drain(0.2)
    return [
        [
            f"{scheduled:,} open runs scheduled, worker idle for {seconds:g} s",
            f"{cpu * 1e3:.1f} ms",
            "< 5 ms",
            verdict(cpu < 5e-3),
        ]
    ]


def bench_many(folder: Path, runs: int, seconds: float) -> list[Row]:
    from telemetry_sdk import Config, UsageTracker, _transport
    from telemetry_sdk._wire import ProgressMessage, decode

    with UdpCounter() as counter:
        config = Config(usage_tracking=3, log_path=folder / "many.jsonl", heartbeat_interval=1.0)
        trackers = [UsageTracker(config, _product(counter.port)) for _ in range(runs)]
        for tracker in trackers:
            tracker.start()
        _transport.flush(10.0)
        got = counter.drain(0.0)
        cpu0 = time.process_time()
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            got.extend(counter.drain(0.05))
        cpu = time.process_time() - cpu0
        for tracker in trackers:
            tracker.close(timeout=0)
        _transport.flush(10.0)
        got.extend(counter.drain(0.3))
    beats = sum(1 for d in got if isinstance(decode(d), ProgressMessage))
    expected = runs * int(seconds)
    return [
        [
            f"{runs:,} runs, 1 s interval, {seconds:g} s",
            f"{beats:,} (at least {expected:,} due)",
            fmt_us(cpu / max(beats, 1)),
            verdict(beats >= expected),
        ]
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=50, help="timer batches of 1,000 calls")
    parser.add_argument("--count", type=int, default=2000, help="heartbeats timed one by one")
    parser.add_argument("--runs", type=int, default=1000, help="open runs for idle and many")
    parser.add_argument("--seconds", type=float, default=3.0, help="idle and many duration")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check that it runs")
    args = parser.parse_args(argv)
    sizes = [0, 1, 1000, 10000]
    if args.quick:
        args.batches, args.count, args.runs, args.seconds = 3, 50, 20, 1.0
        sizes = [0, 1, 100]

    tmp = tempfile.TemporaryDirectory()
    for name in list(os.environ):
        if name.startswith("DO_NOT_TRACK") or "_USAGE_TRACKING" in name:
            del os.environ[name]
    os.environ["XDG_STATE_HOME"] = f"{tmp.name}/state"
    os.environ["XDG_CONFIG_HOME"] = f"{tmp.name}/config"
    folder = Path(tmp.name)

    print(machine_line())
    timer_rows = bench_timer(sizes, args.batches)
    print_table(
        "The worker's timer (medians of batches of 1,000 calls)",
        ["scheduled", "batches", "per wake-up: wait() + due()", "per run: add() + cancel()",
         "<= 1 us per wake-up"],
        timer_rows,
    )  # fmt: skip
    print_table(
        "One heartbeat on the worker (medians, interleaved with start messages)",
        ["figure", "n", "median"],
        bench_one_heartbeat(folder, args.count),
    )
    idle_rows = bench_idle(folder, args.runs, args.seconds)
    print_table("Idle open runs", ["case", "process CPU", "target", "result"], idle_rows)
    many_rows = bench_many(folder, args.runs, args.seconds)
    print_table(
        "Many open runs beating at once",
        ["case", "heartbeats received", "process CPU per heartbeat", "result"],
        many_rows,
    )
    failures = sum(r[-1] == "FAIL" for r in [*timer_rows, *idle_rows, *many_rows])
    print(json.dumps({"failures": failures}))
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
