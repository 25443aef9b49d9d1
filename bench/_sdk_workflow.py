"""The three-app workflow on minflow (``examples/minflow``), tracked by telemetry-sdk.

Usage: python _sdk_workflow.py LEVEL PORT [--no-close [--drop]]

minflow embeds telemetry-sdk the way Parsl embeds its tracker: the kernel starts the tracker,
apps are counted, ``cleanup()`` closes it. The endpoint is a tracking name that the benchmark
resolver in ``_resolver/sitecustomize.py`` answers (put that folder on PYTHONPATH).
``--no-close`` stops the executors but never closes the tracker: the exit hook must. The
kernel stays referenced from a module global until exit (as in a typical script), unless
``--drop`` is given too, which lets it be garbage-collected when ``main()`` returns.
Prints one JSON line with timings (seconds, from time.time()).
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

T_START = time.time()

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import minflow  # noqa: E402

TRACKING_NAME = "tracking.bench.invalid"
KEPT: list[object] = []


def square(x: int) -> int:
    return x * x


def add(x: int, y: int) -> int:
    return x + y


def main() -> None:
    level, port = int(sys.argv[1]), int(sys.argv[2])
    if getattr(socket, "bench_resolver", None) is None:
        sys.exit("the benchmark resolver is not active; refusing to run (PYTHONPATH?)")
    t_imported = time.time()
    config = minflow.Config(
        executors=[minflow.ThreadPoolExecutor(max_workers=2)],
        usage_tracking=level,
        project_name="bench" if level else None,
        usage_endpoint=f"udp://{TRACKING_NAME}:{port}",
    )
    dfk = minflow.DataFlowKernel(config)
    t_loaded = time.time()
    a, b = dfk.submit(square, 3), dfk.submit(square, 4)
    total = dfk.submit(add, a.result(), b.result()).result()
    assert total == 25
    t_done = time.time()
    if "--no-close" in sys.argv:
        for executor in config.executors:
            executor.shutdown()
        if "--drop" not in sys.argv:
            KEPT.append(dfk)
    else:
        dfk.cleanup()
    t_cleaned = time.time()
    print(
        json.dumps(
            {
                "start": T_START,
                "imported": t_imported,
                "loaded": t_loaded,
                "apps_done": t_done,
                "cleanup": t_cleaned - t_done,
                "end": time.time(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
