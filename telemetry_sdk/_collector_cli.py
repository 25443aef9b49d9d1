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


#: Flags of ``HTTPLimits`` (``telemetry_sdk.collector._http_server``): flag, field, type, help.
#: Left unset they keep that class's defaults, which the help repeats (a test checks it).
HTTP_LIMIT_FLAGS = (
    ("--http-header-timeout", "header_timeout", "SECONDS", "to complete request headers, from "
     "connecting or from the previous response; then 408 and closed (default 10)"),
    ("--http-keepalive-timeout", "keepalive_timeout", "SECONDS",
     "an idle keep-alive connection stays open (default 5)"),
    ("--http-max-connections", "max_connections", "N",
     "open connections at most; beyond, new ones get a 503 (default 1000)"),
    ("--http-max-header-bytes", "max_header_bytes", "BYTES",
     "request line and headers at most; beyond, 431 (default 16384)"),
    ("--http-max-headers", "max_headers", "N",
     "header lines per request at most; beyond, 431 (default 100)"),
    ("--http-backlog", "backlog", "N",
     "connections the kernel queues before they are accepted (default 4096)"),
)  # fmt: skip


def _positive_number(text: str) -> float:
    value = _positive_float(text)
    if value <= 0:
        msg = f"must be a number > 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


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
    limits = collector.add_argument_group("HTTP limits")
    for flag, dest, metavar, text in HTTP_LIMIT_FLAGS:
        kind = _positive_number if metavar == "SECONDS" else _positive_int
        limits.add_argument(flag, dest=f"http_{dest}", type=kind, metavar=metavar, help=text)
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
