"""What each level contributes to a message, and the walk that names the components.

- Level 1: the product's version, ``platform.python_version()``, ``platform.system()``.
- Level 2: level 1 plus ``components``, a flat depth-first list of qualified class names.
- Level 3: level 2 plus the ``start`` time, and the close message whose first component is
  ``{"c": <product name>, "app_count": N, "app_fails": M}``; while the run is open, a progress
  message (a heartbeat) after each ``Config.heartbeat_interval`` with the counts so far.

The worker calls :func:`build` with what the calling thread recorded (``_facts``).

The walk starts at ``Config.components`` (every root is named, whatever its type) and
descends only into what describes itself structurally: attrs instances, dataclasses, lists
and tuples. It never calls ``getattr`` with names taken from ``__init__`` parameters (the
call that crashed Parsl), it has a depth limit, a cycle guard and a cap on the number of
components, and nothing in it can raise: an object that fails to describe itself is
reported by name only, and a child that cannot be read is skipped.
"""

from __future__ import annotations

import dataclasses
import functools
import platform
from collections.abc import Iterator, Mapping

import attrs

from . import _wire_rules as rules
from ._config import Config, Level, Product
from ._facts import Facts, ProgressFacts, StartFacts
from ._wire import CloseMessage, Component, Message, ProgressMessage, StartMessage
from .typing import Scalar

__all__ = [
    "MAX_COMPONENTS",
    "MAX_DEPTH",
    "build",
    "build_close",
    "build_progress",
    "build_start",
    "walk_components",
]

#: How deep the walk descends below a root (a root is depth 0).
MAX_DEPTH = 4
#: At most this many components are named (the wire's limit); the message says
#: ``components_truncated`` beyond.
MAX_COMPONENTS = rules.COMPONENTS_MAX
_SCALARS = (str, bytes, int, float, complex, bool, type(None))


@functools.cache
def _platform() -> tuple[str, str]:
    """Python version and platform name; microseconds, computed once per process."""
    python_v = platform.python_version() or "unknown"
    system = platform.system() or "unknown"
    most = rules.TOKEN_MAX
    return python_v.replace(" ", "_")[:most], system.replace(" ", "_")[:most]


def build(facts: Facts) -> Message:
    """The message that ``facts`` asks for (on the worker)."""
    if isinstance(facts, StartFacts):
        return build_start(facts.product, facts.config, facts.level, facts.correlator, facts.wall)
    if isinstance(facts, ProgressFacts):
        return build_progress(
            facts.product,
            facts.config,
            facts.correlator,
            seq=facts.seq,
            execution_time=facts.execution_time,
            app_count=facts.app_count,
            app_fails=facts.app_fails,
        )
    return build_close(
        facts.product,
        facts.config,
        facts.correlator,
        end=facts.end,
        execution_time=facts.execution_time,
        app_count=facts.app_count,
        app_fails=facts.app_fails,
    )


def build_start(
    product: Product, config: Config, level: Level, correlator: str, wall: float
) -> StartMessage:
    """The start message of a run at ``level`` (1-3), started at epoch time ``wall``."""
    python_v, system = _platform()
    components: tuple[Component, ...] | None = None
    truncated = False
    if level >= Level.COMPONENTS:
        components, truncated = walk_components(config.components)
    return StartMessage(
        correlator=correlator,
        product=product.name,
        version=product.version,
        python_v=python_v,
        platform_system=system,
        tracking_level=int(level),
        project_name=config.project_name,
        components=components,
        components_truncated=truncated,
        # A clock the wire cannot take (before 2020, after 2099) sends no start time.
        start=int(wall) if level >= Level.EXECUTION and rules.is_epoch(int(wall)) else None,
    )


def build_close(
    product: Product,
    config: Config,
    correlator: str,
    *,
    end: float,
    execution_time: float,
    app_count: int,
    app_fails: int,
) -> CloseMessage:
    """The close message of a level-3 run: app counts first, then the components again.

    Counts are clamped to what the wire takes (0 .. 2**31-1, failures at most the count)
    and the run time to 0 .. one year, so the collector never refuses the message.
    """
    apps = rules.clamp_count(app_count)
    counts = Component(
        product.name, {"app_count": apps, "app_fails": min(rules.clamp_count(app_fails), apps)}
    )
    components, truncated = walk_components(config.components, limit=MAX_COMPONENTS - 1)
    listed: tuple[Component, ...] = (counts, *components)
    return CloseMessage(
        correlator=correlator,
        product=product.name,
        version=product.version,
        tracking_level=int(Level.EXECUTION),
        project_name=config.project_name,
        end=int(end),
        execution_time=rules.clamp_duration(execution_time),
        components=listed,
        components_truncated=truncated,
    )


def build_progress(
    product: Product,
    config: Config,
    correlator: str,
    *,
    seq: int,
    execution_time: float,
    app_count: int,
    app_fails: int,
) -> ProgressMessage:
    """Heartbeat ``seq`` of a level-3 run that is still open: its counts and time so far.

    Clamped as the close message is (``build_close``), so the collector never refuses it.
    """
    apps = rules.clamp_count(app_count)
    return ProgressMessage(
        correlator=correlator,
        product=product.name,
        version=product.version,
        tracking_level=int(Level.EXECUTION),
        project_name=config.project_name,
        heartbeat=max(1, rules.clamp_count(seq)),
        execution_time=rules.clamp_duration(execution_time),
        app_count=apps,
        app_fails=min(rules.clamp_count(app_fails), apps),
    )


def walk_components(
    roots: object, *, max_depth: int = MAX_DEPTH, limit: int = MAX_COMPONENTS
) -> tuple[tuple[Component, ...], bool]:
    """Name ``roots`` and what they contain, depth first; return ``(components, truncated)``.

    ``truncated`` is true when ``limit`` cut the list short.
    """
    found: list[Component] = []
    seen: set[int] = set()
    try:
        for obj in _items(roots):
            if not _visit(obj, 0, max_depth, limit, found, seen, root=True):
                return tuple(found), True
    except Exception:  # a container that cannot be iterated ends the walk
        pass
    return tuple(found), False


def _visit(
    obj: object,
    depth: int,
    max_depth: int,
    limit: int,
    found: list[Component],
    seen: set[int],
    *,
    root: bool = False,
) -> bool:
    """Add ``obj`` and its children to ``found``; return False when ``limit`` is reached."""
    if id(obj) in seen:
        return True
    seen.add(id(obj))
    if isinstance(obj, list | tuple):
        if depth >= max_depth:
            return True
        for item in _items(obj):
            if not _visit(item, depth + 1, max_depth, limit, found, seen, root=root):
                return False
        return True
    if not root and not _is_component(obj):
        return True
    if len(found) >= limit:
        return False
    found.append(describe(obj))
    if depth >= max_depth:
        return True
    return all(_visit(child, depth + 1, max_depth, limit, found, seen) for child in _children(obj))


def _items(container: object) -> Iterator[object]:
    """The elements of a list or tuple (a snapshot, so a host thread may mutate it)."""
    if isinstance(container, list | tuple):
        yield from tuple(container)


def _is_component(obj: object) -> bool:
    """Whether a child value is worth naming: it describes itself or is a structured record."""
    cls = type(obj)
    if isinstance(obj, _SCALARS):
        return False
    try:
        if attrs.has(cls) or dataclasses.is_dataclass(cls):
            return True
        return callable(getattr(cls, "usage_information", None))
    except Exception:  # a class that cannot be inspected is not named
        return False


def _children(obj: object) -> Iterator[object]:
    """Field values of an attrs instance or a dataclass; nothing for other objects."""
    cls = type(obj)
    try:
        if attrs.has(cls):
            names = [a.name for a in attrs.fields(cls)]
        elif dataclasses.is_dataclass(cls):
            names = [f.name for f in dataclasses.fields(cls)]
        else:
            return
    except Exception:  # an odd class is named but not descended into
        return
    for name in names:
        try:
            value = object.__getattribute__(obj, name)
        except Exception:  # an unset slot or a raising property: skip it
            continue
        yield value


def describe(obj: object) -> Component:
    """One component: the qualified class name and, when valid, its ``usage_information()``."""
    name = qualified_name(type(obj))
    info = _usage_information(obj)
    if info:
        try:
            return Component(name, info)
        except (ValueError, TypeError):
            pass
    return Component(name)


def qualified_name(cls: type) -> str:
    """``module.QualName`` of a class, clipped to what the wire accepts."""
    try:
        module = cls.__module__
        qualname = cls.__qualname__
        name = f"{module}.{qualname}" if isinstance(module, str) and module else str(qualname)
    except Exception:  # a class with odd attributes still has a name
        name = "unknown"
    name = "".join(c if c.isprintable() else "?" for c in name)
    return name[: rules.COMPONENT_NAME_MAX] or "unknown"


def _usage_information(obj: object) -> dict[str, Scalar] | None:
    """The details an object reports about itself when the wire takes them, else None."""
    try:
        if not callable(getattr(type(obj), "usage_information", None)):
            return None
        raw = object.__getattribute__(obj, "usage_information")()
        if not isinstance(raw, Mapping) or len(raw) > rules.INFO_KEYS_MAX:
            return None
        info = dict(raw)
        if rules.info_problem(info) is not None:
            return None
    except Exception:  # a component that raises is reported by name only
        return None
    return info
