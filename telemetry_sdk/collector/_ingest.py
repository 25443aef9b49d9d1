"""From a datagram to a ``Record``: what the store needs to know about one message.

The authority is ``telemetry_sdk._wire.decode``: the same cattrs schema and validators as
the SDK, all of whose rules live in ``telemetry_sdk._wire_rules``. A rejected datagram
raises ``DecodeError`` with a stable reason. A fast path (below) takes the common messages
at a third of the cost, checking them with the same rules, and hands everything else to
``_wire.decode``.
"""

from __future__ import annotations

import time
from typing import Any, Literal, NamedTuple

import orjson

from .. import _wire_rules as rules
from .._environment import reports_ci
from .._wire import (
    MAX_DATAGRAM,
    Component,
    Message,
    ProgressMessage,
    StartMessage,
    _unstructure_component,
    decode,
)

__all__ = ["Record", "parse", "record_from_message"]


class Record(NamedTuple):
    """One accepted message, flattened for the store.

    ``product`` is ``None`` only for a Parsl close, which names no product: the store joins
    it to its run by correlator. ``received`` is the collector's clock, in epoch seconds.
    A progress message (a heartbeat) carries its number in ``heartbeat``, its counts and run
    time so far, and no components.
    (A named tuple rather than an attrs class: one is built per datagram, and a frozen
    attrs class costs 2.5 us to build against 0.4 us.)
    """

    kind: Literal["start", "progress", "close"]
    correlator: str
    product: str | None
    version: str | None
    python_v: str | None
    platform: str | None
    level: int | None
    project: str | None
    #: The components as sent (JSON text of the wire list), or ``None`` when absent.
    components: str | None
    start: int | None
    end: int | None
    execution_time: float | None
    app_count: int | None
    app_fails: int | None
    received: int
    #: Whether the run came from CI, as its ``telemetry_sdk.Environment`` component says;
    #: ``None`` when the message lists no such component (or is a progress message).
    ci: bool | None = None
    #: A progress message's number (1, 2, ...); ``None`` for the others.
    heartbeat: int | None = None


def components_ci(components: tuple[Component, ...]) -> bool | None:
    """What the message's ``Environment`` component says about CI (``_environment``'s rule)."""
    for component in components:
        found = reports_ci(component.name, component.info)
        if found is not None:
            return found
    return None


def _wire_components(components: tuple[Component, ...]) -> str:
    return orjson.dumps([_unstructure_component(c) for c in components]).decode()


def _app_counts(components: tuple[Component, ...]) -> tuple[int | None, int | None]:
    """The first component reporting both ``app_count`` and ``app_fails`` (valid by the rules)."""
    for component in components:
        info = component.info
        if "app_count" in info and "app_fails" in info:
            return info["app_count"], info["app_fails"]  # type: ignore[return-value]
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
            start=message.start,
            end=None,
            execution_time=None,
            app_count=None,
            app_fails=None,
            received=when,
            ci=None if components is None else components_ci(components),
        )
    if isinstance(message, ProgressMessage):
        return Record(
            kind="progress",
            correlator=message.correlator,
            product=message.product,
            version=message.version,
            python_v=None,
            platform=None,
            level=message.tracking_level,
            project=message.project_name,
            components=None,
            start=None,
            end=None,
            execution_time=message.execution_time,
            app_count=message.app_count,
            app_fails=message.app_fails,
            received=when,
            heartbeat=message.heartbeat,
        )
    count, fails = _app_counts(message.components)
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
        start=None,
        end=message.end,
        execution_time=message.execution_time,
        app_count=count,
        app_fails=fails,
        received=when,
        ci=components_ci(message.components),
    )


def parse(datagram: bytes, received: int) -> Record:
    """Decode and validate one datagram; raise ``DecodeError`` (with a reason) if invalid.

    A fast path takes the common, clean messages; anything it is not sure about goes
    through ``_wire.decode``, which has the last word (and says why it rejects).
    """
    record = fast_parse(datagram, received)
    if record is None:
        record = record_from_message(decode(datagram, received=received), received)
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


def _fast_components(
    value: object,
) -> tuple[str, int | None, int | None, int, bool | None] | None:
    """Check a components list; its JSON, the app counts it reports, its keys and CI flag."""
    if type(value) is not list or len(value) > rules.COMPONENTS_MAX:
        return None
    items: list[Any] = []
    count: int | None = None
    fails: int | None = None
    ci: bool | None = None
    keys = 0
    for item in value:
        name: Any
        if type(item) is str:
            name = item
            info: dict[str, Any] | None = None
        elif type(item) is dict:
            name = item.get("c")
            keys += len(item)
            info = {k: v for k, v in item.items() if k != "c"}
            if rules.info_problem(info) is not None:
                return None
        else:
            return None
        if not rules.is_component_name(name):
            return None
        if info:
            items.append({"c": name, **info})
            if count is None and "app_count" in info and "app_fails" in info:
                count, fails = info["app_count"], info["app_fails"]
            if ci is None:
                ci = reports_ci(name, info)
        else:
            items.append(name)
    return orjson.dumps(items).decode(), count, fails, keys, ci


_START_REQUIRED = frozenset({"correlator", "python_v", "platform.system", "tracking_level"})
_CLOSE_REQUIRED = frozenset({"correlator", "end", "execution_time"})
#: Entries kept per cache; a cache is emptied when full (hostile variety only costs speed).
_CACHE_MAX = 4096

# What the fast path has already checked, keyed by exact values. Only valid entries are
# kept, and only values that cannot be confused by equality (strings, None, JSON bytes):
# numbers and booleans are always checked per message, since ``1 == 1.0 == True``.
_shapes: dict[tuple[str, ...], tuple[bool, str | None, str | None] | None] = {}
# Each entry ends with the number of keys in the component objects (for the duplicate check).
_start_parts: dict[tuple[Any, ...], tuple[str | None, int, bool | None]] = {}
_close_parts: dict[tuple[Any, ...], tuple[str, int | None, int | None, int, bool | None]] = {}


def _shape(keys: tuple[str, ...]) -> tuple[bool, str | None, str | None] | None:
    """``(is_close, product, product_key)`` for a set of keys the fast path handles."""
    if "product" in keys or "version" in keys:
        return None
    named = [k for k in keys if k.endswith("_v") and k != "python_v"]
    if len(named) > 1:
        return None
    product_key = named[0] if named else None
    product = product_key[:-2] if product_key else None
    if product is not None and not rules.is_product_name(product):
        return None
    rest = set(keys) - set(named)
    if "end" in rest:
        if not (_CLOSE_REQUIRED <= rest <= _CLOSE_KEYS):
            return None
        return True, product, product_key
    if product is None or not (_START_REQUIRED <= rest <= _START_KEYS):
        return None
    return False, product, product_key


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value


def _time_ok(value: object, received: int) -> bool:
    return rules.is_epoch(value) and rules.not_after_receipt(value, received)  # type: ignore[arg-type]


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
    components = data.get("components", None if not is_close else [])
    correlator = data["correlator"]
    if not rules.is_uuid4(correlator):
        return None
    truncated = data.get("components_truncated", False)
    if type(truncated) is not bool:
        return None
    level = data.get("tracking_level")
    if level is not None and not rules.is_level(level):
        return None
    version = data[product_key] if product_key is not None else None
    project = data.get("project_name")
    python_v = data.get("python_v")
    platform = data.get("platform.system")
    for text in (version, project, python_v, platform):
        if text is not None and type(text) is not str:
            return None
    parts_key = (
        product,
        version,
        project,
        None if components is None else orjson.dumps(components),
        python_v,
        platform,
    )
    if is_close:
        return _fast_close(
            datagram, data, correlator, product, level, parts_key, components, received
        )
    start = data.get("start")
    if level is None or (start is not None and not _time_ok(start, received)):
        return None
    parts = _start_parts.get(parts_key)
    if parts is None:
        if not (
            rules.is_token(version)
            and rules.is_token(python_v)
            and rules.is_token(platform)
            and (project is None or rules.is_project_name(project))
        ):
            return None
        if components is None:
            parts = (None, 0, None)
        else:
            checked = _fast_components(components)
            if checked is None:
                return None
            parts = (checked[0], checked[3], checked[4])
        _remember(_start_parts, parts_key, parts)
    # orjson keeps the last of two equal keys; one rule says when none can have been repeated.
    if rules.may_have_duplicate_keys(datagram, len(data) + parts[1]):
        return None
    return Record(
        "start", correlator, product, version, python_v, platform, level, project,
        parts[0], start, None, None, None, None, received, parts[2],
    )  # fmt: skip


def _fast_close(
    datagram: bytes,
    data: dict[str, Any],
    correlator: str,
    product: str | None,
    level: int | None,
    parts_key: tuple[Any, ...],
    components: object,
    received: int,
) -> Record | None:
    end = data["end"]
    duration = rules.as_duration(data["execution_time"])
    if not _time_ok(end, received) or not rules.is_duration(duration):
        return None
    version = parts_key[1]
    project = parts_key[2]
    parts = _close_parts.get(parts_key)
    if parts is None:
        if (product is not None and not rules.is_token(version)) or not (
            project is None or rules.is_project_name(project)
        ):
            return None
        parts = _fast_components(components)
        if parts is None:
            return None
        _remember(_close_parts, parts_key, parts)
    if rules.may_have_duplicate_keys(datagram, len(data) + parts[3]):
        return None
    return Record(
        "close", correlator, product, version, None, None, level, project,
        parts[0], None, end, duration, parts[1], parts[2], received, parts[4],
    )  # fmt: skip
