"""The collector's command line: ``telemetry-sdk collector`` (with its ``leaderboard`` and
``delete`` commands) and ``telemetry-sdk demo``.

The ``collector`` options are the ``CollectorSettings`` fields that carry an ``option``
(see ``_options``): name, default and checks all come from the field, so the command and
``CollectorSettings()`` cannot disagree. The core command (``telemetry_sdk.cli``) lists these
subcommands without importing this module, and hands their arguments here when one runs.
Exit status: 0 success, 1 an operational failure, 2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import datetime
import errno
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import attrs
import orjson

from .._errors import ConfigurationError
from .._wire_rules import is_stored_correlator
from ..cli import COLLECTOR_COMMANDS, PROG, Parser
from ._export import ExportError, export_runs
from ._options import OPTION, OPTION_GROUP, Option, parse_whole_number
from ._report_command import add_report_parser
from ._service import Collector, CollectorSettings, ListenError
from ._store import SCHEMA_VERSION, Store, StoreError, open_store, shown_url

__all__ = ["build_parser", "format_leaderboard", "main", "settings_from_args"]

logger = logging.getLogger("telemetry_sdk.collector")


def _fail(message: str, code: int = 1) -> int:
    print(f"{PROG} collector: {message}", file=sys.stderr)
    return code


# -- options made from CollectorSettings ------------------------------------------------------


@attrs.frozen
class _SettingOption:
    """One command-line option: the settings field it sets, and where that field lives."""

    #: ``None`` for a field of ``CollectorSettings``; else the ``CollectorSettings`` field
    #: holding the option group (``http_limits``) this field belongs to.
    group: str | None
    attribute: attrs.Attribute[Any]
    option: Option

    @property
    def dest(self) -> str:
        name = self.attribute.name
        return name if self.group is None else f"{self.group}.{name}"


def _options_of(cls: type, group: str | None) -> Iterator[_SettingOption]:
    for attribute in attrs.fields(cls):
        found = attribute.metadata.get(OPTION)
        if isinstance(found, Option):
            yield _SettingOption(group, attribute, found)
        elif attribute.metadata.get(OPTION_GROUP):
            inner = type(_default(attribute))
            yield from _options_of(inner, attribute.name)


def _setting_options() -> Iterator[_SettingOption]:
    yield from _options_of(CollectorSettings, None)


def _default(attribute: attrs.Attribute[Any]) -> Any:
    default = attribute.default
    factory: Callable[[], Any] | None = getattr(default, "factory", None)  # attrs.Factory
    return default if factory is None else factory()


def _converter(attribute: attrs.Attribute[Any], found: Option) -> Callable[[str], Any]:
    """The option's text to the setting's value, checked by the field's own validator."""

    def convert(text: str) -> Any:
        try:
            value = found.parse(text)
            if attribute.validator is not None:
                attribute.validator(None, attribute, value)
        except (ConfigurationError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    # argparse names the converter in some messages.
    convert.__name__ = attribute.name
    return convert


def _add_setting_options(parser: argparse.ArgumentParser) -> None:
    for setting in _setting_options():
        attribute, found = setting.attribute, setting.option
        shown = found.show(_default(attribute)).replace("%", "%%")
        parser.add_argument(
            found.flag(attribute.name),
            dest=setting.dest,
            metavar=found.metavar,
            type=_converter(attribute, found),
            # Only what was given lands in the namespace: every default is the field's own.
            default=argparse.SUPPRESS,
            help=f"{found.help.replace('%', '%%')} (default: {shown})",
        )


def settings_from_args(args: argparse.Namespace) -> CollectorSettings:
    """The settings the parsed ``collector`` options ask for; the rest keep their defaults."""
    given: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    for setting in _setting_options():
        if not hasattr(args, setting.dest):
            continue
        value = getattr(args, setting.dest)
        if setting.group is None:
            given[setting.attribute.name] = value
        else:
            groups.setdefault(setting.group, {})[setting.attribute.name] = value
    defaults = {a.name: a for a in attrs.fields(CollectorSettings)}
    for group, values in groups.items():
        given[group] = type(_default(defaults[group]))(**values)
    if getattr(args, "no_migrate", False):
        given["migrate"] = False
    return CollectorSettings(**given)


# -- telemetry-sdk collector -------------------------------------------------------------------


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


def _listen_failure(exc: ListenError) -> str:
    if exc.errno != errno.EADDRINUSE:
        return str(exc)
    flag = attrs.fields_dict(CollectorSettings)[exc.setting].metadata[OPTION].flag(exc.setting)
    return (
        f"{exc}. Stop the process that holds it, or choose another address with "
        f"{flag} HOST:PORT (port 0 picks a free one)"
    )


def _run_collector(args: argparse.Namespace) -> int:
    """Run the collector until SIGINT or SIGTERM, then drain, commit and exit 0."""
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = settings_from_args(args)
    except (ConfigurationError, ValueError) as exc:
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
        except ListenError as exc:
            return _fail(_listen_failure(exc))
        except StoreError as exc:
            return _fail(str(exc))
        except OSError as exc:
            return _fail(f"cannot start: {exc.strerror or exc}")
        if args.ready_file:
            try:
                _write_ready_file(args.ready_file, collector)
            except OSError as exc:
                return _fail(f"cannot write the ready file {args.ready_file}: {exc.strerror}")
        while not stop.wait(0.5):
            pass
    finally:
        collector.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


# -- telemetry-sdk collector leaderboard / delete ---------------------------------------------


def _open_existing(url: str, *, readonly: bool) -> Store | None:
    try:
        return open_store(url, readonly=readonly, create=False)
    except StoreError as exc:
        _fail(str(exc))
        return None


def _print_leaderboard(args: argparse.Namespace) -> int:
    """Print the leaderboard of one product, or of every product, from the database."""
    store = _open_existing(args.db, readonly=True)
    if store is None:
        return 1
    try:
        ci = args.include_ci
        products = (
            [args.product] if args.product else [p.product for p in store.products(include_ci=ci)]
        )
        boards = {
            p: [r.to_json() for r in store.leaderboard(p, args.limit, include_ci=ci)]
            for p in products
        }
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


def _delete_run(args: argparse.Namespace) -> int:
    """Delete everything held about one run, from every view."""
    correlator = args.correlator.strip().lower()
    if not is_stored_correlator(correlator):
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


def _export(args: argparse.Namespace) -> int:
    """Write one row per run of a product to a Parquet or CSV file."""
    store = _open_existing(args.db, readonly=True)
    if store is None:
        return 1
    try:
        count = export_runs(
            store, args.product, args.out, format=args.format, since=args.since, until=args.until
        )
    except (ExportError, StoreError) as exc:
        return _fail(str(exc))
    finally:
        store.close()
    print(f"wrote {count} run{'' if count == 1 else 's'} of {args.product} to {args.out}")
    return 0


def _date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        msg = f"expected a date as YYYY-MM-DD, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _migrate(args: argparse.Namespace) -> int:
    """Create or upgrade the collector's tables in a database to this version's schema."""
    try:
        store = open_store(args.db, migrate=True)
    except StoreError as exc:
        return _fail(str(exc))
    store.close()
    print(f"{shown_url(args.db)}: schema version {SCHEMA_VERSION}")
    return 0


# -- telemetry-sdk demo -----------------------------------------------------------------------


def _find_demo() -> Path | None:
    """``examples/demo.py`` of a source checkout: here, or next to this package."""
    checkout = Path(__file__).resolve().parents[2]
    for base in (Path.cwd(), checkout):
        path = base / "examples" / "demo.py"
        if path.is_file():
            return path
    return None


def _run_demo(args: argparse.Namespace) -> int:
    path = _find_demo()
    if path is None:
        print(
            f"{PROG}: the demo ships with the source (examples/demo.py); "
            "run it from a checkout of telemetry-sdk",
            file=sys.stderr,
        )
        return 1
    command = [sys.executable, str(path)] + (["--no-wait"] if args.no_wait else [])
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 130


# -- the parser ---------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = parse_whole_number(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value < 1:
        msg = f"expected a whole number >= 1, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


_DB_HELP = "the database: a SQLite file (PATH or sqlite:///PATH) or postgresql://..."


def add_commands(commands: Any) -> None:
    """Add ``collector`` (with ``leaderboard`` and ``delete``) and ``demo`` to ``commands``."""
    collector = commands.add_parser(
        "collector",
        help=COLLECTOR_COMMANDS["collector"],
        description=(
            "Receive usage datagrams over UDP, keep them in SQLite or PostgreSQL and serve the "
            "leaderboard, stats, dashboard and metrics over HTTP. Listens on loopback unless "
            "told otherwise."
        ),
    )
    _add_setting_options(collector)
    collector.add_argument(
        "--no-migrate",
        action="store_true",
        help="refuse a database made by an older version instead of upgrading it "
        "(then run 'telemetry-sdk collector migrate --db URL')",
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
        help="logging level (default: INFO)",
    )
    collector.set_defaults(func=_run_collector)

    actions = collector.add_subparsers(title="operator commands", metavar="COMMAND")
    leaderboard = actions.add_parser(
        "leaderboard", help="print the leaderboard from a database, without HTTP"
    )
    leaderboard.add_argument("--db", required=True, metavar="URL", help=_DB_HELP)
    leaderboard.add_argument("--product", help="one product (default: every product)")
    leaderboard.add_argument(
        "--limit", type=_positive_int, default=50, help="rows per product (default: 50)"
    )
    leaderboard.add_argument("--json", action="store_true", help="print JSON instead of a table")
    leaderboard.add_argument(
        "--include-ci",
        action="store_true",
        help="count runs from CI too (left out by default: a test suite is not a user)",
    )
    leaderboard.set_defaults(func=_print_leaderboard)

    delete = actions.add_parser(
        "delete", help="delete everything held about one run (honour a deletion request)"
    )
    delete.add_argument("--db", required=True, metavar="URL", help=_DB_HELP)
    delete.add_argument("correlator", help="the run's correlator (a UUID)")
    delete.set_defaults(func=_delete_run)
    add_report_parser(actions)

    migrate = actions.add_parser(
        "migrate", help="create or upgrade the collector's tables to this version's schema"
    )
    migrate.add_argument("--db", required=True, metavar="URL", help=_DB_HELP)
    migrate.set_defaults(func=_migrate)

    export = actions.add_parser(
        "export",
        help="write one row per run of a product to a Parquet or CSV file",
        description="Write one row per run of a product, with typed columns (see the README), "
        "to a Parquet or CSV file, streaming in batches. --since and --until are days (UTC) "
        "on which the collector first received the run, both included.",
    )
    export.add_argument("--db", required=True, metavar="URL", help=_DB_HELP)
    export.add_argument("--product", required=True, help="the product whose runs to export")
    export.add_argument("--since", type=_date, metavar="DATE", help="first day (YYYY-MM-DD)")
    export.add_argument("--until", type=_date, metavar="DATE", help="last day (YYYY-MM-DD)")
    export.add_argument(
        "--format", choices=["parquet", "csv"], default="parquet", help="(default: parquet)"
    )
    export.add_argument("--out", required=True, metavar="FILE", help="the file to write")
    export.set_defaults(func=_export)

    demo = commands.add_parser(
        "demo",
        help=COLLECTOR_COMMANDS["demo"],
        description=(
            "Start a collector on free loopback ports with a temporary database, run the example "
            "workflow at levels 1-3, print what was sent, the leaderboard and the dashboard URL."
        ),
    )
    demo.add_argument(
        "--no-wait", action="store_true", help="exit when done instead of serving until Ctrl-C"
    )
    demo.set_defaults(func=_run_demo)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the collector's subcommands, as ``telemetry-sdk`` shows them."""
    parser = Parser(prog=PROG)
    add_commands(parser.add_subparsers(title="commands", metavar="COMMAND", required=True))
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``telemetry-sdk collector ...`` or ``telemetry-sdk demo ...``; return the status."""
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result
