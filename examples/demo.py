"""The whole loop on one machine: a workflow reports its usage to a collector you can see.

    pip install -e '.[server]'
    python examples/demo.py            # keeps the dashboard up until Ctrl-C
    python examples/demo.py --no-wait  # prints everything, then exits

It starts a collector on free loopback ports with a temporary SQLite database, fills it
with about 120 days of made-up history (demo data: releases and their uptake, a release
that fails more, projects named ``demo-...`` that come and go; see ``demo_history.py``),
sent as real datagrams through the collector's normal ingest path, then runs the example
minflow workflow at levels 1, 2 and 3 under a few project names, and prints what was sent
(from the SDK's local log), how fast users upgraded, the leaderboard, and the dashboard's
URL. Nothing leaves this machine, and the demo's state (database, local log) is removed
when it exits.
"""

from __future__ import annotations

import argparse
import datetime
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

try:
    from telemetry_sdk.collector import Collector, CollectorSettings, open_store
except ImportError as exc:  # the server extra is missing
    sys.exit(f"demo: {exc}")

import demo_history

from telemetry_sdk._locallog import read_log
from telemetry_sdk.collector._period import Period
from telemetry_sdk.collector._period_views import releases

#: (tracking level, project name) of each run of the example workflow.
RUNS = [
    (1, "ocean-model"),
    (2, "ocean-model"),
    (3, "ocean-model"),
    (3, "genome-pipeline"),
    (3, "genome-pipeline"),
    (2, "student-lab"),
    (1, None),  # no project name: counted in the stats, not on the leaderboard
]


def square(x: int) -> int:
    return x * x


def flaky(x: int) -> int:
    if x % 3 == 0:
        msg = f"app failed on {x}"
        raise ValueError(msg)
    return x


def run_workflow(minflow: Any, level: int, project: str | None, endpoint: str) -> str:
    """One run of the example workflow (what a minflow user writes); returns its correlator."""
    config = minflow.Config(
        executors=[minflow.ThreadPoolExecutor(max_workers=2), minflow.HighThroughputExecutor()],
        usage_tracking=level,
        project_name=project,
        usage_endpoint=endpoint,
    )
    with minflow.DataFlowKernel(config) as dfk:
        futures = [dfk.submit(square, i) for i in range(4)] + [dfk.submit(flaky, 3)]
        for future in futures:
            future.exception()
    return str(dfk.tracker.correlator)


def wait_for_messages(collector: Collector, expected: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metrics = collector.metrics
        if metrics.accepted >= expected and metrics.written >= metrics.accepted:
            return
        time.sleep(0.05)


def print_sent(log_path: Path) -> None:
    print(f"\nWhat was sent (from the local log, {log_path.name}):")
    outcomes = {
        (r["correlator"], r["kind"]): r["outcome"]
        for r in read_log(log_path)
        if r.get("event") == "outcome"
    }
    for record in read_log(log_path):
        if record.get("event") != "payload":
            continue
        outcome = outcomes.get((record["correlator"], record["kind"]), "?")
        print(
            f"  level {record['level']} {record['kind']:<5} -> {record['destination']} [{outcome}]"
        )
        print(f"      {record['payload']}")


def send_history(collector: Collector) -> int:
    """Send the made-up history to the collector in paced bursts; how many datagrams."""
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for data in demo_history.datagrams(datetime.datetime.now(datetime.UTC).date()):
            sock.sendto(data, collector.udp_address)
            sent += 1
            if sent % 256 == 0:  # let the writer keep up: nothing is dropped
                wait_for_messages(collector, sent)
    wait_for_messages(collector, sent, timeout=30)
    return sent


def print_upgrades(db: str) -> None:
    store = open_store(db, readonly=True)
    try:
        today = datetime.datetime.now(datetime.UTC).date()
        period = Period(today - datetime.timedelta(days=365), today)
        print("\nHow fast do users upgrade? (days from a release's first run to half of the runs)")
        for release in store.view(releases, "minflow", period):
            days = "not yet" if release.days is None else f"{release.days} days"
            print(f"  {release.version:<8} first run {release.first_day}: {days}")
    finally:
        store.close()


def print_leaderboard(db: str) -> None:
    store = open_store(db, readonly=True)
    try:
        with_ci = {p.product: p.runs for p in store.products(include_ci=True)}
        for product in store.products():
            name = product.product
            from_ci = with_ci.get(name, 0) - product.runs
            print(f"\nLeaderboard for {name} ({product.runs} runs, {product.points} points):")
            print(f"  {'rank':>4}  {'project':<24} {'points':>6} {'runs':>5}")
            for row in store.leaderboard(name):
                print(f"  {row.rank:>4}  {row.project:<24} {row.points:>6} {row.runs:>5}")
            stats = store.stats(name)
            apps = stats.apps
            print(
                f"  apps run: {apps.apps}, failed: {apps.failures} "
                f"({apps.failure_rate:.0%}); levels: {stats.levels}"
            )
            if from_ci:
                print(
                    f"  {from_ci} runs came from CI (the Environment component saw a CI "
                    "service here) and are left out, as on the dashboard; ?ci=include adds them"
                )
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-wait", action="store_true", help="exit instead of serving")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="telemetry-demo-") as temp:
        workdir = Path(temp)
        # Keep the demo's local log and settings out of your real ones.
        os.environ["XDG_STATE_HOME"] = str(workdir / "state")
        os.environ["XDG_CONFIG_HOME"] = str(workdir / "config")
        import minflow

        # One source sends all of the history at once: no per-source or global rate limit.
        settings = CollectorSettings(
            udp=("127.0.0.1", 0),
            http=("127.0.0.1", 0),
            db=str(workdir / "demo.db"),
            rate=0,
            global_rate=0,
        )
        collector = Collector(settings).start()
        try:
            host, port = collector.udp_address
            endpoint = f"udp://{host}:{port}"
            print(f"Collector listening on {endpoint}, database {settings.db}")
            print(f"Sending {demo_history.DAYS} days of made-up history (DEMO DATA) ...")
            expected = send_history(collector)
            written = collector.metrics.written
            print(
                f"  sent {expected} datagrams, {written} written; demo projects are named demo-..."
            )
            for level, project in RUNS:
                correlator = run_workflow(minflow, level, project, endpoint)
                expected += 2 if level == 3 else 1
                print(
                    f"  ran the workflow at level {level} as {project or '(no name)'}: {correlator}"
                )
            if os.environ.get("DO_NOT_TRACK", "").strip() not in ("", "0"):
                print("DO_NOT_TRACK is set in your environment, so nothing was sent.")
            wait_for_messages(collector, expected)
            print_sent(workdir / "state" / "minflow" / "usage.jsonl")
            print_upgrades(settings.db)
            print_leaderboard(settings.db)
            print(f"\nDashboard: {collector.http_url}")
            if not args.no_wait:
                print("Serving until Ctrl-C ...")
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    print()
        finally:
            collector.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
