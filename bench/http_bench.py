"""HTTP latency under 200 concurrent clients: the collector from two source trees, back to back.

Each tree's collector runs as its own process (``PYTHONPATH=<tree> python -m telemetry_sdk
collector``) on free loopback ports with its own database, seeded with the same runs. The load
comes from this process: ``--clients`` asyncio clients, each sending ``--requests`` GETs one
after another, a new connection per request (``Connection: close``), so bursts of connects
are part of what is measured. A request's latency runs from connect to the last byte; one that
fails or takes longer than ``--timeout`` counts as an error. Phases are interleaved (tree A
stats, tree B stats, tree A healthz, ...) and repeated ``--rounds`` times; the table shows the
median over rounds of each phase's p50, p95 and max.

    python bench/http_bench.py --tree /work/main          # before (that tree) and after (this one)
    python bench/http_bench.py --tree /work/main --quick  # 20 clients x 2 requests, one round
    python bench/http_bench.py --servers                  # the same app on uvicorn, hypercorn, granian

``--servers`` serves this tree's ASGI app (``_http_asgi.py``) from uvicorn (h11), hypercorn and
granian, each from its command line, under the same load: the measurement behind the choice of
server (BENCHMARKS.md, "HTTP server").
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

from _common import ROOT, clean_env, fmt_ms, machine_line, median, percentile, print_table

sys.path.insert(0, str(ROOT))

from telemetry_sdk._wire import CloseMessage, Component, StartMessage, encode

SEED_RUNS = 3000


def seed_datagrams(count: int) -> list[bytes]:
    """Start and close datagrams of ``count`` runs over a few projects and versions."""
    out = []
    now = int(time.time())
    for i in range(count):
        corr = str(uuid.uuid4())
        start = StartMessage(
            correlator=corr,
            product="benchflow",
            version=f"1.{i % 7}.0",
            python_v=f"3.{11 + i % 3}.1",
            platform_system=("Linux", "Darwin", "Windows")[i % 3],
            tracking_level=3,
            project_name=f"project-{i % 40}",
            start=now - 60,
        )
        close = CloseMessage(
            correlator=corr,
            product="benchflow",
            version=start.version,
            tracking_level=3,
            end=now,
            execution_time=float(i % 500),
            components=(Component("benchflow", {"app_count": i % 9 + 1, "app_fails": i % 2}),),
        )
        out += [encode(start)[0], encode(close)[0]]
    return out


def free_port() -> int:
    """A port the kernel just picked for us (for servers that cannot report theirs)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                msg = f"server did not start:\n{log.read_text()[-2000:]}"
                raise RuntimeError(msg) from None
            time.sleep(0.1)


@contextmanager
def collector(tree: Path, workdir: Path, seed: list[bytes]) -> Iterator[tuple[int, int]]:
    """The collector of ``tree`` on free ports, seeded; yields its HTTP port and its pid."""
    workdir.mkdir(parents=True, exist_ok=True)
    ready = workdir / "ready.json"
    log = workdir / "collector.log"
    env = clean_env(PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
    command = [
        sys.executable, "-m", "telemetry_sdk", "collector", "--udp", "127.0.0.1:0",
        "--http", "127.0.0.1:0", "--db", str(workdir / "collector.db"),
        "--ready-file", str(ready), "--rate", "0", "--log-level", "WARNING",
    ]  # fmt: skip
    with log.open("wb") as out:
        # cwd matters: ``python -m`` puts it first on sys.path, before PYTHONPATH.
        proc = subprocess.Popen(command, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                msg = f"collector of {tree} did not start:\n{log.read_text()[-2000:]}"
                raise RuntimeError(msg)
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        port = int(info["http"][1])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for i, data in enumerate(seed):
                udp.sendto(data, ("127.0.0.1", info["udp"][1]))
                if i % 200 == 0:
                    time.sleep(0.005)
        wait_seeded(port, len(seed) // 2)
        yield port, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_seeded(port: int, runs: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/stats?product=benchflow", timeout=30
        ) as reply:
            if json.loads(reply.read())["runs"] >= runs:
                return
        time.sleep(0.2)
    print(f"warning: fewer than {runs} runs stored after 60 s", file=sys.stderr)


async def _one(port: int, request: bytes, timeout: float) -> float | None:
    started = time.perf_counter()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            data = await reader.read()
        if not data.startswith((b"HTTP/1.1 200 ", b"HTTP/1.0 200 ")):
            return None
        return time.perf_counter() - started
    except (OSError, TimeoutError):
        return None
    finally:
        if writer is not None:
            writer.close()


async def _load(port: int, path: str, clients: int, requests: int, timeout: float) -> list:
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode()
    results: list[float | None] = []

    async def client() -> None:
        for _ in range(requests):
            results.append(await _one(port, request, timeout))

    await asyncio.gather(*(client() for _ in range(clients)))
    return results


def phase(port: int, path: str, args: argparse.Namespace) -> dict[str, float]:
    started = time.perf_counter()
    results = asyncio.run(_load(port, path, args.clients, args.requests, args.timeout))
    wall = time.perf_counter() - started
    ok = [r for r in results if r is not None]
    return {
        "p50": percentile(ok, 50),
        "p95": percentile(ok, 95),
        "max": max(ok) if ok else float("nan"),
        "errors": len(results) - len(ok),
        "rate": len(ok) / wall,
    }


PATHS = {"/api/stats": "/api/stats?product=benchflow", "/healthz": "/healthz"}


def burst(port: int, connections: int) -> float:
    """Seconds until all of ``connections`` opened at once have their /healthz answered."""
    started = time.perf_counter()
    socks = []
    for _ in range(connections):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        socks.append(sock)
    answered = 0
    for sock in socks:
        sock.setblocking(True)
        sock.settimeout(30)
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            answered += data.startswith(b"HTTP/1.1 200 ")
        except OSError:
            pass
        finally:
            sock.close()
    elapsed = time.perf_counter() - started
    return elapsed if answered == connections else float("nan")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def header_bombs(port: int, pid: int, requests: int = 20) -> tuple[float, float]:
    """RSS (MiB) before and after ``requests`` concurrent requests of 96 x 65 KB headers."""
    before = rss_mib(pid)
    header = b"X-Bomb: " + b"b" * 65_000 + b"\r\n"
    request = b"GET /healthz HTTP/1.1\r\nHost: bench\r\n" + header * 96 + b"\r\n"

    def bomb() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock, suppress(OSError):
            sock.sendall(request)
            while sock.recv(65536):
                pass

    threads = [threading.Thread(target=bomb) for _ in range(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    time.sleep(1)
    return before, rss_mib(pid)


def held_open(port: int, connections: int, seconds: float) -> str:
    """Trickle one header byte a second on each of ``connections`` for ``seconds``; then how
    many are still open, answered (e.g. a 408) or closed/reset by the server."""
    socks = []
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n")
        socks.append(sock)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for sock in socks:
            with suppress(OSError):
                sock.send(b"X")
        time.sleep(1)
    counts = {"open": 0, "answered": 0, "closed": 0}
    for sock in socks:
        try:
            sock.settimeout(0.05)
            counts["answered" if sock.recv(65536) else "closed"] += 1
        except TimeoutError:
            counts["open"] += 1
        except OSError:
            counts["closed"] += 1
        finally:
            sock.close()
    return f"{counts['open']} open, {counts['answered']} answered, {counts['closed']} closed"


def report(title: str, names: list[str], figures: dict[tuple[str, str], list[dict]]) -> None:
    rows = []
    for path in PATHS:
        for name in names:
            runs = figures[(name, path)]
            rows.append(
                [
                    path,
                    name,
                    fmt_ms(median([r["p50"] for r in runs])),
                    fmt_ms(median([r["p95"] for r in runs])),
                    fmt_ms(median([r["max"] for r in runs])),
                    f"{median([r['rate'] for r in runs]):,.0f}",
                    str(sum(int(r["errors"]) for r in runs)),
                ]
            )
    print_table(
        title,
        ["endpoint", "server", "p50", "p95", "max", "requests/s", "errors (all rounds)"],
        rows,
    )


def imported_from(tree: Path) -> str:
    """Where the collector started for ``tree`` imports telemetry_sdk from (a sanity check)."""
    with tempfile.TemporaryDirectory() as tmp:
        return subprocess.run(
            [sys.executable, "-c", "import telemetry_sdk; print(telemetry_sdk.__file__)"],
            env=clean_env(PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1"),
            cwd=tmp,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()


def run_trees(args: argparse.Namespace) -> None:
    trees = {"before": Path(args.tree).resolve(), "after": ROOT}
    for name, tree in trees.items():
        print(f"# {name}: telemetry_sdk from {imported_from(tree)}")
    seed = seed_datagrams(args.seed)
    figures: dict[tuple[str, str], list[dict]] = {(n, p): [] for n in trees for p in PATHS}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        started = {
            name: stack.enter_context(collector(tree, Path(tmp) / name, seed))
            for name, tree in trees.items()
        }
        ports = {name: port for name, (port, _) in started.items()}
        bursts: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(args.rounds):
            for path, target in PATHS.items():
                for name in trees:
                    figures[(name, path)].append(phase(ports[name], target, args))
            for name in trees:
                bursts[name].append(burst(ports[name], args.burst))
        held = {name: held_open(ports[name], args.clients, args.hold) for name in trees}
        bombs = {name: header_bombs(*started[name]) for name in trees}
    names = [f"{n} ({trees[n]})" for n in trees]
    print_table(
        f"Bursts and slow clients: {args.burst} connections opened at once; "
        f"{args.clients} clients trickling a header byte a second for {args.hold:g} s",
        [
            "server",
            "burst: all answered after",
            "trickling connections after",
            "RSS before / after 20 x 96 x 65 KB headers",
        ],
        [
            [
                names[i],
                fmt_ms(median(bursts[name])),
                str(held[name]),
                f"{bombs[name][0]:.0f} / {bombs[name][1]:.0f} MiB",
            ]
            for i, name in enumerate(trees)
        ],
    )
    renamed = {(f"{n} ({trees[n]})", p): v for (n, p), v in figures.items()}
    report(
        f"{args.clients} concurrent clients x {args.requests} requests, new connection each, "
        f"{args.rounds} round(s), {args.seed} runs stored",
        names,
        renamed,
    )


def server_commands(port: int) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "uvicorn (h11)": [
            python, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--http", "h11",
            "--no-access-log", "--log-level", "warning", "--lifespan", "off",
            "--backlog", "4096", "_http_asgi:app",
        ],
        "hypercorn": [
            python, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", "--backlog", "4096",
            "--log-level", "warning", "_http_asgi:app",
        ],
        "granian": [
            python, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1", "--backlog", "4096", "--log-level", "warning",
            "--no-ws", "_http_asgi:app",
        ],
    }  # fmt: skip


def run_servers(args: argparse.Namespace) -> None:
    seed = seed_datagrams(args.seed)
    names = [n for n in server_commands(0) if importlib.util.find_spec(n.split()[0])]
    if len(names) < len(server_commands(0)):
        print("# some servers are not installed (pip install hypercorn granian to compare)")
    figures: dict[tuple[str, str], list[dict]] = {(n, p): [] for n in names for p in PATHS}
    with tempfile.TemporaryDirectory() as tmp:
        # One seeded database, made by this tree's collector, served read-only by every server.
        with collector(ROOT, Path(tmp) / "seed", seed):
            pass
        db = Path(tmp) / "seed" / "collector.db"
        for _ in range(args.rounds):
            for name in names:
                port = free_port()
                log = Path(tmp) / f"{name.split()[0]}.log"
                env = clean_env(
                    PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'bench'}",
                    PYTHONDONTWRITEBYTECODE="1",
                    HTTP_BENCH_DB=str(db),
                )
                with log.open("wb") as out:
                    proc = subprocess.Popen(
                        server_commands(port)[name],
                        env=env,
                        cwd=tmp,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                try:
                    wait_http(port, proc, log)
                    for path, target in PATHS.items():
                        figures[(name, path)].append(phase(port, target, args))
                finally:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
    report(
        f"The same ASGI app on three servers: {args.clients} concurrent clients x "
        f"{args.requests} requests, {args.rounds} round(s)",
        names,
        figures,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", help="source tree to compare with (the 'before')")
    parser.add_argument("--servers", action="store_true", help="compare servers instead")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=10, help="per client")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=SEED_RUNS, help="runs stored before")
    parser.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    parser.add_argument("--burst", type=int, default=500, help="connections opened at once")
    parser.add_argument(
        "--hold", type=float, default=15.0, help="seconds the trickling clients keep at it"
    )
    parser.add_argument("--quick", action="store_true", help="20 clients x 2 requests, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.requests, args.rounds, args.seed = 20, 2, 1, 50
        args.burst, args.hold = 20, 1.0
    print(machine_line())
    print(f"# python bench/http_bench.py {' '.join(sys.argv[1:])}")
    if args.servers:
        run_servers(args)
    elif args.tree:
        run_trees(args)
    else:
        parser.error("give --tree PATH (before/after) or --servers")


if __name__ == "__main__":
    main()
