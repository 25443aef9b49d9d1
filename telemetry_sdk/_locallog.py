"""The local record of every message: a JSON-lines file and the ``telemetry_sdk`` logger.

Each message produces two lines in the log file, so the file is evidence, not intent:

1. before the send attempt, a **payload** line holding the exact datagram text::

       {"time": "2026-11-22T01:30:00.123Z", "product": "minflow",
        "correlator": "7c886a00-...", "kind": "start", "event": "payload", "level": 3,
        "destination": "udp://tracking.example.org:50077", "payload": "1{\\"correlator\\": ...}"}

2. after it, an **outcome** line with the same ``correlator`` and ``kind``::

       {"time": "...", "product": "minflow", "correlator": "7c886a00-...", "kind": "start",
        "event": "outcome", "outcome": "sent", "bytes": 215}

Fields (this format is stable; ``telemetry-sdk log`` reads it through :func:`read_log`):

- ``time``: ISO-8601 UTC with milliseconds and a ``Z`` suffix.
- ``product``: the product name; ``correlator``: the run's UUID.
- ``kind``: ``"start"`` or ``"close"``; ``event``: ``"payload"`` or ``"outcome"``.
- payload lines: ``level`` (1-3), ``destination`` (``udp://host:port``), ``payload`` (the
  datagram as text, including the leading protocol byte ``1``).
- outcome lines: ``outcome`` is ``"sent"`` (the kernel accepted the datagram; UDP gives no
  receipt), ``"failed"`` (with ``reason``: resolution timed out, a socket error, ...),
  ``"dropped"`` (the queue was full; no payload line precedes it) or ``"preview"`` (preview
  mode: printed, not sent); ``bytes`` is the datagram size when there was one; ``reason``
  is present when the outcome is not ``"sent"``.

The file is appended to with one ``write`` per line (``O_APPEND``, mode ``0o600``), so
lines from several processes do not interleave. A torn or foreign line is skipped by
:func:`read_log`. Every line is also emitted on the ``telemetry_sdk`` logger at INFO.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["LogWriter", "logger", "outcome_record", "payload_record", "read_log"]

logger = logging.getLogger("telemetry_sdk")


def _now() -> str:
    now = time.time()
    millis = int(now * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{millis:03d}Z"


def payload_record(
    *, product: str, correlator: str, kind: str, level: int, destination: str, payload: bytes
) -> dict[str, Any]:
    """The line written before a message is sent."""
    return {
        "time": _now(),
        "product": product,
        "correlator": correlator,
        "kind": kind,
        "event": "payload",
        "level": level,
        "destination": destination,
        "payload": payload.decode("utf-8"),
    }


def outcome_record(
    *,
    product: str,
    correlator: str,
    kind: str,
    outcome: str,
    reason: str | None = None,
    nbytes: int | None = None,
) -> dict[str, Any]:
    """The line written after the send attempt (or instead of it)."""
    record: dict[str, Any] = {
        "time": _now(),
        "product": product,
        "correlator": correlator,
        "kind": kind,
        "event": "outcome",
        "outcome": outcome,
    }
    if reason is not None:
        record["reason"] = reason
    if nbytes is not None:
        record["bytes"] = nbytes
    return record


class LogWriter:
    """Appends records to log files (opened lazily, one descriptor per path) and the logger."""

    def __init__(self) -> None:
        self._fds: dict[Path, int] = {}
        self._broken: set[Path] = set()
        self._lock = threading.Lock()

    def reset_after_fork(self) -> None:
        """Forget the lock (it may be held by a thread that does not exist in the child)."""
        self._lock = threading.Lock()

    def write(self, path: Path, record: dict[str, Any]) -> None:
        """Log ``record`` on the logger and append it to ``path``; never raises ``OSError``."""
        line = json.dumps(record, ensure_ascii=False, separators=(", ", ": "))
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
        data = (line + "\n").encode("utf-8")
        with self._lock:
            try:
                fd = self._open(path)
                if fd is not None:
                    os.write(fd, data)
            except OSError as exc:
                self._fail(path, exc)

    def _open(self, path: Path) -> int | None:
        fd = self._fds.get(path)
        if fd is None and path not in self._broken:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._fds[path] = fd
        return fd

    def _fail(self, path: Path, exc: OSError) -> None:
        fd = self._fds.pop(path, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        if path not in self._broken:
            self._broken.add(path)
            logger.warning(
                "cannot write the usage log %s (%s); messages are still sent and logged here",
                path,
                exc,
            )


def read_log(path: str | os.PathLike[str], correlator: str | None = None) -> list[dict[str, Any]]:
    """The records of a log file in order, optionally only those of one run.

    A missing file gives an empty list; a torn or garbage line is skipped.
    """
    try:
        with open(path, "rb") as file:
            raw_lines = file.read().splitlines()
    except FileNotFoundError:
        return []
    records: list[dict[str, Any]] = []
    for raw in raw_lines:
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        if not isinstance(record, dict) or not isinstance(record.get("correlator"), str):
            continue
        if correlator is None or record["correlator"] == correlator:
            records.append(record)
    return records
