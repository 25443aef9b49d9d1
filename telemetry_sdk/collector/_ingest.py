"""From a datagram to a ``Record``: what the store needs to know about one message.

The authority is ``telemetry_sdk._wire.decode`` with ``orjson``: the same cattrs schema and
validators as the SDK. A rejected datagram raises ``DecodeError`` with a stable reason. A
fast path (below) takes the common messages at a third of the cost and hands everything
else to ``_wire.decode``.
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal, NamedTuple

import orjson

from .._config import PROJECT_NAME_MAX
from .._wire import (
    _COMPONENT_NAME_MAX,
    _DURATION_MAX,
    _EPOCH_MAX,
    _INFO_KEY,
    _INFO_KEYS_MAX,
    _INFO_VALUE_MAX,
    _INT_MAX,
    _PRODUCT,
    _TOKEN,
    _UUID,
    MAX_DATAGRAM,
    CloseMessage,
    Component,
    Message,
    StartMessage,
    _unstructure_component,
    decode,
)

__all__ = ["Record", "parse", "record_from_message"]


class Record(NamedTuple):
    """One accepted message, flattened for the store.

    ``product`` is ``None`` only for a Parsl close, which names no product: the store joins
    it to its run by correlator. ``received`` is the collector's clock, in epoch seconds.
    (A named tuple rather than an attrs class: one is built per datagram, and a frozen
    attrs class costs 2.5 us to build against 0.4 us.)
    """

    kind: Literal["start", "close"]
    correlator: str
    product: str | None
    version: str | None
    python_v: str | None
    platform: str | None
    level: int | None
    project: str | None
    #: The components as sent (JSON text of the wire list), or ``None`` when absent.
    components: str | None
    #: Their distinct names (for a close, without the entry that carries the app counts).
    component_names: tuple[str, ...]
    start: int | None
    end: int | None
    execution_time: float | None
    app_count: int | None
    app_fails: int | None
    received: int


def _wire_components(components: tuple[Component, ...]) -> str:
    return orjson.dumps([_unstructure_component(c) for c in components]).decode()


def _app_counts(components: tuple[Component, ...]) -> tuple[int | None, int | None]:
    """The first component reporting ``app_count`` and ``app_fails`` as whole numbers."""
    for component in components:
        count = component.info.get("app_count")
        fails = component.info.get("app_fails")
        if type(count) is int and type(fails) is int and count >= 0 and fails >= 0:
            return count, fails
    return None, None


def record_from_message(message: Message, received: int | None = None) -> Record:
    """Flatten a decoded (or freshly built) message; ``received`` defaults to now."""
    when = int(time.time()) if received is None else received
    if isinstance(message, StartMessage):
        components = message.components
        return Record(
            kind="start",
            correlator=message.correlator,
            product=message.product,
            version=message.version,
            python_v=message.python_v,
            platform=message.platform_system,
            level=message.tracking_level,
            project=message.project_name,
            components=None if components is None else _wire_components(components),
            component_names=tuple(dict.fromkeys(c.name for c in components or ())),
            start=message.start,
            end=None,
            execution_time=None,
            app_count=None,
            app_fails=None,
            received=when,
        )
    assert isinstance(message, CloseMessage)
    count, fails = _app_counts(message.components)
    names = (c.name for c in message.components if "app_count" not in c.info)
    return Record(
        kind="close",
        correlator=message.correlator,
        product=message.product,
        version=message.version,
        python_v=None,
        platform=None,
        level=message.tracking_level,
        project=message.project_name,
        components=_wire_components(message.components),
        component_names=tuple(dict.fromkeys(names)),
        start=None,
        end=message.end,
        execution_time=message.execution_time,
        app_count=count,
        app_fails=fails,
        received=when,
    )


def _loads(text: str) -> object:
    # orjson rejects NaN and Infinity, as protocol 1 requires.
    return orjson.loads(text)


def parse(datagram: bytes, received: int) -> Record:
    """Decode and validate one datagram; raise ``DecodeError`` (with a reason) if invalid.

    A fast path takes the common, clean messages; anything it is not sure about goes
    through ``_wire.decode``, which has the last word (and says why it rejects).
    """
    record = fast_parse(datagram, received)
    if record is None:
        record = record_from_message(decode(datagram, loads=_loads), received)
    return record


# -- the fast path --
#
# ``_wire.decode`` builds attrs messages through cattrs, running every validator: about 25 us
# a datagram, too slow for tens of thousands a second. ``fast_parse`` checks the same rules
# by hand on the parsed JSON and builds the ``Record`` directly. It may only ever say
# "accepted, and here is the record ``parse`` would have built" or "not sure" (``None``);
# a differential Hypothesis test (tests/test_collector_ingest.py) holds it to that.

_START_KEYS = frozenset(
    {
        "correlator",
        "python_v",
        "platform.system",
        "tracking_level",
        "project_name",
        "components",
        "components_truncated",
        "start",
    }
)
_CLOSE_KEYS = frozenset(
    {
        "correlator",
        "tracking_level",
        "project_name",
        "end",
        "execution_time",
        "components",
        "components_truncated",
    }
)


def _token(value: object) -> bool:
    return type(value) is str and _TOKEN.fullmatch(value) is not None


def _epoch(value: object) -> bool:
    return type(value) is int and 0 < value < _EPOCH_MAX


def _scalar(item: Any) -> bool:
    kind = type(item)
    if item is None or kind is bool:
        return True
    if kind is int:
        return bool(-_INT_MAX <= item <= _INT_MAX)
    if kind is float:
        return math.isfinite(item)
    return kind is str and len(item) <= _INFO_VALUE_MAX and bool(item.isprintable())


def _fast_components(value: object) -> tuple[str, tuple[str, ...], list[dict[str, Any]]] | None:
    """Check a components list; return its JSON, its names and its detailed entries."""
    if type(value) is not list:
        return None
    items: list[Any] = []
    names: dict[str, None] = {}
    detailed: list[dict[str, Any]] = []
    for item in value:
        name: Any
        if type(item) is str:
            name = item
            info: dict[str, Any] | None = None
        elif type(item) is dict:
            name = item.get("c")
            if type(name) is not str:
                return None
            info = {k: v for k, v in item.items() if k != "c"}
            if len(info) > _INFO_KEYS_MAX:
                return None
            for key, detail in info.items():
                if _INFO_KEY.fullmatch(key) is None or not _scalar(detail):
                    return None
        else:
            return None
        if not 1 <= len(name) <= _COMPONENT_NAME_MAX or not name.isprintable():
            return None
        if info:
            entry = {"c": name, **info}
            items.append(entry)
            detailed.append(entry)
        else:
            items.append(name)
        names[name] = None
    return orjson.dumps(items).decode(), tuple(names), detailed


_START_REQUIRED = frozenset({"correlator", "python_v", "platform.system", "tracking_level"})
_CLOSE_REQUIRED = frozenset({"correlator", "end", "execution_time"})
#: Entries kept per cache; a cache is emptied when full (hostile variety only costs speed).
_CACHE_MAX = 4096

# What the fast path has already checked, keyed by exact values. Only valid entries are
# kept, and only values that cannot be confused by equality (strings, None, JSON bytes):
# numbers and booleans are always checked per message, since ``1 == 1.0 == True``.
_shapes: dict[tuple[str, ...], tuple[bool, str | None, str | None] | None] = {}
_start_parts: dict[tuple[Any, ...], tuple[str | None, tuple[str, ...]]] = {}
_close_parts: dict[tuple[Any, ...], tuple[str, tuple[str, ...], int | None, int | None]] = {}


def _shape(keys: tuple[str, ...]) -> tuple[bool, str | None, str | None] | None:
    """``(is_close, product, product_key)`` for a set of keys the fast path handles."""
    if "product" in keys or "version" in keys:
        return None
    named = [k for k in keys if k.endswith("_v") and k != "python_v"]
    if len(named) > 1:
        return None
    product_key = named[0] if named else None
    product = product_key[:-2] if product_key else None
    if product is not None and (_PRODUCT.fullmatch(product) is None or product == "python"):
        return None
    rest = set(keys) - set(named)
    if "end" in rest:
        if not (_CLOSE_REQUIRED <= rest <= _CLOSE_KEYS):
            return None
        return True, product, product_key
    if product is None or not (_START_REQUIRED <= rest <= _START_KEYS):
        return None
    return False, product, product_key


def _project_ok(value: object) -> bool:
    return value is None or (
        type(value) is str
        and 1 <= len(value) <= PROJECT_NAME_MAX
        and value.isprintable()
        and value == value.strip()
    )


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value


def fast_parse(datagram: bytes, received: int) -> Record | None:
    """The record for a clean, common datagram; ``None`` when ``_wire.decode`` must judge."""
    if not 1 < len(datagram) <= MAX_DATAGRAM or datagram[0] != 0x31:  # b"1"
        return None
    try:
        data = orjson.loads(datagram[1:])
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict:
        return None
    keys = tuple(data)
    shape = _shapes.get(keys, False)
    if shape is False:
        shape = _shape(keys)
        _remember(_shapes, keys, shape)
    if shape is None:
        return None
    is_close, product, product_key = shape  # type: ignore[misc]
    correlator = data["correlator"]
    if type(correlator) is not str or _UUID.fullmatch(correlator) is None:
        return None
    truncated = data.get("components_truncated", False)
    if type(truncated) is not bool:
        return None
    level = data.get("tracking_level")
    if level is not None and (type(level) is not int or not 1 <= level <= 3):
        return None
    version = data[product_key] if product_key is not None else None
    project = data.get("project_name")
    python_v = data.get("python_v")
    platform = data.get("platform.system")
    for text in (version, project, python_v, platform):
        if text is not None and type(text) is not str:
            return None
    components = data.get("components", None if not is_close else [])
    parts_key = (
        product,
        version,
        project,
        None if components is None else orjson.dumps(components),
        python_v,
        platform,
    )
    if is_close:
        return _fast_close(data, correlator, product, level, parts_key, received)
    start = data.get("start")
    if level is None or (start is not None and not _epoch(start)):
        return None
    parts = _start_parts.get(parts_key)
    if parts is None:
        if not (
            _token(version)
            and _token(parts_key[4])
            and _token(parts_key[5])
            and _project_ok(project)
        ):
            return None
        if components is None:
            parts = (None, ())
        else:
            checked = _fast_components(components)
            if checked is None:
                return None
            parts = checked[0], checked[1]
        _remember(_start_parts, parts_key, parts)
    return Record(
        "start", correlator, product, version, parts_key[4], parts_key[5], level, project,
        parts[0], parts[1], start, None, None, None, None, received,
    )  # fmt: skip


def _fast_close(
    data: dict[str, Any],
    correlator: str,
    product: str | None,
    level: int | None,
    parts_key: tuple[Any, ...],
    received: int,
) -> Record | None:
    end = data["end"]
    duration = data["execution_time"]
    if type(duration) is int:
        duration = float(duration)
    if not _epoch(end) or type(duration) is not float or not 0.0 <= duration <= _DURATION_MAX:
        return None
    version = parts_key[1]
    parts = _close_parts.get(parts_key)
    if parts is None:
        if (product is not None and not _token(version)) or not _project_ok(parts_key[2]):
            return None
        checked = _fast_components(data.get("components", []))
        if checked is None:
            return None
        text, _, detailed = checked
        count: int | None = None
        fails: int | None = None
        for entry in detailed:
            app_count = entry.get("app_count")
            app_fails = entry.get("app_fails")
            if (
                type(app_count) is int
                and type(app_fails) is int
                and app_count >= 0
                and app_fails >= 0
            ):
                count, fails = app_count, app_fails
                break
        listed: list[Any] = data.get("components", [])
        found: dict[str, None] = {}
        for item in listed:
            if type(item) is str:
                found[item] = None
            elif "app_count" not in item:
                found[item["c"]] = None
        names = tuple(found)
        parts = (text, names, count, fails)
        _remember(_close_parts, parts_key, parts)
    return Record(
        "close", correlator, product, version, None, None, level, parts_key[2],
        parts[0], parts[1], None, end, duration, parts[2], parts[3], received,
    )  # fmt: skip
