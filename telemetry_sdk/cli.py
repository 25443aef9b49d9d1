"""The ``telemetry-sdk`` command: see and change the tracking settings, read the local log.

``status`` shows the ceiling that the environment and saved settings put on every product (or
one product) and where each part comes from; ``disable`` / ``enable`` save or clear a ceiling
of 0; ``log`` prints what was sent, when, and the outcome. Exit codes: 0 success, 1 an
operational failure (e.g. the settings file cannot be written), 2 a usage error.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import _consent, _logsettings, _settings
from ._config import Endpoint, Level, Product
from ._errors import SERVER_EXTRA_HINT, ConfigurationError

__all__ = ["build_parser", "main"]

PROG = "telemetry-sdk"
_HOW_IT_WORKS = (
    "Only an application's own configuration (Config.usage_tracking) can turn usage tracking "
    "on. DO_NOT_TRACK, <PRODUCT>_USAGE_TRACKING and the settings saved by this command can "
    "only lower it: a run's level is the minimum of all of them."
)


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _product_name(text: str) -> str:
    try:
        _placeholder_product(text)
    except ConfigurationError:
        msg = f"not a product name (letters, digits, '_' or '-', starting with a letter): {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    return text


def _placeholder_product(name: str) -> Product:
    # The command knows a product only by name; the endpoint is the application's business
    # and is never used here.
    return Product(name=name, version="0", endpoint=Endpoint("localhost", 9))


def _out(line: str = "") -> None:
    print(line)


def _err(line: str) -> None:
    print(f"{PROG}: {line}", file=sys.stderr)


# -- status -----------------------------------------------------------------------------------


def _ceiling_line(readings: Sequence[_consent.Reading]) -> str:
    ceiling: Level | None = None
    by = ""
    for reading in readings:
        if reading.ceiling is not None and (ceiling is None or reading.ceiling < ceiling):
            ceiling, by = reading.ceiling, reading.source
    if ceiling is None:
        return "no ceiling from outside the code: the application's Config.usage_tracking decides"
    if ceiling == Level.OFF:
        return f"ceiling 0 (off), set by {by}: nothing is sent, whatever the application says"
    return f"ceiling {int(ceiling)} ({ceiling.name.lower()}), set by {by}"


def _settings_file_line(path: Path) -> str:
    try:
        found = _settings.load(path)
    except _settings.SettingsError as exc:
        return (
            f"settings file: {path} is UNREADABLE ({exc}); it counts as 'disabled for all "
            f"products'. Run '{PROG} disable' or '{PROG} enable' to rewrite it."
        )
    return f"settings file: {path}" + (" (not created yet)" if found is None else "")


def _log_line(path: Path) -> str:
    from ._locallog import iter_log

    try:
        messages = sum(1 for r in iter_log(path) if r.get("event") == "payload")
    except OSError as exc:
        return f"local log: {path} (cannot be read: {exc.strerror or exc})"
    if not path.exists():
        return f"local log: {path} (no messages yet)"
    return f"local log: {path} ({messages} message{'s' if messages != 1 else ''})"


def _product_variables(environ: Mapping[str, str]) -> list[str]:
    suffixes = (
        "_USAGE_TRACKING",
        "_USAGE_TRACKING_ENDPOINT",
        "_USAGE_TRACKING_DEBUG",
        "_USAGE_TRACKING_LOG_MAX_BYTES",
        "_USAGE_TRACKING_LOG_BACKUPS",
        "_USAGE_TRACKING_OTEL",
    )
    return sorted(f"{k}={v!r}" for k, v in environ.items() if k.endswith(suffixes))


def _status(args: argparse.Namespace) -> int:
    env = os.environ
    path = _settings.settings_path(env)
    if args.product is None:
        readings = [
            _consent.read_do_not_track(env),
            *_consent.read_saved(None, path),
        ]
        _out(f"all products: {_ceiling_line(readings)}")
        for reading in readings:
            _out(f"  {reading.line}")
        try:
            saved = _settings.load(path) or _settings.Settings()
        except _settings.SettingsError:
            saved = _settings.Settings()
        singles = [f"{k}: ceiling {int(v)}" for k, v in saved.ceilings.items() if k != "*"]
        _out(f"saved settings for single products: {', '.join(singles) or 'none'}")
        variables = _product_variables(env)
        _out(f"product variables set: {', '.join(variables) or 'none'}")
        _out(_settings_file_line(path))
        state = _consent.state_home(env)
        _out(f"local logs: {state}/<product>/usage.jsonl")
        _out(f"For one product's ceiling, log and destination: {PROG} status --product NAME")
        _out(_HOW_IT_WORKS)
        return 0

    product = _placeholder_product(args.product)
    readings, override, debug = _consent.outside_readings(product, env)
    level_readings = [r for r in readings if not r.source.endswith("_DEBUG")]
    _out(f"{product.name}: {_ceiling_line(level_readings)}")
    for reading in readings:
        _out(f"  {reading.line}")
    if override is not None:
        _out(f"destination: {override} (from {product.env_prefix}_ENDPOINT)")
    else:
        _out(
            "destination: the application's endpoint (Config.endpoint, else the product's); "
            f"set {product.env_prefix}_ENDPOINT to change it"
        )
    if debug:
        _out(
            "preview mode: on: messages are printed to stderr and logged, never sent; "
            "no spans are made"
        )
    _out(
        _log_line(_consent.default_log_path(product, env))
        + "; an application may choose another with Config.log_path"
    )
    limits, problems = _logsettings.read_log_limits(product.env_prefix, env)
    _out(
        f"log rotation: at {limits.max_bytes:,} bytes, keeping {limits.backups} previous "
        f"generation{'s' if limits.backups != 1 else ''} (at most {limits.total_bytes:,} bytes); "
        f"set {product.env_prefix}_LOG_MAX_BYTES and _LOG_BACKUPS to change it"
    )
    for problem in problems:
        _out(f"  {problem}")
    _out(_settings_file_line(path))
    _out(_HOW_IT_WORKS)
    return 0


# -- disable / enable -------------------------------------------------------------------------


def _change(
    apply: Callable[[_settings.Settings], _settings.Settings],
) -> tuple[int, _settings.Settings]:
    path = _settings.settings_path(os.environ)
    try:
        found = _settings.load(path)
    except _settings.SettingsError as exc:
        _out(
            f"The settings file {path} was unreadable ({exc}) and counted as 'disabled for all "
            "products'; it is rewritten, starting from that."
        )
        current = _settings.Settings({_settings.ALL: Level.OFF})
        new = apply(current)
    else:
        current = found or _settings.Settings()
        new = apply(current)
        if new == current:
            return 0, new  # nothing to change: nothing is written
    try:
        _settings.save(path, new)
    except _settings.SettingsError as exc:
        _err(f"cannot save the setting: {exc}")
        return 1, new
    return 0, new


def _disable(args: argparse.Namespace) -> int:
    key = _settings.ALL if args.product is None else _settings.product_key(args.product)
    status, _ = _change(lambda s: s.with_ceiling(key, Level.OFF))
    if status:
        return status
    who = "every product" if args.product is None else args.product
    _out(
        f"Usage tracking disabled for {who} for this user "
        f"(saved in {_settings.settings_path(os.environ)})."
    )
    return 0


def _enable(args: argparse.Namespace) -> int:
    if args.product is None:
        status, new = _change(lambda s: _settings.Settings())
        if status:
            return status
        _out("Saved ceilings cleared for every product.")
    else:
        key = _settings.product_key(args.product)
        status, new = _change(lambda s: s.without(key))
        if status:
            return status
        _out(f"Saved ceiling cleared for {args.product}.")
        if new.for_all() is not None:
            _out(
                f"{args.product} is still limited to {int(new.for_all() or 0)} by the saved "
                f"setting for all products; run '{PROG} enable' to clear that too."
            )
    _out(
        "This does not opt anyone in: each application's own configuration decides whether "
        "it tracks usage."
    )
    dnt = _consent.read_do_not_track(os.environ)
    if dnt.ceiling is not None:
        _out(f"Note: tracking stays off while DO_NOT_TRACK is set ({dnt.effect}).")
    return 0


# -- log --------------------------------------------------------------------------------------


def _log_files(args: argparse.Namespace) -> list[Path]:
    if args.path is not None:
        return [Path(args.path)]
    if args.product is not None:
        return [_consent.default_log_path(_placeholder_product(args.product), os.environ)]
    state = _consent.state_home(os.environ)
    try:
        return sorted(state.glob("*/usage.jsonl"))
    except OSError:
        return []


#: How many messages may wait for their outcome line before they are printed without one.
_WINDOW = 1000


def _messages(records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """One entry per message, in order: a payload record joined with its outcome record.

    Streams: a message is held back only until its outcome arrives (at most ``_WINDOW``
    messages wait), so memory stays flat for any log size.
    """
    window: deque[dict[str, Any]] = deque()
    pending: dict[tuple[Any, Any, Any, Any], dict[str, Any]] = {}

    def key(record: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
        return (
            record.get("product"),
            record.get("correlator"),
            record.get("kind"),
            record.get("seq"),
        )

    for record in records:
        if record.get("event") == "payload":
            message = dict(record)
            pending[key(record)] = message
            window.append(message)
        elif record.get("event") == "outcome":
            found = pending.pop(key(record), None)
            if found is None:
                window.append(dict(record))
            else:
                for name in ("outcome", "reason", "bytes"):
                    if name in record:
                        found[name] = record[name]
        while window and ("outcome" in window[0] or len(window) > _WINDOW):
            message = window.popleft()
            if pending.get(key(message)) is message:
                del pending[key(message)]
            yield message
    yield from window


def _format(message: dict[str, Any]) -> str:
    outcome = str(message.get("outcome", "no outcome recorded"))
    if "reason" in message:
        outcome += f" ({message['reason']})"
    parts = [
        str(message.get("time", "?")),
        str(message.get("product", "?")),
        str(message.get("kind", "?")) + (f" {message['seq']}" if "seq" in message else ""),
        str(message.get("correlator", "?")),
        outcome,
    ]
    if "payload" in message:
        parts.append(f"level {message.get('level', '?')} to {message.get('destination', '?')}:")
        parts.append(str(message["payload"]))
    return " ".join(parts)


def _log(args: argparse.Namespace) -> int:
    from ._locallog import iter_log

    files = _log_files(args)

    def of_product(path: Path) -> Iterator[dict[str, Any]]:
        for record in iter_log(path, correlator=args.correlator):
            if args.product is None or record.get("product") == args.product:
                yield record

    # Each log (with its generations) is in order; merging by time keeps that order per log.
    records = heapq.merge(*(of_product(path) for path in files), key=lambda r: str(r.get("time")))
    printed = 0
    try:
        if args.json:
            for record in records:
                _out(json.dumps(record, ensure_ascii=False))
                printed += 1
        else:
            for message in _messages(records):
                _out(_format(message))
                printed += 1
    except OSError as exc:
        _err(f"cannot read the log: {exc.strerror or exc} ({exc.filename})")
        return 1
    if not printed and not args.json:
        where = ", ".join(str(p) for p in files) or "no log files found"
        print(f"no messages logged ({where})", file=sys.stderr)
    return 0


# -- the parser -------------------------------------------------------------------------------


class _Version(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from importlib.metadata import version

        parser.exit(0, f"{PROG} {version('telemetry-sdk')}\n")


#: The subcommands that live in the collector's own command-line module
#: (``telemetry_sdk.collector._cli``) and need the server extra, with their one-line help.
COLLECTOR_COMMANDS = {
    "collector": "run the collector that receives, stores and shows usage (needs the server extra)",
    "demo": "run the example workflow against an embedded collector (needs the server extra)",
}


def _run_collector_command(args: argparse.Namespace) -> int:
    try:
        from .collector._cli import main as collector_main
    except ImportError as exc:
        # Only a missing third-party module means a missing extra; anything else is a bug.
        missing = exc if isinstance(exc, ModuleNotFoundError) else exc.__cause__
        if not isinstance(missing, ModuleNotFoundError) or (missing.name or "").startswith(
            f"{__package__}."
        ):
            raise
        _err(SERVER_EXTRA_HINT)
        return 1
    return collector_main([args.collector_command, *args.arguments])


def _add_collector_commands(commands: Any) -> None:
    """List ``collector`` and ``demo`` without importing the collector.

    Each takes everything after its name untouched and hands it to the collector's own
    parser, which knows the options (and prints their ``--help``). A prefix character that
    never occurs on a command line keeps argparse from reading ``--udp`` and the like as
    options of this stand-in.
    """
    for name, text in COLLECTOR_COMMANDS.items():
        command = commands.add_parser(name, help=text, prefix_chars="\0", add_help=False)
        command.add_argument("arguments", nargs="*")
        command.set_defaults(func=_run_collector_command, collector_command=name)


def build_parser() -> argparse.ArgumentParser:
    """The ``telemetry-sdk`` argument parser with every subcommand."""
    parser = Parser(
        prog=PROG,
        description="See and change usage tracking settings, and read what was sent. "
        + _HOW_IT_WORKS,
    )
    parser.add_argument("--version", action=_Version)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    status = commands.add_parser(
        "status",
        help="show the tracking ceiling and where each part of it comes from",
        description="Show the ceiling that DO_NOT_TRACK, <PRODUCT>_USAGE_TRACKING and the saved "
        "settings put on usage tracking, where each part comes from, the local log and the "
        "destination. " + _HOW_IT_WORKS,
    )
    status.add_argument(
        "--product", type=_product_name, metavar="NAME", help="one product (default: all)"
    )
    status.set_defaults(func=_status)

    disable = commands.add_parser(
        "disable",
        help="turn usage tracking off for this user (all products, or one)",
        description="Save a ceiling of 0 (off) for every product, or for one with --product. "
        "Applications then send nothing, whatever their configuration says.",
    )
    disable.add_argument("--product", type=_product_name, metavar="NAME", help="only this product")
    disable.set_defaults(func=_disable)

    enable = commands.add_parser(
        "enable",
        help="remove a saved ceiling (never opts in)",
        description="Remove the saved ceiling for every product (all saved settings), or for one "
        "product with --product. This never turns tracking on: each application's own "
        "configuration decides, and DO_NOT_TRACK and <PRODUCT>_USAGE_TRACKING still apply.",
    )
    enable.add_argument("--product", type=_product_name, metavar="NAME", help="only this product")
    enable.set_defaults(func=_enable)

    log = commands.add_parser(
        "log",
        help="print the local log of messages: what was sent, when, and the outcome",
        description="Print the local log's messages, oldest first (newest last): time, product, "
        "kind, correlator, outcome, level, destination and the exact payload.",
    )
    log.add_argument(
        "--product",
        type=_product_name,
        metavar="NAME",
        help="only this product (default: every product's log)",
    )
    log.add_argument("--correlator", metavar="ID", help="only the messages of this run")
    log.add_argument(
        "--path", metavar="FILE", help="read this log file (for an application's Config.log_path)"
    )
    log.add_argument("--json", action="store_true", help="print the raw JSON records")
    log.set_defaults(func=_log)

    _add_collector_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        result: int = args.func(args)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        return 130
    except RuntimeError as exc:
        if "home directory" not in str(exc):
            raise
        # HOME is unset and this user id has no passwd entry (pathlib's Path.home()).
        _err(
            "cannot find a home directory (HOME is unset and this user id has no passwd "
            "entry); set HOME, or XDG_CONFIG_HOME and XDG_STATE_HOME, or use --path for log"
        )
        return 1
    except BrokenPipeError:
        # The reader went away (``telemetry-sdk log | head``); stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return result
