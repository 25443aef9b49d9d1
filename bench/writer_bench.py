"""The store's write path, this tree against another: records written per second.

    python bench/writer_bench.py --tree /work/main            # this tree vs that one
    python bench/writer_bench.py --tree /work/main --quick    # 10,000 records, 1 round

The same ``loadgen.py`` datagrams (a live-like mix: receipt now, many products, versions,
projects and component sets) are parsed by each tree's ingest and written by each tree's
SQLite store in batches of 5,000 records, in fresh databases, in a fresh process per tree
and round, the trees alternating. Reported: records/s per round, medians, and the ratio of
this tree's median to the other's (the writer's cost of what this tree adds per record).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from _common import BENCH, ROOT, clean_env, machine_line, median, print_table

# Run in a child: import the asked-for tree's telemetry_sdk before anything else.
_CHILD = """
import json, os, sys, tempfile, time
sys.path.insert(0, sys.argv[1])
from telemetry_sdk.collector._ingest import parse
import telemetry_sdk.collector as collector
sys.path.insert(1, sys.argv[2])
import loadgen
opener = getattr(collector, "open_store", None) or collector.SQLiteStore.open
data, _, _ = loadgen.datagrams(int(sys.argv[3]), 7, 0)
now = int(time.time())
records = [parse(d, now) for d in data]
with tempfile.TemporaryDirectory() as directory:
    store = opener(os.path.join(directory, "w.db"))
    began = time.perf_counter()
    for i in range(0, len(records), 5000):
        store.write_batch(records[i : i + 5000])
    elapsed = time.perf_counter() - began
    store.close()
print(json.dumps({"records_per_s": len(records) / elapsed, "from": collector.__file__}))
"""


def one(tree: Path, records: int) -> dict[str, float | str]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tree), str(BENCH), str(records)],
        capture_output=True,
        text=True,
        check=True,
        env=clean_env(),
        cwd=tree,
    )
    result: dict[str, float | str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, required=True, help="the other source tree")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="10,000 records, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.rounds = 10_000, 1
    print(machine_line())
    trees = {"this tree": ROOT, "other tree": args.tree.resolve()}
    rates: dict[str, list[float]] = {name: [] for name in trees}
    origin: dict[str, str] = {}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            result = one(tree, args.records)
            rates[name].append(float(result["records_per_s"]))
            origin[name] = str(result["from"])
    rows = [
        [
            name,
            origin[name],
            ", ".join(f"{r:,.0f}" for r in rates[name]),
            f"{median(rates[name]):,.0f}",
        ]
        for name in trees
    ]
    print_table(
        f"SQLite write path, {args.records:,} loadgen records in batches of 5,000 (records/s)",
        ["tree", "imported from", "each round", "median"],
        rows,
    )
    ratio = median(rates["this tree"]) / median(rates["other tree"])
    print(f"\nthis tree / other tree: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
