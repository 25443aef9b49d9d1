"""Delivery: one lazily started daemon worker per process, a bounded queue, a resolver with a
hard deadline, and a direct path for interpreter exit.

The calling thread only builds a :class:`Job` and puts it on the queue (:func:`submit`).
The worker builds the message (the component walk), encodes it, hands the payload line to the
local log (whose own thread writes the file, see ``_locallog``), resolves the destination once
(in a short-lived daemon thread, waited for at most :data:`RESOLVE_TIMEOUT`), sends the
datagram from a non-blocking UDP socket and hands over the outcome line. Socket errors are
outcomes, never exceptions.

At exit no thread may be started (Python 3.12 forbids it), so :func:`send_inline` does the
same work on the calling thread with the address already known, and never resolves. If the
worker itself is stuck at exit (a look-up it had to run on its own thread because no resolver
thread could start), :func:`take_over` gives its current message a ``failed`` outcome and
handles the queued ones on the exiting thread; :func:`_settle` makes sure each message gets
exactly one outcome, whoever decides it.

The worker also keeps the heartbeat timer (``_timer``): a level-3 run's start job schedules its
progress messages, its close job cancels them, and the worker waits on its queue no longer
than the next one is due. A heartbeat is one more job, handled between queued ones.

After ``os.fork()`` the child gets a fresh queue, fresh locks, no worker and no timer; the
parent's queued jobs are not sent twice and its runs' heartbeats are not sent from the child.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, Any, Protocol

from attrs import define, field

from . import _guard
from ._config import Endpoint
from ._facts import Facts, ProgressFacts, StartFacts
from ._timer import Timer

if TYPE_CHECKING:
    import socket
    from pathlib import Path

    from ._locallog import LogWriter
    from ._logsettings import LogLimits
    from ._otel import RunSpan

# Only the queue and the worker's bookkeeping are needed on the calling thread. The modules
# that build, encode, log and send (``_wire``, ``_locallog``, ``socket``, ``ipaddress``) are
# imported by the worker when it handles its first job, so the host's import and the
# calling thread never pay for them.

__all__ = [
    "DRAIN_TIMEOUT",
    "MAX_QUEUE",
    "RESOLVE_GRACE",
    "RESOLVE_TIMEOUT",
    "Heartbeats",
    "Job",
    "Route",
    "flush",
    "flush_log",
    "hurry",
    "send_inline",
    "submit",
    "take_over",
    "worker_alive",
]

#: How long ``close()`` and the exit hook wait for the queue to drain, in seconds.
DRAIN_TIMEOUT = 0.5
#: How long the worker waits for a name to resolve, once per run, in seconds.
RESOLVE_TIMEOUT = 1.0
#: Once a run is closing, a pending resolution gets at most this much longer, in seconds.
RESOLVE_GRACE = 0.15
#: Jobs beyond this many waiting are dropped (and counted, and logged as dropped).
MAX_QUEUE = 1000
_DROPPED_KEPT = 64

SockAddr = tuple[str, int] | tuple[str, int, int, int]


@define
class Route:
    """Where a run's messages go and how they are recorded; one per run.

    ``failure`` is set by the worker when the run's destination could not be resolved, so the
    run does not wait for the resolver twice.
    """

    product: str
    #: The product's consent variable, e.g. ``MINFLOW_USAGE_TRACKING`` (``Product.env_prefix``).
    env_var: str
    correlator: str
    level: int
    endpoint: Endpoint
    #: None when no log path could be worked out: the ``telemetry_sdk`` logger only.
    log_path: Path | None
    preview: bool
    log_limits: LogLimits
    failure: str | None = None
    #: ``time.monotonic()`` when the run began closing; -1 while it is open.
    closing_at: float = -1.0


class Heartbeats(Protocol):
    """A run that sends a progress message after each interval while it is open."""

    @property
    def interval(self) -> float:
        """Seconds between heartbeats."""

    @property
    def started(self) -> float:
        """``time.monotonic()`` at ``start()``: the first heartbeat is due one interval later."""

    def beat(self) -> Job | None:
        """The next progress message's job; None once the run is closed (no more beats)."""


@define(slots=True)
class Job:
    """One message to send: the worker builds it from ``facts`` (``_collect.build``)."""

    route: Route
    facts: Facts
    #: The run's OpenTelemetry span: told about the message once it is built.
    span: RunSpan | None = None
    #: A level-3 run's heartbeats: a start job schedules them, any other job cancels them.
    heartbeats: Heartbeats | None = None
    #: ``_QUEUED``, then ``_LOGGED`` (payload line written), then ``_SETTLED`` (outcome decided).
    stage: int = 0
    #: The datagram's size once it is built.
    nbytes: int | None = None

    @property
    def kind(self) -> str:
        """``start``, ``progress`` or ``close``: the local log's name for the message."""
        return self.facts.kind


_QUEUED, _LOGGED, _SETTLED = 0, 1, 2


@define
class _Resolution:
    """One in-flight or finished look-up of an endpoint."""

    done: threading.Event = field(factory=threading.Event)
    address: tuple[int, SockAddr] | None = None
    error: str | None = None
    #: The run it was started for: a failed look-up is retried by later runs, not by this one.
    correlator: str = ""


class _Marker:
    """Put on the queue by :func:`flush`; set when the worker reaches it."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = threading.Event()


class _State:
    """Everything a process owns; replaced wholesale in a forked child."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.queue: SimpleQueue[Job | _Marker] = SimpleQueue()
        self.lock = threading.Lock()
        self.worker: threading.Thread | None = None
        self.wake = threading.Event()
        self.hurry_at = -1.0
        #: ``time.monotonic()`` when the worker began a look-up on its own thread; -1 if not.
        self.inline_since = -1.0
        #: The job the worker is handling; the exit path settles it if the worker is stuck.
        self.current: Job | None = None
        #: Held while a job's outcome is decided, so the worker and the exit path never both do.
        self.settle_lock = threading.Lock()
        self.dropped = 0
        self.dropped_jobs: deque[Job] = deque(maxlen=_DROPPED_KEPT)
        self.resolutions: dict[Endpoint, _Resolution] = {}
        self.sockets: dict[int, socket.socket] = {}
        self.announced: set[str] = set()
        #: When each open level-3 run's next heartbeat is due (the worker's alone).
        self.timer: Timer[Heartbeats] = Timer()
        self._log: LogWriter | None = None

    @property
    def log(self) -> LogWriter:
        """The log writer, made on first use (by the worker, or the exit path)."""
        if self._log is None:
            from ._locallog import LogWriter

            self._log = LogWriter()
        return self._log

    @log.setter
    def log(self, writer: LogWriter) -> None:
        self._log = writer


_state = _State()


def _after_fork_in_child() -> None:
    global _state
    old = _state
    _state = _State()
    # Keep what is plain data: resolved addresses and announcements. Sockets and the
    # log's descriptors are inherited and still valid; locks and threads are not.
    _state.resolutions = {
        endpoint: res for endpoint, res in old.resolutions.items() if res.address is not None
    }
    _state.sockets = old.sockets
    _state.announced = old.announced
    if old._log is not None:
        old._log.reset_after_fork()
        _state.log = old._log


os.register_at_fork(after_in_child=_after_fork_in_child)


# -- the calling thread's side --


def submit(job: Job) -> None:
    """Queue ``job`` for the worker (starting it if needed); drop and count when full."""
    state = _state
    if state.queue.qsize() >= MAX_QUEUE:
        state.dropped += 1
        state.dropped_jobs.append(job)
        return
    worker = state.worker
    if (worker is None or not worker.is_alive()) and not _start_worker(state):
        send_inline(job)
        return
    state.queue.put(job)


def _start_worker(state: _State) -> bool:
    """Start the worker once; False if a thread cannot be started (interpreter exit)."""
    with state.lock:
        if state.worker is not None and state.worker.is_alive():
            return True
        thread = threading.Thread(
            target=_run_worker, args=(state,), name="telemetry-sdk-worker", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:
            return False
        state.worker = thread
        return True


def worker_alive() -> bool:
    """Whether this process has a running worker."""
    worker = _state.worker
    return worker is not None and worker.is_alive()


def flush(timeout: float = DRAIN_TIMEOUT) -> bool:
    """Wait at most ``timeout`` seconds for every job queued so far and its log lines.

    True if all were sent (or failed) and logged. The wait for the log stops early when a
    file operation stalls (``_locallog.LOG_STALL``): a hung filesystem never holds it up.
    """
    state = _state
    deadline = time.monotonic() + timeout
    if not worker_alive():
        return state.queue.empty() and _flush_log(state, deadline)
    marker = _Marker()
    state.queue.put(marker)
    while not marker.event.wait(min(0.01, max(0.0, deadline - time.monotonic()))):
        now = time.monotonic()
        inline = state.inline_since
        if now >= deadline or (inline >= 0 and now >= inline + RESOLVE_GRACE):
            return False  # the worker is stuck in a look-up it cannot abandon: stop waiting
    return _flush_log(state, deadline)


def _flush_log(state: _State, deadline: float) -> bool:
    log = state._log
    if log is None:
        return True
    return log.flush(max(0.0, deadline - time.monotonic()))


def hurry(route: Route | None = None) -> None:
    """``route`` (or, with None, every run: the process is exiting) is closing.

    A pending name resolution for it gets at most ``RESOLVE_GRACE`` more seconds.
    """
    state = _state
    if route is None:
        if state.hurry_at < 0:
            state.hurry_at = time.monotonic()
    elif route.closing_at < 0:
        route.closing_at = time.monotonic()
    state.wake.set()


# -- the worker --


def _run_worker(state: _State) -> None:
    while True:
        try:
            item: Job | _Marker | None = state.queue.get(timeout=state.timer.wait(time.monotonic()))
        except Empty:
            item = None  # a heartbeat is due
        except Exception:  # interpreter teardown
            return
        if state is not _state:  # a forked child's copy of this thread does not exist
            return
        if isinstance(item, _Marker):
            item.event.set()
        elif item is not None:
            _log_dropped(state)
            _process(state, item, resolve=True)
            _schedule(state, item)
        _beat(state)


def _schedule(state: _State, job: Job) -> None:
    """After a run's start, schedule its heartbeats; after anything else of it, cancel them."""
    heartbeats = job.heartbeats
    if heartbeats is None:
        return
    if isinstance(job.facts, StartFacts):
        state.timer.add(heartbeats, heartbeats.started + heartbeats.interval, heartbeats.interval)
    else:
        state.timer.cancel(heartbeats)


def _beat(state: _State) -> None:
    """Send the progress message of every run whose heartbeat is due."""
    for heartbeats in state.timer.due(time.monotonic()):
        job = None
        with _guard.capture_internal_exceptions():
            job = heartbeats.beat()
        if job is None:
            state.timer.cancel(heartbeats)
        else:
            _process(state, job, resolve=True)


def send_inline(job: Job) -> None:
    """Do a job on the calling thread without resolving names (the exit path)."""
    _process(_state, job, resolve=False)


def take_over() -> None:
    """At exit, when ``flush`` gave up: settle the worker's work here, without waiting.

    The worker may be stuck in a name look-up it had to do on its own thread (no thread can
    start once Python 3.12+ is shutting down). Its current message gets a ``failed`` outcome
    and every queued message is handled here without resolving, so each message of every run
    has its payload line and an outcome in the log.
    """
    state = _state
    with _guard.capture_internal_exceptions():
        job = state.current
        if job is not None and job.stage == _LOGGED:
            reason = "name resolution did not finish before exit"
            if _settle(state, job):
                job.route.failure = job.route.failure or reason
                _record_outcome(state, job, "failed", reason, job.nbytes)
        while True:
            try:
                item = state.queue.get_nowait()
            except Empty:
                return
            if isinstance(item, _Marker):
                item.event.set()
            else:
                _process(state, item, resolve=False)


def flush_log() -> bool:
    """At exit: wait at most ``_locallog.LOG_DRAIN_TIMEOUT`` for the log's queued lines.

    No early stop here: with many processes sharing one log, waiting for its lock is slow,
    not stuck, and these are the process's last lines.
    """
    log = _state._log
    return True if log is None else log.flush(stall=None)


def _settle(state: _State, job: Job) -> bool:
    """Claim the right to decide ``job``'s outcome; False if it was already decided."""
    with state.settle_lock:
        if job.stage == _SETTLED:
            return False
        job.stage = _SETTLED
        return True


def _process(state: _State, job: Job, *, resolve: bool) -> None:
    route = job.route
    if resolve:
        state.current = job
    with _guard.capture_internal_exceptions():
        try:
            # A host name is looked up while this message is built, encoded and logged.
            unknown = resolve and not route.preview and route.endpoint not in state.resolutions
            if unknown and _literal(route.endpoint) is None:
                _lookup(state, route.endpoint, route.correlator)
            from ._collect import build
            from ._locallog import payload_record
            from ._wire import encode

            message = build(job.facts)
            if job.span is not None:
                with _guard.capture_internal_exceptions():
                    job.span.built(message)
            payload, _ = encode(message)
            _announce(state, route)
            _record(
                state,
                job,
                payload_record,
                level=route.level,
                destination=str(route.endpoint),
                payload=payload,
            )
            job.nbytes = len(payload)
            job.stage = _LOGGED
            outcome: str
            reason: str | None
            if route.preview:
                if not _settle(state, job):
                    return
                print(
                    f"telemetry-sdk preview ({route.product} {job.kind} message, not sent): "
                    + payload.decode("utf-8"),
                    file=sys.stderr,
                )
                outcome, reason = "preview", "preview mode: printed, not sent"
            else:
                settled = _send(state, job, payload, resolve=resolve)
                if settled is None:
                    return  # the exit path gave this message its outcome
                outcome, reason = settled
            _record_outcome(state, job, outcome, reason, len(payload))
        finally:
            if resolve:
                state.current = None


def _record_outcome(
    state: _State, job: Job, outcome: str, reason: str | None, nbytes: int | None
) -> None:
    from ._locallog import outcome_record

    _record(state, job, outcome_record, outcome=outcome, reason=reason, nbytes=nbytes)


def _record(state: _State, job: Job, make: Callable[..., dict[str, Any]], **fields: Any) -> None:
    """Write one local-log line about ``job``: ``make`` is a ``_locallog`` record builder."""
    route = job.route
    facts = job.facts
    if isinstance(facts, ProgressFacts):
        fields["seq"] = facts.seq  # a run's heartbeats share its correlator and kind
    record = make(product=route.product, correlator=route.correlator, kind=job.kind, **fields)
    state.log.write(route.log_path, record, route.log_limits)


def _log_dropped(state: _State) -> None:
    while state.dropped_jobs:
        try:
            job = state.dropped_jobs.popleft()
        except IndexError:
            return
        with _guard.capture_internal_exceptions():
            from ._locallog import outcome_record

            _record(
                state,
                job,
                outcome_record,
                outcome="dropped",
                reason=f"queue full ({MAX_QUEUE} messages waiting)",
            )


def _announce(state: _State, route: Route) -> None:
    """Say once per process and product that tracking is on, where it goes, how to stop it."""
    if route.product in state.announced:
        return
    state.announced.add(route.product)
    from ._locallog import logger

    logger.info(
        "usage tracking for %s is on at level %d%s: messages go to %s and are logged %s; "
        "turn it off with %s=0, DO_NOT_TRACK=1 or 'telemetry-sdk disable --product %s'",
        route.product,
        route.level,
        " (preview mode: printed, not sent)" if route.preview else "",
        route.endpoint,
        "here only" if route.log_path is None else f"in {route.log_path}",
        route.env_var,
        route.product,
    )


def _send(
    state: _State, job: Job, payload: bytes, *, resolve: bool
) -> tuple[str, str | None] | None:
    """Send one datagram; return ``(outcome, reason)``, or None if the exit path settled it."""
    import socket

    route = job.route
    address = None if route.failure is not None else _address(state, route, resolve=resolve)
    with state.settle_lock:
        if job.stage == _SETTLED:
            return None
        job.stage = _SETTLED
        if address is None:
            return "failed", route.failure or "no address"
        family, sockaddr = address
        try:
            sock = state.sockets.get(family)
            if sock is None:
                sock = socket.socket(family, socket.SOCK_DGRAM)
                sock.setblocking(False)
                state.sockets[family] = sock
            sock.sendto(payload, sockaddr)
        except OSError as exc:
            return "failed", _describe_error(exc)
    return "sent", None


def _describe_error(exc: OSError) -> str:
    name = type(exc).__name__
    if exc.errno is not None:
        return f"{name}: [Errno {exc.errno}] {exc.strerror}"
    return f"{name}: {exc}"


def _literal(endpoint: Endpoint) -> tuple[int, SockAddr] | None:
    """The address of an IP-literal endpoint (no resolution needed), else None."""
    import ipaddress
    import socket

    try:
        ip = ipaddress.ip_address(endpoint.host)
    except ValueError:
        return None
    if ip.version == 6:
        return socket.AF_INET6, (endpoint.host, endpoint.port, 0, 0)
    return socket.AF_INET, (endpoint.host, endpoint.port)


def _address(state: _State, route: Route, *, resolve: bool) -> tuple[int, SockAddr] | None:
    """The run's destination address; on failure set ``route.failure`` and return None."""
    endpoint = route.endpoint
    literal = _literal(endpoint)
    if literal is not None:
        return literal
    res = state.resolutions.get(endpoint)
    if res is not None and res.address is not None:
        return res.address
    if not resolve:
        route.failure = "name not resolved before exit"
        return None
    failed_before = (
        res is not None
        and res.done.is_set()
        and res.address is None
        and res.correlator != route.correlator
    )
    if res is None or failed_before:
        res = _lookup(state, endpoint, route.correlator)
    if res is None:
        # Interpreter shutdown (Python 3.12+ starts no new threads once the main thread has
        # finished): look the name up on this daemon worker instead. The host is not held
        # up: ``flush`` stops waiting RESOLVE_GRACE after such a look-up began.
        res = _Resolution(correlator=route.correlator)
        state.resolutions[endpoint] = res
        state.inline_since = time.monotonic()
        try:
            _resolve(state, endpoint, res)
        finally:
            state.inline_since = -1.0
    began = time.monotonic()
    while not res.done.is_set():
        deadline = began + RESOLVE_TIMEOUT
        for closing in (route.closing_at, state.hurry_at):
            if closing >= 0:
                deadline = min(deadline, max(closing, began) + RESOLVE_GRACE)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        state.wake.wait(remaining)
        state.wake.clear()
    if res.address is not None:
        return res.address
    if res.done.is_set():
        route.failure = f"name resolution failed: {res.error}"
    else:
        route.failure = f"name resolution timed out after {time.monotonic() - began:.1f} s"
    return None


def _lookup(state: _State, endpoint: Endpoint, correlator: str) -> _Resolution | None:
    """Start looking ``endpoint`` up on its own thread, once per process and endpoint.

    Only the worker calls this. None when no thread can be started (interpreter shutdown).
    """
    res = _Resolution(correlator=correlator)
    resolver = threading.Thread(
        target=_resolve, args=(state, endpoint, res), name="telemetry-sdk-resolver", daemon=True
    )
    try:
        resolver.start()
    except RuntimeError:
        return None
    state.resolutions[endpoint] = res
    return res


def _resolve(state: _State, endpoint: Endpoint, res: _Resolution) -> None:
    """Look ``endpoint`` up (may block for a long time; the worker does not wait for it)."""
    import socket

    try:
        infos = socket.getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_DGRAM)
        usable = [i for i in infos if i[0] in (socket.AF_INET, socket.AF_INET6)]
        if usable:
            family, _, _, _, sockaddr = usable[0]
            res.address = (int(family), sockaddr)  # type: ignore[assignment]
        else:
            res.error = "no IPv4 or IPv6 address"
    except Exception as exc:  # a failed look-up is an outcome
        res.error = f"{type(exc).__name__}: {exc}"
    finally:
        res.done.set()
        state.wake.set()
