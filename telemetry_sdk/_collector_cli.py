"""The ``telemetry-sdk collector`` and ``telemetry-sdk demo`` subcommands.

Pure argparse: nothing heavy is imported here, so ``telemetry-sdk --help`` stays fast and
works without the ``server`` extra. The collector itself is imported when a command runs;
without ``orjson`` that prints a one-line hint and exits 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_collector_parsers", "main"]

_EXTRA_HINT = "the collector needs the server extra: pip install 'telemetry-sdk[server]'"

#: Where the collector listens and keeps its data unless told otherwise.
DEFAULT_UDP = "127.0.0.1:50077"
DEFAULT_HTTP = "127.0.0.1:8000"
DEFAULT_DB = "telemetry-collector.db"
#: Per-source token bucket: sustained datagrams per second and burst size (0 disables). A run
#: sends one or two datagrams, so this leaves room for a busy site behind one address while a
#: single flooding source cannot fill the store or the leaderboard.
DEFAULT_RATE = 20.0
DEFAULT_BURST = 200
#: UDP receive buffer asked for (bytes), and how long a Parsl close waits for its start (s).
DEFAULT_RCVBUF = 8 * 1024 * 1024
DEFAULT_HELD_CLOSE_TTL = 7 * 86400.0
DEFAULT_MAX_QUEUED = 500_000


def _server_available() -> bool:
    try:
        import orjson  # noqa: F401
    except ImportError:
        print(f"telemetry-sdk: {_EXTRA_HINT}", file=sys.stderr)
        return False
    return True


def _run_collector(args: argparse.Namespace) -> int:
    if not _server_available():
        return 1
    from .collector._commands import run_service

    return run_service(args)


def _run_leaderboard(args: argparse.Namespace) -> int:
    if not _server_available():
        return 1
    from .collector._commands import print_leaderboard

    return print_leaderboard(args)


def _run_delete(args: argparse.Namespace) -> int:
    if not _server_available():
        return 1
    from .collector._commands import delete_run

    return delete_run(args)


def _find_demo() -> str | None:
    """``examples/demo.py`` of a source checkout: here, or next to this package."""
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    for base in (os.getcwd(), os.path.dirname(here)):
        path = os.path.join(base, "examples", "demo.py")
        if os.path.isfile(path):
            return path
    return None


def _run_demo(args: argparse.Namespace) -> int:
    if not _server_available():
        return 1
    path = _find_demo()
    if path is None:
        print(
            "telemetry-sdk: the demo ships with the source (examples/demo.py); "
            "run it from a checkout of telemetry-sdk",
            file=sys.stderr,
        )
        return 1
    import subprocess

    command = [sys.executable, path] + (["--no-wait"] if args.no_wait else [])
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 130


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0.0 or value == float("inf"):
        msg = f"must be a number >= 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        msg = f"must be a whole number >= 1, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return int(text)


def add_collector_parsers(subparsers: Any) -> None:
    """Add the ``collector`` (with ``leaderboard`` and ``delete``) and ``demo`` subcommands."""
    collector = subparsers.add_parser(
        "collector",
        help="run the collector that receives, stores and shows usage (needs the server extra)",
        description=(
            "Receive usage datagrams over UDP, keep them in SQLite and serve the leaderboard, "
            "stats, dashboard and metrics over HTTP. Listens on loopback unless told otherwise."
        ),
    )
    collector.add_argument(
        "--udp",
        default=DEFAULT_UDP,
        metavar="HOST:PORT",
        help=f"where to receive datagrams (default {DEFAULT_UDP}; port 0 picks a free one)",
    )
    collector.add_argument(
        "--http",
        default=DEFAULT_HTTP,
        metavar="HOST:PORT",
        help=f"where to serve the API and dashboard (default {DEFAULT_HTTP}; 'off' disables)",
    )
    collector.add_argument(
        "--db", default=DEFAULT_DB, metavar="PATH", help=f"SQLite database (default {DEFAULT_DB})"
    )
    collector.add_argument(
        "--admin-token-file",
        metavar="FILE",
        help="file holding the bearer token that allows DELETE over HTTP (refused without one)",
    )
    collector.add_argument(
        "--rate",
        type=_positive_float,
        default=DEFAULT_RATE,
        help="datagrams per second allowed from one source address, sustained "
        f"(default {DEFAULT_RATE:g}); 0 disables the limit",
    )
    collector.add_argument(
        "--burst",
        type=_positive_int,
        default=DEFAULT_BURST,
        help=f"datagrams a source may send at once before --rate applies (default {DEFAULT_BURST})",
    )
    collector.add_argument(
        "--rcvbuf",
        type=_positive_int,
        default=DEFAULT_RCVBUF,
        metavar="BYTES",
        help="UDP receive buffer to ask the kernel for (default "
        f"{DEFAULT_RCVBUF}); the size granted is logged, capped by net.core.rmem_max",
    )
    collector.add_argument(
        "--max-queued",
        type=_positive_int,
        default=DEFAULT_MAX_QUEUED,
        metavar="N",
        help="datagrams waiting to be written, at most; beyond it new ones are dropped and "
        f"counted (default {DEFAULT_MAX_QUEUED}, about 300 bytes each)",
    )
    collector.add_argument(
        "--held-close-ttl",
        type=_positive_float,
        default=DEFAULT_HELD_CLOSE_TTL,
        metavar="SECONDS",
        help="how long a Parsl close is held waiting for its start before it is dropped "
        f"(default {DEFAULT_HELD_CLOSE_TTL:g}, 7 days)",
    )
    collector.add_argument(
        "--ready-file",
        metavar="FILE",
        help="write the bound UDP and HTTP addresses as JSON to FILE once listening",
    )
    collector.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default INFO)",
    )
    collector.set_defaults(func=_run_collector)

    actions = collector.add_subparsers(title="operator commands", metavar="COMMAND")
    leaderboard = actions.add_parser(
        "leaderboard", help="print the leaderboard from a database, without HTTP"
    )
    leaderboard.add_argument("--db", required=True, metavar="PATH", help="SQLite database")
    leaderboard.add_argument("--product", help="one product (default: every product)")
    leaderboard.add_argument("--limit", type=_positive_int, default=50, help="rows per product")
    leaderboard.add_argument("--json", action="store_true", help="print JSON instead of a table")
    leaderboard.set_defaults(func=_run_leaderboard)

    delete = actions.add_parser(
        "delete", help="delete everything held about one run (honour a deletion request)"
    )
    delete.add_argument("--db", required=True, metavar="PATH", help="SQLite database")
    delete.add_argument("correlator", help="the run's correlator (a UUID)")
    delete.set_defaults(func=_run_delete)

    demo = subparsers.add_parser(
        "demo",
        help="run the example workflow against an embedded collector (needs the server extra)",
        description=(
            "Start a collector on free loopback ports with a temporary database, run the example "
            "workflow at levels 1-3, print what was sent, the leaderboard and the dashboard URL."
        ),
    )
    demo.add_argument(
        "--no-wait", action="store_true", help="exit when done instead of serving until Ctrl-C"
    )
    demo.set_defaults(func=_run_demo)


def main(argv: list[str] | None = None) -> int:
    """Run the collector commands on their own (``python -m telemetry_sdk._collector_cli``)."""
    parser = argparse.ArgumentParser(prog="telemetry-sdk")
    add_collector_parsers(parser.add_subparsers(required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
