"""Load generator for the collector: sends valid, distinct datagrams at a paced rate.

    python bench/loadgen.py --target 127.0.0.1:50077 --rate 50000 --duration 10
    python bench/loadgen.py --target 127.0.0.1:50077 --rate 80000 --processes 2

Every datagram is encoded before sending starts (from a few hundred templates made with
``telemetry_sdk._wire.encode``: many products, versions, projects, levels; each run gets its
own correlator), then sent in small bursts on a fixed schedule, so the offered rate is what
was asked for, not what the machine happens to manage. A third of the runs are at level 3,
and half of those also send a close message, about a thousand datagrams after their start.

Prints one JSON line: what was sent, how many runs and closes that makes, and the achieved
rate. With ``--processes N`` it runs N copies of itself, each sending 1/N of the rate.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PLACEHOLDER = "00000000-0000-4000-8000-000000000000"
PRODUCTS = ("minflow", "parsl", "hpcflow", "gridrunner", "dataplane", "simkit", "labqueue")
VERSIONS = ("1.0.0", "1.1.0", "1.2.3", "2.0.0rc1", "2026.10.26", "0.9.1")
PYTHONS = ("3.10.14", "3.11.7", "3.12.4", "3.13.0")
PLATFORMS = ("Linux", "Darwin", "Windows")
COMPONENTS = (
    "minflow.executors.ThreadPoolExecutor",
    "minflow.executors.HighThroughputExecutor",
    "minflow.providers.SlurmProvider",
    "minflow.providers.LocalProvider",
)
CLOSE_LAG = 1000


def templates() -> tuple[list[bytes], list[bytes]]:
    """Start templates (one per product/version/... mix) and close templates (level 3 only)."""
    from telemetry_sdk._wire import CloseMessage, Component, StartMessage, encode

    now = int(time.time())
    starts: list[bytes] = []
    closes: list[bytes] = []
    for i in range(420):
        product = PRODUCTS[i % len(PRODUCTS)]
        level = 1 + i % 3
        project = None if i % 4 == 0 else f"project-{i % 97:02d}"
        components = None
        if level >= 2:
            components = (
                Component(f"{product}.config.Config", {"executors_len": 1 + i % 3}),
                Component(COMPONENTS[i % len(COMPONENTS)]),
            )
        start = StartMessage(
            correlator=PLACEHOLDER,
            product=product,
            version=VERSIONS[i % len(VERSIONS)],
            python_v=PYTHONS[i % len(PYTHONS)],
            platform_system=PLATFORMS[i % len(PLATFORMS)],
            tracking_level=level,
            project_name=project,
            components=components,
            start=now if level == 3 else None,
        )
        starts.append(encode(start)[0])
        if level == 3:
            close = CloseMessage(
                correlator=PLACEHOLDER,
                product=product,
                version=VERSIONS[i % len(VERSIONS)],
                tracking_level=3,
                project_name=project,
                end=now + i,
                execution_time=float(i % 5000) / 7,
                components=(
                    Component(product, {"app_count": i % 50, "app_fails": min(i % 3, i % 50)}),
                ),
            )
            closes.append(encode(close)[0])
    return starts, closes


def datagrams(count: int, seed: int, part: int) -> tuple[list[bytes], int, int]:
    """``count`` distinct datagrams; returns them with the number of runs and of closes."""
    starts, closes = templates()
    placeholder = PLACEHOLDER.encode()
    prefix = f"{seed & 0xFFFFFFFF:08x}-{part & 0xFFFF:04x}-4000-8000-"
    out: list[bytes] = []
    runs = n_closes = 0
    waiting: list[tuple[int, bytes]] = []  # (emit after this many starts, close datagram)
    while len(out) < count:
        i = runs
        correlator = (prefix + f"{i:012x}").encode()
        template = starts[i % len(starts)]
        out.append(template.replace(placeholder, correlator))
        runs += 1
        # level 3 templates are every third; half of those runs close
        if i % 3 == 2 and (i // 3) % 2 == 0:
            close = closes[(i // 3) % len(closes)].replace(placeholder, correlator)
            waiting.append((runs + CLOSE_LAG, close))
        while waiting and waiting[0][0] <= runs and len(out) < count:
            out.append(waiting.pop(0)[1])
            n_closes += 1
    return out, runs, n_closes


def send(
    target: tuple[str, int], data: list[bytes], rate: float, burst: int, start_at: float
) -> dict[str, float]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sock.connect(target)
    send_one = sock.send
    interval = burst / rate
    sent = errors = 0
    late = 0.0
    # Align the schedule of every process on the same wall-clock instant.
    time.sleep(max(0.0, start_at - time.time()))
    began = time.perf_counter()
    clock = time.perf_counter
    for k, first in enumerate(range(0, len(data), burst)):
        due = began + k * interval
        delay = due - clock()
        if delay > 0:
            time.sleep(delay)
        else:
            late = max(late, -delay)
        for datagram in data[first : first + burst]:
            try:
                send_one(datagram)
                sent += 1
            except OSError:
                errors += 1
    elapsed = clock() - began
    sock.close()
    return {"sent": sent, "errors": errors, "elapsed": elapsed, "max_late": late}


def parse_target(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if host not in ("127.0.0.1", "localhost"):
        sys.exit("loadgen only sends to 127.0.0.1")
    return "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="127.0.0.1:PORT of the collector")
    parser.add_argument("--rate", type=float, required=True, help="datagrams per second, in all")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--burst", type=int, default=50, help="datagrams per scheduled burst")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--part", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    target = parse_target(args.target)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    total = int(args.rate * args.duration)

    if args.processes > 1:
        start_at = time.time() + 1.0 + 0.000004 * total  # time to pre-encode
        cmds = [
            [
                sys.executable,
                __file__,
                "--target",
                args.target,
                "--rate",
                str(args.rate / args.processes),
                "--duration",
                str(args.duration),
                "--burst",
                str(args.burst),
                "--seed",
                str(seed),
                "--part",
                str(part),
                "--start-at",
                str(start_at),
            ]
            for part in range(args.processes)
        ]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for cmd in cmds]
        results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        summary = {
            "sent": sum(r["sent"] for r in results),
            "errors": sum(r["errors"] for r in results),
            "runs": sum(r["runs"] for r in results),
            "closes": sum(r["closes"] for r in results),
            "elapsed": max(r["elapsed"] for r in results),
            "max_late": max(r["max_late"] for r in results),
            "processes": args.processes,
        }
    else:
        data, runs, closes = datagrams(total, seed, args.part)
        start_at = args.start_at or time.time()
        result = send(target, data, args.rate, args.burst, start_at)
        summary = {**result, "runs": runs, "closes": closes, "processes": 1}
    summary["offered_rate"] = args.rate
    summary["achieved_rate"] = summary["sent"] / summary["elapsed"] if summary["elapsed"] else 0.0
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
