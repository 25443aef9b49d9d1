"""One tracked run above level 0: its route, lock, phase, times, counts and span, in one object.

``UsageTracker`` makes one with :func:`open_run` only when the effective level is 1-3 (at level 0
it holds ``None`` and nothing here exists). Which class is made says what the run sends, so no
method asks for the level:

- :class:`ActiveRun` (levels 1 and 2): the start message only; apps are not counted.
- :class:`ExecutionRun` (level 3): counts apps and sends a close message.
- :class:`HeartbeatRun` (level 3 with ``Config.heartbeat_interval``): also a progress message
  after each interval while it is open, sent by the worker's timer (``_transport``, ``_timer``).

The calling thread only takes times and counts and queues a :class:`~._transport.Job` holding
``_facts``; the worker builds the message (``_collect.build``).
"""

from __future__ import annotations

import enum
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING

from attrs import define, field

from . import _exit, _transport
from ._config import Config, Level, Product
from ._facts import CloseFacts, ProgressFacts, StartFacts
from ._guard import capture_internal_exceptions

if TYPE_CHECKING:
    from ._consent import Decision
    from ._otel import RunSpan

__all__ = ["ActiveRun", "ExecutionRun", "HeartbeatRun", "Phase", "open_run"]


class Phase(enum.Enum):
    """Where a run is in its life; it only moves forward."""

    NEW = "new"
    STARTED = "started"
    CLOSED = "closed"


#: Every run that may count apps, so a forked child can replace their locks.
_live: weakref.WeakSet[ActiveRun] = weakref.WeakSet()


def open_run(
    config: Config, product: Product, correlator: str, decision: Decision
) -> ActiveRun | None:
    """The run for ``decision``'s effective level; None at level 0 (nothing is made)."""
    level = decision.level
    if level == Level.OFF:
        return None
    route = _transport.Route(
        product=product.name,
        env_var=product.env_prefix,
        correlator=correlator,
        level=int(level),
        endpoint=decision.endpoint,
        log_path=decision.log_path,
        preview=bool(decision.debug),
        log_limits=decision.log_limits,
    )
    span = None
    if decision.otel is not None:
        with capture_internal_exceptions():  # a span that cannot be made leaves the run alone
            span = _open_span(product, decision.otel, route)
    run: ActiveRun
    if level < Level.EXECUTION:
        run = ActiveRun(product, config, level, route, span)
    elif config.heartbeat_interval is None:
        run = ExecutionRun(product, config, level, route, span)
    else:
        run = HeartbeatRun(product, config, level, route, span, interval=config.heartbeat_interval)
    _live.add(run)
    return run


def _open_span(product: Product, setting: str, route: _transport.Route) -> RunSpan | None:
    """The run's span as ``<PRODUCT>_USAGE_TRACKING_OTEL`` asks; None if it cannot be made.

    ``_consent`` gives no setting in preview mode, so a preview run has no span.
    """
    from ._otel import run_span  # imported only when spans are asked for

    return run_span(product, setting, route.log_path)


@define(eq=False)
class ActiveRun:
    """A run at level 1 or 2: it sends its start message and ends its span, nothing more."""

    product: Product
    config: Config
    #: The run's effective level (1-3).
    level: Level
    route: _transport.Route
    #: The run's OpenTelemetry span, when ``<PRODUCT>_USAGE_TRACKING_OTEL`` asks for one.
    span: RunSpan | None = None
    lock: threading.Lock = field(factory=threading.Lock, kw_only=True)
    phase: Phase = field(default=Phase.NEW, kw_only=True)
    #: The process that started the run: only it may close it.
    pid: int = field(default=0, kw_only=True)
    #: ``time.monotonic()`` at ``start()``.
    started: float = field(default=0.0, kw_only=True)
    app_count: int = field(default=0, kw_only=True)
    app_fails: int = field(default=0, kw_only=True)

    def start(self) -> None:
        """Queue the start message; a second call does nothing."""
        with self.lock:
            if self.phase is not Phase.NEW:
                return
            self.phase = Phase.STARTED
        self.pid = os.getpid()
        wall = time.time()
        self.started = time.monotonic()
        _exit.register(self)
        if self.span is not None:
            self.span.begin(wall)
        _transport.submit(self._start_job(wall))

    def _start_job(self, wall: float) -> _transport.Job:
        facts = StartFacts(self.product, self.config, self.route.correlator, self.level, wall)
        return _transport.Job(self.route, facts, self.span)

    def record_app(self, *, failed: bool = False) -> None:
        """Apps are counted at level 3 only."""

    def close(self, timeout: float | None) -> None:
        """End the run, queue its close message if it has one, wait for delivery.

        The wait is at most ``timeout`` seconds (None: ``_transport.DRAIN_TIMEOUT``).
        """
        facts = self.end()
        if facts is None:
            return
        job = self.close_job(facts)
        if job is not None:
            _transport.submit(job)
        _transport.hurry(self.route)
        _transport.flush(_transport.DRAIN_TIMEOUT if timeout is None else max(0.0, timeout))

    def end(self) -> CloseFacts | None:
        """Mark the run closed and end its span; its end time and final counts.

        None when there is nothing to close: not started, already closed, or started in
        another process (before ``os.fork()``).
        """
        with self.lock:
            if self.phase is not Phase.STARTED:
                self.phase = Phase.CLOSED
                return None
            self.phase = Phase.CLOSED
            apps, fails = self.app_count, self.app_fails
        _exit.unregister(self)
        if self.pid != os.getpid():
            return None
        facts = CloseFacts(
            self.product,
            self.config,
            self.route.correlator,
            time.time(),
            time.monotonic() - self.started,
            apps,
            fails,
        )
        if self.span is not None:
            with capture_internal_exceptions():
                self._end_span(self.span, facts)
        return facts

    def _end_span(self, span: RunSpan, facts: CloseFacts) -> None:
        span.finish(facts.end)

    def close_job(self, facts: CloseFacts) -> _transport.Job | None:
        """The close message's job: none below level 3."""
        return None

    def reset_after_fork(self) -> None:
        """In a forked child: locks held by the parent's other threads are never released."""
        self.lock = threading.Lock()
        if self.span is not None:
            self.span.reset_after_fork()


@define(eq=False)
class ExecutionRun(ActiveRun):
    """A run at level 3: it also counts apps and sends a close message."""

    def record_app(self, *, failed: bool = False) -> None:
        """Count one app; ``failed=True`` also counts it as a failure."""
        with self.lock:
            self.app_count += 1
            if failed:
                self.app_fails += 1

    def _end_span(self, span: RunSpan, facts: CloseFacts) -> None:
        span.finish(
            facts.end,
            execution_time=facts.execution_time,
            app_count=facts.app_count,
            app_fails=facts.app_fails,
        )

    def close_job(self, facts: CloseFacts) -> _transport.Job | None:
        """The close message's job."""
        return _transport.Job(self.route, facts, span=self.span)


@define(eq=False)
class HeartbeatRun(ExecutionRun):
    """A level-3 run that sends a progress message after each ``interval`` while open.

    The worker's timer calls :meth:`beat`; its start job schedules the heartbeats and its
    close job cancels them (see ``_transport.Job.heartbeats``).
    """

    interval: float = field(default=3600.0, kw_only=True)
    #: Heartbeats sent so far.
    beats: int = field(default=0, kw_only=True)

    def _start_job(self, wall: float) -> _transport.Job:
        job = super()._start_job(wall)
        job.heartbeats = self
        return job

    def close_job(self, facts: CloseFacts) -> _transport.Job | None:
        """The close message's job, which also cancels the heartbeats."""
        return _transport.Job(self.route, facts, span=self.span, heartbeats=self)

    def beat(self) -> _transport.Job | None:
        """On the worker: the next progress message's job; None once the run is closed."""
        with self.lock:
            if self.phase is not Phase.STARTED:
                return None
            self.beats += 1
            seq, apps, fails = self.beats, self.app_count, self.app_fails
        facts = ProgressFacts(
            self.product,
            self.config,
            self.route.correlator,
            seq,
            time.monotonic() - self.started,
            apps,
            fails,
        )
        return _transport.Job(self.route, facts, span=self.span)


def _after_fork_in_child() -> None:
    for run in list(_live):
        run.reset_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
