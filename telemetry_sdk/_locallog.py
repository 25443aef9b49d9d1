"""The local record of every message: a JSON-lines file and the ``telemetry_sdk`` logger.

Each message produces two lines in the log file, so the file is evidence, not intent:

1. queued before the send attempt, a **payload** line holding the exact datagram text::

       {"time": "2026-11-22T01:30:00.123Z", "product": "minflow",
        "correlator": "7c886a00-...", "kind": "start", "event": "payload", "level": 3,
        "destination": "udp://tracking.example.org:50077", "payload": "1{\\"correlator\\": ...}"}

2. queued after it, an **outcome** line with the same ``correlator`` and ``kind``::

       {"time": "...", "product": "minflow", "correlator": "7c886a00-...", "kind": "start",
        "event": "outcome", "outcome": "sent", "bytes": 215}

Fields (this format is stable; ``telemetry-sdk log`` reads it through :func:`iter_log`):

- ``time``: ISO-8601 UTC with milliseconds and a ``Z`` suffix.
- ``product``: the product name; ``correlator``: the run's UUID.
- ``kind``: ``"start"``, ``"progress"`` (a heartbeat) or ``"close"``; ``event``:
  ``"payload"`` or ``"outcome"``. Progress lines also carry ``seq``, the heartbeat's number
  (a run's heartbeats share its correlator and kind).
- payload lines: ``level`` (1-3), ``destination`` (``udp://host:port``), ``payload`` (the
  datagram as text, including the leading protocol byte ``1``).
- outcome lines: ``outcome`` is ``"sent"`` (the kernel accepted the datagram; UDP gives no
  receipt), ``"failed"`` (with ``reason``: resolution timed out, a socket error, ...),
  ``"dropped"`` (the queue was full; no payload line precedes it) or ``"preview"`` (preview
  mode: printed, not sent); ``bytes`` is the datagram size when there was one; ``reason``
  is present when the outcome is not ``"sent"``.

Every line is emitted on the ``telemetry_sdk`` logger at INFO at once, by the thread that
handles the message. The file is written by one daemon **log-writer thread** per process, in
queue order (so a payload line always precedes its outcome line), in batches of whole lines
(see ``_logfile`` for regular-files-only, the lock, rotation and torn lines). Sending and
``close()`` never wait on a stalled file operation; the exit hook waits at most
:data:`LOG_DRAIN_TIMEOUT` for the last lines. A failed path is tried again after
:data:`RETRY_INTERVAL`. :func:`iter_log` streams every generation, oldest first, skipping
torn and foreign lines.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any

from attrs import define, frozen

from ._logfile import LogFile, NotRegularFileError, generations
from ._logsettings import LogLimits

__all__ = [
    "LOG_DRAIN_TIMEOUT",
    "LOG_STALL",
    "MAX_PENDING",
    "RETRY_INTERVAL",
    "LogWriter",
    "iter_log",
    "logger",
    "outcome_record",
    "payload_record",
    "read_log",
]

logger = logging.getLogger("telemetry_sdk")


def _now() -> str:
    now = time.time()
    millis = int(now * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{millis:03d}Z"


def payload_record(
    *,
    product: str,
    correlator: str,
    kind: str,
    level: int,
    destination: str,
    payload: bytes,
    seq: int | None = None,
) -> dict[str, Any]:
    """The line written before a message is sent (``seq``: a progress message's number)."""
    record: dict[str, Any] = {
        "time": _now(),
        "product": product,
        "correlator": correlator,
        "kind": kind,
    }
    if seq is not None:
        record["seq"] = seq
    record.update(
        event="payload", level=level, destination=destination, payload=payload.decode("utf-8")
    )
    return record


def outcome_record(
    *,
    product: str,
    correlator: str,
    kind: str,
    outcome: str,
    reason: str | None = None,
    nbytes: int | None = None,
    seq: int | None = None,
) -> dict[str, Any]:
    """The line written after the send attempt (or instead of it)."""
    record: dict[str, Any] = {
        "time": _now(),
        "product": product,
        "correlator": correlator,
        "kind": kind,
    }
    if seq is not None:
        record["seq"] = seq
    record.update(event="outcome", outcome=outcome)
    if reason is not None:
        record["reason"] = reason
    if nbytes is not None:
        record["bytes"] = nbytes
    return record


#: After a failed write (full disk, removed or read-only directory, refused path), the path is
#: tried again after this many seconds; records meanwhile go to the logger only.
RETRY_INTERVAL = 30.0
#: How long the exit hook waits for queued lines to reach the file, in seconds.
LOG_DRAIN_TIMEOUT = 0.5
#: ``close()`` stops waiting for the log once one file operation has taken this long, in seconds.
LOG_STALL = 0.1
#: Lines waiting for the file beyond this many (the file system is stuck) go to the logger only.
MAX_PENDING = 4096
#: Records gathered into one ``write`` at most (each batch is also kept under ``max_bytes``).
_BATCH = 64


@frozen
class _Line:
    path: Path
    limits: LogLimits
    data: bytes


class _Marker:
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = threading.Event()


@define
class _Target:
    """One path's file and whether (and since when) writing to it fails."""

    file: LogFile
    retry_at: float = -1.0
    broken: bool = False


class LogWriter:
    """Reports records on the logger and hands their lines to a log-writer thread.

    Only that daemon thread touches the file system, so a FIFO, a full disk or a hung
    filesystem can hold it up and nothing else: sending and ``close()`` never wait for it.
    When no thread can be started (interpreter exit), the calling thread writes instead.
    """

    def __init__(self) -> None:
        self._queue: SimpleQueue[_Line | _Marker] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._targets: dict[Path, _Target] = {}
        self._no_path_warned = False
        self._behind_warned = False
        #: ``time.monotonic()`` when the current file operation began; -1 when idle.
        self._busy_since = -1.0

    def reset_after_fork(self) -> None:
        """In a forked child: no thread, nothing queued, the parent's descriptors closed."""
        self._queue = SimpleQueue()
        self._thread = None
        self._lock = threading.Lock()
        for target in self._targets.values():
            target.file.close()  # closing a copy never releases the parent's flock
        self._targets = {}

    def write(
        self, path: Path | None, record: dict[str, Any], limits: LogLimits | None = None
    ) -> None:
        """Log ``record`` on the logger and queue its line for ``path``; never raises ``OSError``.

        ``path`` None means no log path could be worked out: the logger is the only record.
        """
        _emit(record)
        if path is None:
            if not self._no_path_warned:
                self._no_path_warned = True
                logger.warning(
                    "no usage log file: no home directory could be found (HOME is unset and "
                    "this user id has no passwd entry); messages are still sent and logged "
                    "here. Set XDG_STATE_HOME or HOME, or Config(log_path=...), to keep a log."
                )
            return
        if self._queue.qsize() >= MAX_PENDING:
            if not self._behind_warned:
                self._behind_warned = True
                logger.warning(
                    "the usage log %s is not being written (%d lines wait for the file "
                    "system); further lines are only logged here until it catches up",
                    path,
                    MAX_PENDING,
                )
            return
        line = json.dumps(record, ensure_ascii=False, separators=(", ", ": "))
        self._queue.put(_Line(path, limits or _DEFAULT_LIMITS, (line + "\n").encode("utf-8")))
        if not self._ensure_thread():
            self._drain()  # no thread can start: write here, the only place left

    def flush(self, timeout: float = LOG_DRAIN_TIMEOUT, *, stall: float | None = LOG_STALL) -> bool:
        """Wait at most ``timeout`` seconds for the lines queued so far; True if written.

        Stop waiting as soon as one file operation has taken ``stall`` seconds (a hung
        filesystem; None: never): the lines are still written if it recovers, but nobody
        waits for it.
        """
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._drain()
            return True
        marker = _Marker()
        self._queue.put(marker)
        deadline = time.monotonic() + max(0.0, timeout)
        while not marker.event.is_set():
            now = time.monotonic()
            busy = self._busy_since
            if now >= deadline or (stall is not None and busy >= 0 and now - busy > stall):
                return False
            marker.event.wait(min(0.01, deadline - now))
        return True

    def _ensure_thread(self) -> bool:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return True
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return True
            thread = threading.Thread(target=self._run, name="telemetry-sdk-log", daemon=True)
            try:
                thread.start()
            except RuntimeError:
                return False
            self._thread = thread
            return True

    def _run(self) -> None:
        queue = self._queue
        while True:
            try:
                first = queue.get()
            except Exception:  # interpreter teardown
                return
            if queue is not self._queue:  # a forked child's copy of this thread
                return
            self._handle(first)

    def _drain(self) -> None:
        with self._lock:
            while True:
                try:
                    item = self._queue.get_nowait()
                except Empty:
                    return
                self._handle(item)

    def _handle(self, item: _Line | _Marker) -> None:
        """Write ``item`` and whatever is queued after it for the same path, in batches."""
        pending: _Line | _Marker | None = item
        while pending is not None:
            first, pending = pending, None
            if isinstance(first, _Marker):
                first.event.set()
                continue
            lines = [first]
            size = len(first.data)
            while len(lines) < _BATCH:
                try:
                    queued = self._queue.get_nowait()
                except Empty:
                    break
                if (
                    isinstance(queued, _Line)
                    and queued.path == first.path
                    and size + len(queued.data) <= first.limits.max_bytes
                ):
                    lines.append(queued)
                    size += len(queued.data)
                else:
                    pending = queued
                    break
            self._append(first.path, first.limits, b"".join(line.data for line in lines))

    def _append(self, path: Path, limits: LogLimits, data: bytes) -> None:
        target = self._targets.get(path)
        if target is None or target.file.limits != limits:
            if target is not None:
                target.file.close()
            target = self._targets[path] = _Target(LogFile(path, limits))
        if target.broken and time.monotonic() < target.retry_at:
            return  # still failing: the logger has the record
        self._busy_since = time.monotonic()
        try:
            target.file.append(data)
        except OSError as exc:
            target.file.close()
            target.retry_at = time.monotonic() + RETRY_INTERVAL
            if not target.broken:
                target.broken = True
                logger.warning(
                    "cannot write the usage log %s (%s); messages are still sent and logged "
                    "here, and writing is tried again every %g s",
                    path,
                    _describe(exc),
                    RETRY_INTERVAL,
                )
            return
        finally:
            self._busy_since = -1.0
        if target.broken:
            target.broken = False
            logger.info("the usage log %s can be written again", path)


_DEFAULT_LIMITS = LogLimits()


def _describe(exc: OSError) -> str:
    if isinstance(exc, NotRegularFileError):
        return f"{exc.strerror}; a log is only ever a regular file"
    return exc.strerror or str(exc)


def _emit(record: dict[str, Any]) -> None:
    """Report ``record`` on the ``telemetry_sdk`` logger at INFO."""
    if record["event"] == "payload":
        logger.info(
            "usage message %s %s of %s to %s: %s",
            record["kind"],
            record["correlator"],
            record["product"],
            record["destination"],
            record["payload"],
        )
    else:
        logger.info(
            "usage message %s %s of %s: %s%s",
            record["kind"],
            record["correlator"],
            record["product"],
            record["outcome"],
            f" ({record['reason']})" if "reason" in record else "",
        )


def iter_log(
    path: str | os.PathLike[str], correlator: str | None = None
) -> Iterator[dict[str, Any]]:
    """Stream the records of a log and its previous generations, oldest first.

    Reads ``path.N`` ... ``path.1`` then ``path``, one line at a time, so memory stays flat for
    any size. A missing file gives nothing; a torn, garbage or foreign line is skipped.
    """
    for generation in generations(Path(path)):
        try:
            file = open(generation, "rb")  # noqa: SIM115 - closed below, across yields
        except FileNotFoundError:
            continue
        with file:
            for raw in file:
                try:
                    record = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError):
                    continue
                if not isinstance(record, dict) or not isinstance(record.get("correlator"), str):
                    continue
                if correlator is None or record["correlator"] == correlator:
                    yield record


def read_log(path: str | os.PathLike[str], correlator: str | None = None) -> list[dict[str, Any]]:
    """The records of a log and its previous generations in order, optionally of one run.

    A list of :func:`iter_log`'s records; use :func:`iter_log` to stream a large log.
    """
    return list(iter_log(path, correlator))
