"""The worker's cost of one logged message, against a baseline tree, measured in one run.

    python bench/log_bench.py                          # this tree against /work/main
    python bench/log_bench.py --baseline PATH --rounds 8 --messages 2000
    python bench/log_bench.py --quick                  # tiny sizes, to check that it runs

Each round starts one fresh process per tree (interleaved, so both see the same machine).
The process makes level-3 start messages for one run and hands each to the worker's own
per-message function (``_transport._process``) on its thread, against a loopback UDP socket
and a real log file in a temporary folder: build, encode, log the payload line, send, log the
outcome line. It reports

- **worker**: the median time of that call per message (what a message costs the worker);
- **process CPU**: the process's CPU time per message, measured after the log is flushed
  (in a tree with a log-writer thread this includes that thread's file work).

The target: this tree's worker cost at most 10 % above the baseline's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT, UdpCounter, clean_env, fmt_us, machine_line, median, print_table, verdict

CHILD = r"""
import functools, json, os, sys, time
from pathlib import Path
import attrs
from telemetry_sdk import Config, Level, Product, _transport
from telemetry_sdk._collect import build_start
from telemetry_sdk._config import parse_endpoint

endpoint, log, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
product = Product(name="minflow", version="1.4.0", endpoint=endpoint)
config = Config(usage_tracking=3, project_name="bench", log_path=log)
fields = {f.name for f in attrs.fields(_transport.Route)}
extra = {}
if "log_limits" in fields:
    from telemetry_sdk._logsettings import LogLimits
    extra["log_limits"] = LogLimits()
route = _transport.Route(product="minflow", env_var="MINFLOW_USAGE_TRACKING",
    correlator="7c886a00-1111-4222-8333-444455556666", level=3,
    endpoint=parse_endpoint(endpoint), log_path=log, preview=False, **extra)
state = _transport._state
if "facts" in {f.name for f in attrs.fields(_transport.Job)}:  # the worker builds from facts
    from telemetry_sdk._facts import StartFacts
    facts = StartFacts(product, config, route.correlator, Level(3), time.time())
    def job():
        return _transport.Job(route, facts)
else:  # older trees: a builder callable
    build = functools.partial(build_start, product, config, Level(3), route.correlator, time.time())
    def job():
        return _transport.Job(route, "start", build)
for _ in range(200):  # warm-up: imports, socket, file
    _transport._process(state, job(), resolve=True)
flush = getattr(state.log, "flush", None)
if flush is not None:
    flush(5.0)
times = []
cpu0 = time.process_time()
for _ in range(count):
    item = job()
    began = time.perf_counter()
    _transport._process(state, item, resolve=True)
    times.append(time.perf_counter() - began)
if flush is not None:
    flush(30.0)
cpu = (time.process_time() - cpu0) / count
lines = sum(1 for _ in open(log, "rb"))
print(json.dumps({"worker": sorted(times)[len(times) // 2], "cpu": cpu, "lines": lines}))
"""


def measure(tree: Path, endpoint: str, folder: Path, count: int) -> dict[str, float]:
    log = folder / f"{tree.name}-{len(list(folder.iterdir()))}.jsonl"
    env = clean_env()
    env["PYTHONPATH"] = str(tree)
    env["XDG_STATE_HOME"] = str(folder / "state")
    env["XDG_CONFIG_HOME"] = str(folder / "config")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, endpoint, str(log), str(count)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout)
    if result["lines"] != 2 * (count + 200):
        msg = f"{tree}: {result['lines']} log lines, expected {2 * (count + 200)}"
        raise SystemExit(msg)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, default=Path("/work/main"))
    parser.add_argument("--rounds", type=int, default=8, help="fresh processes per tree")
    parser.add_argument("--messages", type=int, default=2000, help="timed messages per process")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check that it runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.messages = 1, 100
    trees = {"this tree": ROOT, "baseline": args.baseline.resolve()}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp, UdpCounter() as counter:
        endpoint = f"udp://127.0.0.1:{counter.port}"
        for _ in range(args.rounds):
            for name, tree in trees.items():
                results[name].append(measure(tree, endpoint, Path(tmp), args.messages))
                counter.drain(quiet=0.0)
    worker = {name: median([r["worker"] for r in rows]) for name, rows in results.items()}
    cpu = {name: median([r["cpu"] for r in rows]) for name, rows in results.items()}
    ratio = worker["this tree"] / worker["baseline"]
    rows = [
        [
            name,
            f"{args.rounds} x {args.messages}",
            fmt_us(worker[name]),
            fmt_us(cpu[name]),
            str(trees[name]),
        ]
        for name in trees
    ]
    print_table(
        "Worker cost of one logged message (level-3 start, medians of per-process medians)",
        ["tree", "messages", "worker", "process CPU", "path"],
        rows,
    )
    ok = ratio <= 1.10
    print(f"\nworker cost, this tree / baseline: {ratio:.2f} (target <= 1.10) {verdict(ok)}")
    print(f"process CPU, this tree / baseline: {cpu['this tree'] / cpu['baseline']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
