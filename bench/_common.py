"""Helpers shared by the benchmark scripts: statistics, tables, machine facts, a UDP counter."""

from __future__ import annotations

import datetime
import math
import os
import platform
import select
import socket
import statistics
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESOLVER_DIR = BENCH / "_resolver"


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:,.2f} us" if seconds < 1e-4 else f"{seconds * 1e6:,.1f} us"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"


def fmt_s(seconds: float) -> str:
    return f"{seconds:,.2f} s"


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "FAIL")


def machine_line() -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"# {now}; nproc {os.cpu_count()}; Python {platform.python_version()} "
        f"({sys.implementation.name}); {platform.system()} {platform.machine()}"
    )


def print_table(title: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Print a Markdown table (so the output pastes into BENCHMARKS.md as is)."""
    body = [[str(cell) for cell in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)
    ]
    print(f"\n### {title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in body:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    sys.stdout.flush()


class UdpCounter:
    """A loopback UDP socket standing in for the tracking host; counts what arrives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]

    def drain(self, quiet: float = 0.2) -> list[bytes]:
        """Everything that arrives until nothing has arrived for ``quiet`` seconds."""
        got: list[bytes] = []
        while select.select([self.sock], [], [], quiet)[0]:
            got.append(self.sock.recv(65536))
        return got

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> UdpCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a child: no tracking settings inherited from the caller."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith(("DO_NOT_TRACK", "BENCH_", "PYTHON")) or "_USAGE_TRACKING" in k)
    }
    env.update(extra)
    return env
