"""An end user's script: a three-app minflow workflow with usage tracking at level 3.

    python examples/run_workflow.py [udp://HOST:PORT]

The endpoint comes from the first argument; the SDK's ``MINFLOW_USAGE_TRACKING_ENDPOINT``
environment variable overrides it; without either, minflow's default is used. Point it at a
local listener to see exactly what is sent, e.g. ``udp://127.0.0.1:50077``; every message is
also in the local log that the INFO line names.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import minflow


def double(x: int) -> int:
    return 2 * x


def fail(x: int) -> int:
    msg = f"app failed on {x}"
    raise ValueError(msg)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    config = minflow.Config(
        executors=[minflow.ThreadPoolExecutor(max_workers=2), minflow.HighThroughputExecutor()],
        usage_tracking=3,
        project_name="minflow-demo",
        usage_endpoint=argv[1] if len(argv) > 1 else None,
    )
    with minflow.DataFlowKernel(config) as dfk:
        futures = [dfk.submit(double, 1), dfk.submit(double, 2), dfk.submit(fail, 3)]
        results = [f.result() if f.exception() is None else None for f in futures]
        print(f"run {dfk.tracker.correlator}: results {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
