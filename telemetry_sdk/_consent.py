"""The one rule for the effective level: the application opts in, everything else can lower it.

The effective level of a run is the minimum of

1. ``Config.usage_tracking`` (the only thing that can opt in; 0, the default, is off);
2. ``DO_NOT_TRACK``: set to anything but empty, ``0`` or ``false`` -> 0;
3. ``<PRODUCT>_USAGE_TRACKING``: ``0``-``3``; ``off``/``false``/``no`` -> 0;
   ``on``/``true``/``yes`` or empty -> no ceiling; anything else -> 0 and one warning;
4. the saved setting for the product, and 5. the saved setting for all products
   (``telemetry-sdk disable``; an unreadable settings file -> 0 and one warning).

``<PRODUCT>_USAGE_TRACKING_ENDPOINT`` replaces the destination (it beats ``Config.endpoint``,
which beats ``Product.endpoint``); an invalid value turns tracking off for the run, with a
warning, because sending to an unintended place is worse than not sending.
``<PRODUCT>_USAGE_TRACKING_DEBUG`` (``1``/``true``/``yes``/``on``) is preview mode: messages
are printed and logged, never sent, and no span is made; an unreadable value also means
preview mode. ``<PRODUCT>_USAGE_TRACKING_OTEL`` asks for a span per run (``_otelsetting``
reads it; it never changes the level).

Unreadable outside settings never raise: they lower the level and warn once per process
(``TrackingSettingWarning``; if the host turned warnings into errors, the warning goes to the
``telemetry_sdk`` logger instead).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path

from attrs import field, frozen

from . import _logsettings, _otelsetting, _settings
from ._config import Config, Endpoint, Level, Product, parse_endpoint
from ._errors import ConfigurationError, TrackingSettingWarning

__all__ = ["Decision", "Reading", "decide", "default_log_path", "outside_readings", "state_home"]

logger = logging.getLogger("telemetry_sdk")

_OFF_WORDS = frozenset({"off", "false", "no"})
_ON_WORDS = frozenset({"on", "true", "yes"})
_DEBUG_ON = frozenset({"1", "true", "yes", "on"})
_DEBUG_OFF = frozenset({"", "0", "false", "no", "off"})
_LEVEL_SPELLINGS = "0-3, off/false/no, on/true/yes or empty"

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


@frozen
class Reading:
    """What one outside source says: its ceiling (``None``: no ceiling) and why."""

    #: The source's name, e.g. ``DO_NOT_TRACK`` or ``saved setting for minflow``.
    source: str
    ceiling: Level | None
    #: What was found and what it means, e.g. ``'1' -> 0 (off)``.
    effect: str
    #: Set when the value could not be read; ``decide()`` warns with it.
    problem: str | None = None

    @property
    def line(self) -> str:
        """One human-readable line: ``source: effect``."""
        return f"{self.source}: {self.effect}"


@frozen
class Decision:
    """What a run will do, and why."""

    #: The effective level: the minimum of every source.
    level: Level
    #: One human-readable line per source that was consulted, e.g. ``"config: 3"``.
    sources: tuple[str, ...]
    #: Which source set the effective level (``"config"``, ``"DO_NOT_TRACK"``, ...).
    decided_by: str
    endpoint: Endpoint
    #: Preview mode: print and log each message instead of sending it.
    debug: bool
    #: None when no path can be worked out (no ``HOME`` and no passwd entry): not logged to a file.
    log_path: Path | None
    #: Where ``endpoint`` came from: ``"product"``, ``"config"`` or the variable's name.
    endpoint_source: str = "product"
    #: The log's rotation size and kept generations (``<PRODUCT>_USAGE_TRACKING_LOG_*``).
    log_limits: _logsettings.LogLimits = field(factory=_logsettings.LogLimits)
    #: ``<PRODUCT>_USAGE_TRACKING_OTEL`` as set (stripped), when it asks for spans or cannot
    #: be read (``_otel`` warns once then); None: no spans.
    otel: str | None = None


def default_log_path(product: Product, environ: Mapping[str, str]) -> Path:
    """``$XDG_STATE_HOME/<product>/usage.jsonl``, else ``~/.local/state/<product>/usage.jsonl``."""
    return state_home(environ) / product.name / "usage.jsonl"


def _log_path_if_known(product: Product, environ: Mapping[str, str]) -> Path | None:
    """The default log path, or None when there is no home to put it in."""
    try:
        return default_log_path(product, environ)
    except (RuntimeError, KeyError, OSError):  # HOME unset and the uid has no passwd entry
        return None


def state_home(environ: Mapping[str, str]) -> Path:
    """``$XDG_STATE_HOME`` if it is an absolute path, else ``~/.local/state``."""
    state = environ.get("XDG_STATE_HOME", "")
    return Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"


def _describe(level: Level | None) -> str:
    if level is None:
        return "no ceiling"
    return f"{int(level)} ({level.name.lower()})"


# -- each outside source, read without side effects -------------------------------------------


def read_do_not_track(environ: Mapping[str, str]) -> Reading:
    """``DO_NOT_TRACK``: anything but unset, empty, ``0`` or ``false`` turns tracking off."""
    value = environ.get("DO_NOT_TRACK")
    if value is None:
        return Reading("DO_NOT_TRACK", None, "not set -> no ceiling")
    if value.strip().lower() in {"", "0", "false"}:
        return Reading("DO_NOT_TRACK", None, f"{value!r} -> no ceiling")
    return Reading("DO_NOT_TRACK", Level.OFF, f"{value!r} -> {_describe(Level.OFF)}")


def read_product_level(prefix: str, environ: Mapping[str, str]) -> Reading:
    """``<PRODUCT>_USAGE_TRACKING``: a level 0-3 or a word; unreadable -> 0 with a problem."""
    value = environ.get(prefix)
    if value is None:
        return Reading(prefix, None, "not set -> no ceiling")
    word = value.strip().lower()
    ceiling: Level | None
    if word in {"0", "1", "2", "3"}:
        ceiling = Level(int(word))
    elif word in _OFF_WORDS:
        ceiling = Level.OFF
    elif word in _ON_WORDS or not word:
        ceiling = None
    else:
        problem = (
            f"{prefix}={value!r} is not a tracking setting; usage tracking is off for this run. "
            f"Accepted values: {_LEVEL_SPELLINGS}."
        )
        return Reading(prefix, Level.OFF, f"{value!r} unreadable -> 0 (off)", problem)
    return Reading(prefix, ceiling, f"{value!r} -> {_describe(ceiling)}")


def read_endpoint(prefix: str, environ: Mapping[str, str]) -> tuple[Reading, Endpoint | None]:
    """``<PRODUCT>_USAGE_TRACKING_ENDPOINT``: the override, or an invalid value -> 0."""
    name = f"{prefix}_ENDPOINT"
    value = environ.get(name)
    if value is None or not value.strip():
        shown = "not set" if value is None else f"{value!r}"
        return Reading(name, None, f"{shown} -> the application's destination"), None
    try:
        endpoint = parse_endpoint(value)
    except ConfigurationError:
        problem = (
            f"{name}={value!r} is not an endpoint like 'udp://host:port'; "
            "usage tracking is off for this run rather than sending somewhere unintended."
        )
        return Reading(name, Level.OFF, f"{value!r} invalid -> 0 (off)", problem), None
    return Reading(name, None, f"{value!r} -> sends to {endpoint}"), endpoint


def read_debug(prefix: str, environ: Mapping[str, str]) -> tuple[Reading, bool]:
    """``<PRODUCT>_USAGE_TRACKING_DEBUG``: preview mode; unreadable -> preview (sends nothing)."""
    name = f"{prefix}_DEBUG"
    value = environ.get(name)
    if value is None:
        return Reading(name, None, "not set -> messages are sent"), False
    word = value.strip().lower()
    if word in _DEBUG_ON:
        return Reading(name, None, f"{value!r} -> preview: printed and logged, not sent"), True
    if word in _DEBUG_OFF:
        return Reading(name, None, f"{value!r} -> messages are sent"), False
    problem = (
        f"{name}={value!r} is not a switch; preview mode is on (nothing is sent). "
        "Accepted values: 1/true/yes/on or 0/false/no/off."
    )
    return Reading(name, None, f"{value!r} unreadable -> preview, not sent", problem), True


def read_otel(
    prefix: str, environ: Mapping[str, str], *, debug: bool
) -> tuple[Reading, str | None]:
    """``<PRODUCT>_USAGE_TRACKING_OTEL``: a span per run, or none (never a ceiling).

    Returns the reading and the value for ``_otel`` (None: no spans). An unreadable value is
    passed on, so that ``_otel`` warns once when a run would have had a span.
    """
    name = f"{prefix}{_otelsetting.SUFFIX}"
    value = environ.get(name)
    if value is None:
        return Reading(name, None, "not set -> no spans"), None
    try:
        setting = _otelsetting.parse(value)
    except _otelsetting.SpanSettingError as exc:
        return Reading(name, None, f"{value!r} is {exc} -> no spans"), value.strip()
    if setting is None:
        return Reading(name, None, f"{value!r} -> no spans"), None
    if debug:
        return Reading(name, None, f"{value!r} -> no spans in preview mode"), None
    return Reading(name, None, f"{value!r} -> {setting.describe()}"), value.strip()


def read_saved(product_name: str | None, path: Path) -> list[Reading]:
    """The saved settings for one product (if named) and for all products.

    An unreadable file is one reading with ceiling 0 and a problem.
    """
    try:
        settings = _settings.load(path)
    except _settings.SettingsError as exc:
        problem = (
            f"the tracking settings file {path} is unreadable ({exc}); usage tracking is off. "
            "Run 'telemetry-sdk enable' or 'telemetry-sdk disable' to rewrite it."
        )
        return [Reading("saved settings", Level.OFF, f"unreadable ({exc}) -> 0 (off)", problem)]
    if settings is None:
        settings = _settings.Settings()
    readings = []
    if product_name is not None:
        mine = settings.for_product(product_name)
        readings.append(
            Reading(f"saved setting for {product_name}", mine, _saved_effect(mine)),
        )
    every = settings.for_all()
    readings.append(Reading("saved setting for all products", every, _saved_effect(every)))
    return readings


def _saved_effect(level: Level | None) -> str:
    return "none -> no ceiling" if level is None else f"ceiling {_describe(level)}"


def outside_readings(
    product: Product, environ: Mapping[str, str], *, stop_at_zero: bool = False
) -> tuple[list[Reading], Endpoint | None, bool]:
    """Every outside source for ``product``: readings, endpoint override, preview mode.

    With ``stop_at_zero``, the settings file is not opened once another source says 0.
    The last reading is ``<PRODUCT>_USAGE_TRACKING_OTEL`` (see :func:`read_otel`).
    """
    prefix = product.env_prefix
    endpoint_reading, endpoint = read_endpoint(prefix, environ)
    readings = [
        read_do_not_track(environ),
        read_product_level(prefix, environ),
        endpoint_reading,
    ]
    if stop_at_zero and any(r.ceiling == Level.OFF for r in readings):
        readings.append(Reading("saved settings", None, "not read (already off)"))
    else:
        try:
            path = _settings.settings_path(environ)
        except (RuntimeError, KeyError, OSError):  # no HOME and no passwd entry: none saved
            readings.append(Reading("saved settings", None, "no home directory -> none saved"))
        else:
            readings.extend(read_saved(product.name, path))
    debug_reading, debug = read_debug(prefix, environ)
    readings.append(debug_reading)
    readings.append(read_otel(prefix, environ, debug=debug)[0])
    return readings, endpoint, debug


def _caller_level() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside this package."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith(__package__ or "-"):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def _warn(problem: str, key: tuple[str, str]) -> None:
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    try:
        warnings.warn(problem, TrackingSettingWarning, stacklevel=_caller_level())
    except Warning:
        # The host turned warnings into errors; an outside setting must never raise.
        logger.warning("%s", problem)


def decide(config: Config, product: Product, environ: Mapping[str, str] | None = None) -> Decision:
    """Resolve the effective level, destination, preview mode and log path of a run.

    At level 0 nothing outside the application's configuration is consulted: no consent
    variable is read and no file is opened (only the log path is computed).

    With the process environment (``environ=None``) the decision is remembered: a later
    tracker with the same configuration, the same variables and an unchanged settings file
    (same ``stat``) reuses it, reading nothing from disk. Its warnings are given again
    (still once per process).
    """
    if environ is None and config.usage_tracking != Level.OFF:
        return _decide_remembered(config, product)
    return _decide(config, product, os.environ if environ is None else environ)


#: The variables a decision depends on, besides the ``<PRODUCT>_USAGE_TRACKING*`` ones.
_KEY_VARIABLES = ("DO_NOT_TRACK", "XDG_STATE_HOME", "XDG_CONFIG_HOME", "HOME")
_REMEMBERED_MAX = 64
#: The ``<PRODUCT>_USAGE_TRACKING*`` variables a decision depends on.
_PRODUCT_SUFFIXES = (
    "",
    "_ENDPOINT",
    "_DEBUG",
    "_LOG_MAX_BYTES",
    "_LOG_BACKUPS",
    _otelsetting.SUFFIX,
)


@frozen
class _Remembered:
    """A decision made from the process environment, and the problems it warned about."""

    decision: Decision
    problems: tuple[tuple[str, str], ...]


_remembered: dict[tuple[object, ...], _Remembered] = {}
#: The settings file's path for each (XDG_CONFIG_HOME, HOME): building it costs microseconds.
_settings_paths: dict[tuple[str | None, str | None], str] = {}


def _settings_stamp(environ: Mapping[str, str]) -> tuple[int, ...] | None:
    """What ``stat`` says about the settings file (``()`` if absent); None if it cannot say."""
    where = (environ.get("XDG_CONFIG_HOME"), environ.get("HOME"))
    path = _settings_paths.get(where)
    if path is None:
        try:
            path = _settings_paths[where] = os.fspath(_settings.settings_path(environ))
        except (RuntimeError, KeyError, OSError):  # no home: nothing to stat, nothing saved
            return None
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return ()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_dev)


def _decide_remembered(config: Config, product: Product) -> Decision:
    env = os.environ
    prefix = product.env_prefix
    stamp = _settings_stamp(env)
    key = (
        config.usage_tracking,
        config.endpoint,
        config.log_path,
        product,
        stamp,
        *(env.get(name) for name in _KEY_VARIABLES),
        *(env.get(prefix + suffix) for suffix in _PRODUCT_SUFFIXES),
    )
    found = _remembered.get(key) if stamp is not None else None
    if found is not None:
        for problem in found.problems:
            _warn(problem[1], problem)
        return found.decision
    problems: list[tuple[str, str]] = []
    decision = _decide(config, product, env, problems)
    if stamp is not None:
        if len(_remembered) >= _REMEMBERED_MAX:
            _remembered.clear()
        _remembered[key] = _Remembered(decision, tuple(problems))
    return decision


def _decide(
    config: Config,
    product: Product,
    env: Mapping[str, str],
    problems: list[tuple[str, str]] | None = None,
) -> Decision:
    log_path = config.log_path or _log_path_if_known(product, env)
    configured: tuple[Endpoint, str] = (
        (config.endpoint, "config")
        if config.endpoint is not None
        else (product.endpoint, "product")
    )
    if config.usage_tracking == Level.OFF:
        return Decision(
            level=Level.OFF,
            sources=("config: 0 (off) -> nothing else consulted",),
            decided_by="config",
            endpoint=configured[0],
            debug=False,
            log_path=log_path,
            endpoint_source=configured[1],
        )
    readings, override, debug = outside_readings(product, env, stop_at_zero=True)
    level: Level = config.usage_tracking
    decided_by = "config"
    for reading in readings:
        if reading.problem is not None:
            _warn(reading.problem, (reading.source, reading.problem))
            if problems is not None:
                problems.append((reading.source, reading.problem))
        if reading.ceiling is not None and reading.ceiling < level:
            level, decided_by = reading.ceiling, reading.source
    endpoint, endpoint_source = (
        (override, f"{product.env_prefix}_ENDPOINT") if override is not None else configured
    )
    _, otel = read_otel(product.env_prefix, env, debug=debug)
    log_limits, limit_problems = _logsettings.read_log_limits(product.env_prefix, env)
    for problem in limit_problems:
        _warn(problem, ("log limits", problem))
        if problems is not None:
            problems.append(("log limits", problem))
    return Decision(
        level=level,
        sources=(f"config: {_describe(config.usage_tracking)}", *(r.line for r in readings)),
        decided_by=decided_by,
        endpoint=endpoint,
        debug=debug,
        log_path=log_path,
        endpoint_source=endpoint_source,
        log_limits=log_limits,
        otel=otel,
    )


def _reset_warnings() -> None:
    """Forget which warnings were given and which decisions were made (tests)."""
    with _warned_lock:
        _warned.clear()
    _remembered.clear()
