"""The three-app workflow, with Parsl's own usage tracking (run inside the benchmark venv).

Usage: python _parsl_workflow.py LEVEL PORT [--fixed]

Parsl's tracker is pointed at the benchmark's loopback listener by changing the defaults of
``UsageTracker.__init__`` at run time (the port, and a tracking name that the benchmark
resolver in ``_resolver/sitecustomize.py`` answers). Parsl's files are not edited.
Prints one JSON line with timings (seconds, from time.time()).
"""

from __future__ import annotations

import json
import socket
import sys
import tempfile
import time

T_START = time.time()

import parsl  # noqa: E402
from parsl.config import Config  # noqa: E402
from parsl.executors.threads import ThreadPoolExecutor  # noqa: E402
from parsl.usage_tracking.usage import UsageTracker  # noqa: E402

TRACKING_NAME = "tracking.parsl-project.org"


@parsl.python_app
def square(x: int) -> int:
    return x * x


@parsl.python_app
def add(x: int, y: int) -> int:
    return x + y


def main() -> None:
    level, port = int(sys.argv[1]), int(sys.argv[2])
    if getattr(socket, "bench_resolver", None) is None:
        sys.exit("the benchmark resolver is not active; refusing to run (PYTHONPATH?)")
    UsageTracker.__init__.__defaults__ = (port, TRACKING_NAME)
    if "--fixed" in sys.argv:
        import bench_parsl_fix

        bench_parsl_fix.install()
    t_imported = time.time()
    with tempfile.TemporaryDirectory() as run_dir:
        config = Config(
            executors=[ThreadPoolExecutor(max_threads=2)],
            usage_tracking=level,
            project_name="bench" if level else None,
            run_dir=run_dir,
            initialize_logging=False,
        )
        dfk = parsl.load(config)
        t_loaded = time.time()
        a, b = square(3), square(4)
        total = add(a, b).result()
        assert total == 25
        t_done = time.time()
        dfk.cleanup()
        t_cleaned = time.time()
        parsl.clear()
    print(
        json.dumps(
            {
                "version": parsl.__version__,
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
