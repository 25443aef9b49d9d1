"""What ``telemetry-sdk collector ...`` runs (the argument parsing is in ``_collector_cli``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from types import FrameType

import orjson
from attrs import fields_dict

from ._http_server import HTTPLimits
from ._service import Collector, CollectorSettings, parse_address
from ._store import SQLiteStore

__all__ = ["delete_run", "print_leaderboard", "run_service"]

logger = logging.getLogger("telemetry_sdk.collector")

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _fail(message: str, code: int = 1) -> int:
    print(f"telemetry-sdk collector: {message}", file=sys.stderr)
    return code


def _read_token(path: str) -> str:
    token = Path(path).read_text(encoding="utf-8").strip()
    if len(token) < 16 or not token.isprintable() or " " in token:
        msg = f"the admin token in {path} must be at least 16 printable characters, no spaces"
        raise ValueError(msg)
    return token


def _write_ready_file(path: str, collector: Collector) -> None:
    data = {
        "udp": list(collector.udp_address),
        "http": list(collector.http_address) if collector.http_address else None,
        "pid": os.getpid(),
    }
    target = Path(path)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(json.dumps(data), encoding="utf-8")
    temporary.replace(target)


def settings_from_args(args: argparse.Namespace) -> CollectorSettings:
    """Build the settings from parsed ``collector`` arguments; raise ``ValueError``."""
    http = None if args.http.strip().lower() == "off" else parse_address(args.http)
    token = _read_token(args.admin_token_file) if args.admin_token_file else None
    limits = {
        name: getattr(args, f"http_{name}")
        for name in fields_dict(HTTPLimits)
        if getattr(args, f"http_{name}", None) is not None
    }
    return CollectorSettings(
        udp=parse_address(args.udp),
        http=http,
        http_limits=HTTPLimits(**limits),
        db=Path(args.db),
        admin_token=token,
        rate=args.rate,
        burst=args.burst,
    )


def run_service(args: argparse.Namespace) -> int:
    """Run the collector until SIGINT or SIGTERM, then drain, commit and exit 0."""
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = settings_from_args(args)
    except (ValueError, OSError) as exc:
        return _fail(str(exc), 2)
    stop = threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    collector = Collector(settings)
    try:
        try:
            collector.start()
        except sqlite3.Error as exc:
            return _fail(f"cannot open the database {args.db}: {exc}")
        except OSError as exc:
            return _fail(f"cannot listen: {exc}")
        if args.ready_file:
            _write_ready_file(args.ready_file, collector)
        while not stop.wait(0.5):
            pass
    finally:
        collector.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def _open_existing(path: str, *, readonly: bool) -> SQLiteStore | None:
    if not Path(path).is_file():
        _fail(f"no database at {path}")
        return None
    return SQLiteStore.open(path, readonly=readonly)


def print_leaderboard(args: argparse.Namespace) -> int:
    """Print the leaderboard of one product, or of every product, from the database."""
    store = _open_existing(args.db, readonly=True)
    if store is None:
        return 1
    try:
        products = [args.product] if args.product else [p["product"] for p in store.products()]
        boards = {p: store.leaderboard(p, args.limit) for p in products}
    finally:
        store.close()
    if args.json:
        print(orjson.dumps(boards, option=orjson.OPT_INDENT_2).decode())
        return 0
    if not products:
        print("no runs yet")
    for product in products:
        print(format_leaderboard(product, boards[product]))
    return 0


def format_leaderboard(product: str, rows: list[dict[str, object]]) -> str:
    """A plain-text leaderboard table."""
    lines = [f"Leaderboard for {product}"]
    if not rows:
        lines.append("  (no named projects yet)")
        return "\n".join(lines)
    width = max(7, *(len(str(r["project"])) for r in rows))
    lines.append(f"  {'rank':>4}  {'project':<{width}}  {'points':>6}  {'runs':>6}")
    for row in rows:
        lines.append(
            f"  {row['rank']:>4}  {row['project']!s:<{width}}  {row['points']:>6}  {row['runs']:>6}"
        )
    return "\n".join(lines)


def delete_run(args: argparse.Namespace) -> int:
    """Delete everything held about one run, from every view."""
    correlator = args.correlator.strip().lower()
    if _UUID.fullmatch(correlator) is None:
        return _fail(f"a correlator is a UUID, got {args.correlator!r}", 2)
    store = _open_existing(args.db, readonly=False)
    if store is None:
        return 1
    try:
        deleted = store.delete_run(correlator)
    finally:
        store.close()
    if deleted:
        print(f"deleted run {correlator} ({deleted} record{'s' if deleted > 1 else ''})")
    else:
        print(f"nothing held about run {correlator}; it will be dropped if it arrives")
    return 0
