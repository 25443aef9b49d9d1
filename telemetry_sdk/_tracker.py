"""``UsageTracker``: the lifecycle of one run (start, apps, close) and the exit hook.

The calling thread never does more than take a time stamp, bump a counter or queue a job;
building, logging and sending happen on the worker (see ``_transport``). Runs left open are
closed by an ``atexit`` hook and, in ``multiprocessing`` children (which end with
``os._exit``), by a ``multiprocessing.util.Finalize`` that runs in the child's own shutdown.
When the effective level is 0 nothing is built: no route, no lock, no thread, no socket, no
file, no log line.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
import weakref
from typing import TYPE_CHECKING

from attrs import define, field

from ._config import Config, Level, Product
from ._errors import ConfigurationError
from ._guard import capture_internal_exceptions

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from . import _consent, _transport
    from ._otel import RunSpan
    from ._wire import CloseMessage, Message, StartMessage
else:
    # ``import telemetry_sdk`` loads only this module's own needs. ``_consent`` (the calling
    # thread's decision) and ``_transport`` are imported when a tracker at level 1-3 is made
    # (see ``_load_runtime``); ``_collect`` and ``_wire`` only on the worker. At level 0 none
    # of them is ever imported.
    _consent = _transport = None


def _load_runtime() -> None:
    """Import what a tracker at level 1-3 needs, once, into this module's globals."""
    global _consent, _transport
    if _transport is None:
        from . import _consent, _transport


__all__ = ["UsageTracker"]

_NEW, _STARTED, _CLOSED = 0, 1, 2

#: Trackers that started and have not closed: the exit hook closes them. Strong references,
#: so a run whose tracker the host dropped without ``close()`` still sends its close at exit.
_open: set[UsageTracker] = set()
#: Every tracker that may count apps, so a forked child can replace their locks.
_live: weakref.WeakSet[UsageTracker] = weakref.WeakSet()
_registry_lock = threading.Lock()
_atexit_registered = False
#: The process that checked whether it is a multiprocessing child (and then registered the
#: shutdown hook); 0: none yet. A forked child checks again.
_finalizer_pid = 0
#: Runs after the host's own ``Finalize`` callbacks of priority 0-9 and before those above.
_FINALIZE_PRIORITY = 10


def _new_correlator() -> str:
    """A random (version 4) UUID string, made without importing ``uuid``."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@define(eq=False)
class UsageTracker:
    """Tracks one run of the host library at the level its user opted into.

    >>> with UsageTracker(config, PRODUCT) as tracker:   # the start message
    ...     tracker.record_app()                          # an app that succeeded
    ...     tracker.record_app(failed=True)               # an app that failed
    ... # the close message (level 3), then a bounded wait for delivery

    Only a wrong ``config`` or ``product`` type raises; nothing else here ever does.
    """

    config: Config
    product: Product
    #: The run's UUID, shared by its start and close messages.
    correlator: str = field(init=False, factory=_new_correlator)
    _decision: _consent.Decision | None = field(init=False, default=None)
    _level: int = field(init=False, default=0)
    _route: _transport.Route | None = field(init=False, default=None)
    _lock: threading.Lock | None = field(init=False, default=None)
    _phase: int = field(init=False, default=_NEW)
    _pid: int = field(init=False, default=0)
    _mono0: float = field(init=False, default=0.0)
    _apps: int = field(init=False, default=0)
    _fails: int = field(init=False, default=0)
    #: The run's OpenTelemetry span, when ``<PRODUCT>_USAGE_TRACKING_OTEL`` asks for one.
    _span: RunSpan | None = field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.config, Config):
            msg = f"config must be a telemetry_sdk.Config, got {type(self.config).__name__}"
            raise ConfigurationError(msg)
        if not isinstance(self.product, Product):
            msg = f"product must be a telemetry_sdk.Product, got {type(self.product).__name__}"
            raise ConfigurationError(msg)
        if self.config.usage_tracking == Level.OFF:
            return  # off is decided by the application alone; nothing else is consulted
        with capture_internal_exceptions():
            _load_runtime()
            decision = _consent.decide(self.config, self.product)
            self._decision = decision
            if decision.level == Level.OFF:
                return
            self._route = _transport.Route(
                product=self.product.name,
                env_var=self.product.env_prefix,
                correlator=self.correlator,
                level=int(decision.level),
                endpoint=decision.endpoint,
                log_path=decision.log_path,
                preview=bool(decision.debug),
                log_limits=decision.log_limits,
            )
            self._lock = threading.Lock()
            self._level = int(decision.level)
            _live.add(self)
        with capture_internal_exceptions():
            self._span = _open_span(self.product, self._route)

    @property
    def level(self) -> Level:
        """The effective level: the lowest of the config and every outside setting."""
        return Level(self._level)

    @property
    def decision(self) -> _consent.Decision | None:
        """The effective level and which source set it.

        When the config says 0 it is worked out on request (reading nothing outside the
        configuration); ``None`` only if deciding failed, in which case tracking is off.
        """
        if self._decision is None and self.config.usage_tracking == Level.OFF:
            with capture_internal_exceptions():
                _load_runtime()
                self._decision = _consent.decide(self.config, self.product)
        return self._decision

    def __enter__(self) -> UsageTracker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Queue the start message (levels 1-3). Costs microseconds; sends nothing itself."""
        route = self._route
        if route is None or self._phase != _NEW:
            return
        with capture_internal_exceptions():
            with self._lock:  # type: ignore[union-attr]
                if self._phase != _NEW:
                    return
                self._phase = _STARTED
            self._pid = os.getpid()
            wall = time.time()
            self._mono0 = time.monotonic()
            _register_open(self)
            build: Callable[[], Message] = functools.partial(
                _build_start, self.product, self.config, Level(self._level), self.correlator, wall
            )
            if self._span is not None:
                self._span.begin(wall)
                build = self._span.wrap(build)
            _transport.submit(_transport.Job(route, "start", build))

    def record_app(self, *, failed: bool = False) -> None:
        """Count one app run (level 3); ``failed=True`` also counts it as a failure."""
        if self._level != 3:
            return
        with self._lock:  # type: ignore[union-attr]
            self._apps += 1
            if failed:
                self._fails += 1

    def close(self, *, timeout: float | None = None) -> None:
        """Queue the close message (level 3) and wait at most ``timeout`` seconds for delivery.

        The default wait is ``DRAIN_TIMEOUT`` (0.5 s). Safe to call twice; never raises.
        A tracker started in another process (before ``os.fork()``) does nothing here.
        """
        with capture_internal_exceptions():
            finished = self._finish()
            if finished is None:
                return
            route, job = finished
            if job is not None:
                _transport.submit(job)
            _transport.hurry(route)
            _transport.flush(_transport.DRAIN_TIMEOUT if timeout is None else max(0.0, timeout))

    def _finish(self) -> tuple[_transport.Route, _transport.Job | None] | None:
        """Mark the run closed; return its route and close job (None below level 3).

        None when there is nothing to do: not started, already closed, or started in
        another process.
        """
        route = self._route
        if route is None or self._lock is None:
            return None
        with self._lock:
            if self._phase != _STARTED:
                self._phase = _CLOSED
                return None
            self._phase = _CLOSED
            apps, fails = self._apps, self._fails
        _open.discard(self)
        if self._pid != os.getpid():
            return None
        end, execution_time = time.time(), time.monotonic() - self._mono0
        if self._span is not None:
            _end_span(self._span, self._level, end, execution_time, apps, fails)
        if self._level != 3:
            return route, None
        build = functools.partial(
            _build_close,
            self.product,
            self.config,
            self.correlator,
            end,
            execution_time,
            apps,
            fails,
        )
        return route, _transport.Job(route, "close", build)


def _build_start(
    product: Product, config: Config, level: Level, correlator: str, wall: float
) -> StartMessage:
    from ._collect import build_start

    return build_start(product, config, level, correlator, wall)


def _build_close(
    product: Product,
    config: Config,
    correlator: str,
    end: float,
    execution_time: float,
    apps: int,
    fails: int,
) -> CloseMessage:
    from ._collect import build_close

    return build_close(
        product,
        config,
        correlator,
        end=end,
        execution_time=execution_time,
        app_count=apps,
        app_fails=fails,
    )


# -- OpenTelemetry spans (``_otel``): imported only when the variable asks for them --


def _open_span(product: Product, route: _transport.Route | None) -> RunSpan | None:
    """The run's span when ``<PRODUCT>_USAGE_TRACKING_OTEL`` is set and the level is 1-3."""
    value = os.environ.get(product.env_prefix + "_OTEL")
    if route is None or value is None or not value.strip():
        return None
    from ._otel import run_span

    return run_span(product, value, route.log_path)


def _end_span(
    span: RunSpan, level: int, end: float, execution_time: float, apps: int, fails: int
) -> None:
    """End the run's span; at level 3 with the close message's counts and times."""
    with capture_internal_exceptions():
        if level == Level.EXECUTION:
            span.finish(end, execution_time=execution_time, app_count=apps, app_fails=fails)
        else:
            span.finish(end)


def _register_open(tracker: UsageTracker) -> None:
    global _atexit_registered
    _open.add(tracker)
    if not _atexit_registered:
        import atexit  # here, not at the top: ``import telemetry_sdk`` adds no stdlib module

        with _registry_lock:
            if not _atexit_registered:
                atexit.register(_close_at_exit)
                _atexit_registered = True
    if _finalizer_pid != os.getpid():
        _register_multiprocessing_exit()


def _register_multiprocessing_exit() -> None:
    """In a multiprocessing child, close open runs in multiprocessing's own shutdown.

    Fork and forkserver children end with ``os._exit``, so ``atexit`` never runs there; a
    ``Finalize`` with an exit priority runs in ``multiprocessing.util._exit_function``, which
    every start method calls when the child's work ends normally (a ``Process`` returning, a
    pool worker leaving after ``close()``/``join()``). Nothing is imported for this: a host
    that uses multiprocessing has already loaded it.
    """
    global _finalizer_pid
    with _registry_lock:
        if _finalizer_pid == os.getpid():
            return
        _finalizer_pid = os.getpid()  # checked once per process
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is None or multiprocessing.parent_process() is None:
        return
    from multiprocessing import util

    util.Finalize(None, _close_at_exit, exitpriority=_FINALIZE_PRIORITY)


def _close_at_exit() -> None:
    """Close every tracker the host left open, without starting a thread; write the log out.

    Bounded: at most ``DRAIN_TIMEOUT`` for delivery, then at most ``LOG_DRAIN_TIMEOUT`` for the
    local log's last lines (a hung filesystem costs that much, never more).
    """
    with capture_internal_exceptions():
        trackers = list(_open)
        alive = _transport.worker_alive()
        for tracker in trackers:
            with capture_internal_exceptions():
                finished = tracker._finish()
                job = None if finished is None else finished[1]
                if job is None:
                    continue
                if alive:
                    _transport.submit(job)
                else:
                    _transport.send_inline(job)
        if alive:
            _transport.hurry()
            if not _transport.flush(_transport.DRAIN_TIMEOUT):
                _transport.take_over()  # the worker is stuck: settle its messages here
        _transport.flush_log()


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()
    for tracker in list(_live):
        if tracker._lock is not None:
            tracker._lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
