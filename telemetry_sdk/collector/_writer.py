"""The ingest side: decode queued datagrams and commit them to the store in batches.

Two forms with one interface. ``WriterProcess`` (the service's default) runs the work in a
child process, so that decoding and writing never compete with the receive loop for the
GIL: on two cores that is what keeps a 50,000 datagrams/s stream lossless. ``Writer`` does
the same work on a thread of this process (for embedding and small setups). Both decode and
write everything they were handed before ``stop()`` returns.

The child is a plain ``python -c "...child_main(DB, TTL)"`` process, not
``multiprocessing``: nothing of the parent's ``__main__`` is re-imported, so an embedding
script needs no ``if __name__ == "__main__"`` guard. Batches go to its stdin as numbered,
length-prefixed pickles of ``list[bytes]``; after it has committed a batch it writes the
batch's number and its counters (``IngestStats``) to stdout.

The child is supervised. The parent keeps every batch it handed over until the child
acknowledges its commit; if the child dies (killed, crashed) it is started again, with a
backoff, and the unacknowledged batches are handed over again, in order. A batch the child
had committed but not yet acknowledged is then written twice, which changes nothing: the
store is idempotent per run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import IO, Any

from attrs import define, field

from .._errors import DecodeError
from ._ingest import Record, parse
from ._metrics import INGEST_SLOTS, IngestStats, Metrics
from ._retention import Retention
from ._store import Store, StoreError, open_store

__all__ = ["HELD_CLOSE_TTL", "Writer", "WriterProcess", "ingest"]

logger = logging.getLogger("telemetry_sdk.collector")

#: Datagrams per transaction at most; under load batches grow to this, idle they stay small.
_MAX_BATCH = 5000
_RETRIES = 5
#: A batch to the child: payload size, batch number.
_FRAME = struct.Struct("<IQ")
#: From the child: the number of the batch just committed, then the counters.
_REPORT = struct.Struct(f"<Q{INGEST_SLOTS}d")
_CHILD_CODE = (
    "import os, sys; sys.path.insert(0, sys.argv[1]); "
    "from telemetry_sdk.collector._writer import child_main; "
    "sys.exit(child_main(os.environ[sys.argv[2]], float(sys.argv[3]), float(sys.argv[4])))"
)
#: The child finds its database's URL here (not on its command line, where a password in
#: it would show in ``ps``).
_DB_VARIABLE = "TELEMETRY_SDK_COLLECTOR_WRITER_DB"
#: How long a Parsl close is held for its start before it is dropped (7 days).
HELD_CLOSE_TTL = 7 * 86400.0
#: Idle, the writer is woken this often (to expire held closes, and to show it is alive).
_TICK = 1.0
#: Expired held closes are looked for at most this often.
_EXPIRE_EVERY = 60.0
#: Restart delays of a writer process that keeps dying: doubling from the first to the last.
_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 5.0


def write_with_retries(store: Store, stats: IngestStats, batch: list[Record]) -> int:
    """Write one batch; retry a few times (the database may be locked for a moment).

    If it still fails, write the records one at a time, so that one record that cannot be
    written (a bug) costs only itself, never the accepted messages around it. Returns how
    many records were dropped because their run was deleted.
    """
    for attempt in range(_RETRIES):
        started = time.perf_counter()
        try:
            result = store.write_batch(batch)
        except Exception:
            stats.failed_attempt()
            logger.warning("writing %d messages failed; retrying", len(batch), exc_info=True)
            time.sleep(0.05 * 2**attempt)
            continue
        stats.observe(time.perf_counter() - started, len(batch) - result.suppressed)
        return result.suppressed
    suppressed = 0
    for record in batch:
        started = time.perf_counter()
        try:
            result = store.write_batch([record])
        except Exception:
            stats.fail(1)
            logger.exception("a message could not be written and is lost: %r", record)
        else:
            suppressed += result.suppressed
            stats.observe(time.perf_counter() - started, 1 - result.suppressed)
    return suppressed


def ingest(store: Store, stats: IngestStats, datagrams: list[bytes]) -> None:
    """Decode ``datagrams``, count rejections by reason, write the valid ones in one batch.

    A message of a deleted run is dropped and counted as such, not as accepted.
    """
    received = int(time.time())
    records: list[Record] = []
    append = records.append
    for datagram in datagrams:
        try:
            append(parse(datagram, received))
        except DecodeError as exc:
            stats.reject(exc.reason)
        except Exception:
            # A bug in decoding must cost one datagram, never the collector.
            logger.exception("unexpected error decoding a datagram")
            stats.reject("schema")
    if records:
        suppressed = write_with_retries(store, stats, records)
        stats.drop_deleted(suppressed)
        stats.accept(len(records) - suppressed)


@define
class _Expiry:
    """Drops held Parsl closes older than ``ttl`` seconds, at most every ``_EXPIRE_EVERY``."""

    ttl: float
    _last: float = float("-inf")

    def __call__(self, store: Store, stats: IngestStats) -> None:
        now = time.monotonic()
        if now - self._last < min(_EXPIRE_EVERY, self.ttl / 2):
            return
        self._last = now
        try:
            expired = store.expire_pending(int(time.time() - self.ttl))
            held = store.pending_count()
        except Exception:
            stats.failed_attempt()
            logger.warning("expiring held Parsl closes failed", exc_info=True)
            return
        stats.write_ok()
        if expired:
            logger.info("dropped %d held Parsl closes whose start did not come", expired)
        stats.expire(expired, held)


def _take_batch(first: list[bytes], source: queue.SimpleQueue[Any]) -> tuple[list[bytes], bool]:
    """``first`` plus whatever else is queued (up to a batch); whether the stop mark came."""
    batch = list(first)
    while len(batch) < _MAX_BATCH:
        try:
            more = source.get_nowait()
        except queue.Empty:
            break
        if more is None:
            return batch, True
        batch.extend(more)
    return batch, False


@define
class _Front:
    """The receiving side's half: a queue with a bound on datagrams in flight."""

    metrics: Metrics
    max_queued: int = 500_000
    #: How long a Parsl close is held for its start (seconds).
    held_close_ttl: float = HELD_CLOSE_TTL
    _queue: queue.SimpleQueue[list[bytes] | None] = field(factory=queue.SimpleQueue)
    _count_lock: threading.Lock = field(factory=threading.Lock)

    def submit(self, datagrams: list[bytes]) -> bool:
        """Queue datagrams; ``False`` (nothing queued) if too many are waiting."""
        with self._count_lock:
            if self.metrics.waiting + len(datagrams) > self.max_queued:
                return False
            self.metrics.waiting += len(datagrams)
        self._queue.put(datagrams)
        return True

    def _done(self, datagrams: int) -> None:
        """``datagrams`` were committed (or rejected): no longer waiting."""
        with self._count_lock:
            self.metrics.waiting -= datagrams

    def _take(self, timeout: float) -> tuple[list[bytes] | None, bool]:
        """The next batch (``None`` if none came in ``timeout``) and whether to stop after it."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None, False
        if item is None:
            return [], True
        return _take_batch(item, self._queue)

    def _abandon_queue(self) -> int:
        """Empty the queue; return how many datagrams were in it."""
        count = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return count
            count += len(item or ())


@define
class Writer(_Front):
    """Decode and write on a thread of this process."""

    store: Store | None = None
    #: Days of runs kept (0: all).
    retain_days: float = 0.0
    _thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        """Whether the writer is running."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the writer thread."""
        self._thread = threading.Thread(target=self._run, name="collector-writer", daemon=True)
        self._thread.start()
        self.metrics.writer_up = True

    def stop(self, timeout: float | None = None) -> None:
        """Decode and write everything queued so far, commit, and stop."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.error("the writer did not stop in %s s", timeout)
                self.metrics.stop_lost += self.metrics.waiting
        self.metrics.writer_up = False

    def _run(self) -> None:
        assert self.store is not None
        expire = _Expiry(self.held_close_ttl)
        retain = Retention(self.retain_days)
        stats = self.metrics.ingest
        while True:
            batch, stopping = self._take(_TICK)
            if batch:
                ingest(self.store, stats, batch)
                self._done(len(batch))
            expire(self.store, stats)
            retain(self.store, stats)
            if stopping:
                return


@define
class _Child:
    """One writer process and the thread that reads its acknowledgements."""

    process: subprocess.Popen[bytes]
    reader: threading.Thread | None = None
    #: Whether it acknowledged at least one batch.
    acked: bool = False

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def send(self, number: int, batch: list[bytes]) -> None:
        """Hand over one batch; raise ``OSError`` if the child is gone."""
        pipe = self.process.stdin
        assert pipe is not None
        payload = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
        pipe.write(_FRAME.pack(len(payload), number))
        pipe.write(payload)
        pipe.flush()

    def end_input(self) -> None:
        """No more batches: the child commits what it has and exits."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()


@define
class WriterProcess(_Front):
    """Decode and write in a supervised child process (see the module's docstring)."""

    #: The store's URL (see ``open_store``).
    db: str = ""
    #: Days of runs kept (0: all).
    retain_days: float = 0.0
    _child: _Child | None = None
    _supervisor: threading.Thread | None = None
    #: Batches handed to a child and not acknowledged yet, by number, in order.
    _unacked: dict[int, list[bytes]] = field(factory=dict)
    _unacked_lock: threading.Lock = field(factory=threading.Lock)
    _next_number: int = 1
    #: What the writer processes that ended had counted.
    _before: list[float] = field(factory=lambda: [0.0] * INGEST_SLOTS)
    #: Set when ``stop()`` gives up: the supervisor starts no new process.
    _abandon: threading.Event = field(factory=threading.Event)
    #: The stop mark was taken from the queue: the child gets no more batches.
    _stopping: bool = False

    @property
    def alive(self) -> bool:
        """Whether a writer process is running."""
        child = self._child
        return child is not None and child.running

    @property
    def pid(self) -> int | None:
        """The current writer process's id, if one runs."""
        child = self._child
        return child.process.pid if child is not None and child.running else None

    def start(self) -> None:
        """Start the first writer process and the thread that supervises it."""
        self._child = self._spawn()
        self._supervisor = threading.Thread(
            target=self._supervise, name="collector-writer-supervisor", daemon=True
        )
        self._supervisor.start()

    def stop(self, timeout: float | None = 120.0) -> None:
        """Hand over everything queued so far, let the child commit it, and wait for it.

        If that takes longer than ``timeout``, the child is killed and what it had not
        committed is counted in ``Metrics.stop_lost``.
        """
        self._queue.put(None)
        if self._supervisor is not None:
            self._supervisor.join(timeout)
            if self._supervisor.is_alive():
                logger.error("the writer did not finish in %s s; stopping it", timeout)
                self._abandon.set()
                child = self._child
                if child is not None:
                    child.process.kill()
                self._supervisor.join(10)
        with self._unacked_lock:
            unsaved = sum(len(b) for b in self._unacked.values())
            self._unacked.clear()
        unsaved += self._abandon_queue()
        if unsaved:
            self.metrics.stop_lost += unsaved
            self._done(unsaved)
        self.metrics.writer_up = False

    # -- the supervisor thread --

    def _spawn(self) -> _Child:
        # The child imports this very package (also from a source checkout or a path the
        # parent added by hand): the package's parent directory goes first on its path.
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CHILD_CODE,
                package_root,
                _DB_VARIABLE,
                repr(self.held_close_ttl),
                repr(self.retain_days),
            ],
            env={**os.environ, _DB_VARIABLE: self.db},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # Ctrl-C in a terminal goes to the whole process group; only the parent decides
            # when the writer stops, after it has been handed everything.
            start_new_session=True,
        )
        child = _Child(process)
        child.reader = threading.Thread(
            target=self._read_reports, args=(child,), name="collector-writer-reports", daemon=True
        )
        child.reader.start()
        self.metrics.writer_up = True
        logger.info("writer process started (pid %d)", process.pid)
        return child

    def _bury(self, child: _Child) -> int:
        """Collect a child that ended; return its exit status."""
        code = child.process.wait()
        if child.reader is not None:
            child.reader.join(10)
        if child.process.stdin is not None:
            with contextlib.suppress(OSError):
                child.process.stdin.close()
        self.metrics.writer_up = False
        return code

    def _supervise(self) -> None:
        """Feed the writer process and restart it when it dies; an error here costs a second."""
        while True:
            try:
                self._feed()
            except Exception:
                logger.exception("the writer's supervisor failed; carrying on")
                if self._abandon.wait(1.0):
                    return
            else:
                return

    def _feed(self) -> None:
        stopping = self._stopping
        failures = 0
        while True:
            child = self._child
            assert child is not None
            if not child.running:
                code = self._bury(child)
                with self._unacked_lock:
                    unacked = list(self._unacked.items())
                if stopping and code == 0 and not unacked:
                    return
                failures = 1 if child.acked else failures + 1
                logger.error(
                    "the writer process exited with status %s; restarting it and handing "
                    "over again the %d datagrams it had not committed",
                    code,
                    sum(len(b) for _, b in unacked),
                )
                delay = min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** (failures - 1))
                if self._abandon.wait(delay):
                    return
                try:
                    child = self._child = self._spawn()
                except OSError:
                    logger.exception("starting the writer process failed")
                    continue
                self.metrics.writer_restarts += 1
                with contextlib.suppress(OSError):
                    for number, batch in unacked:
                        child.send(number, batch)
                if stopping:
                    child.end_input()
                continue
            if stopping:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.process.wait(0.2)
                continue
            taken, stopping = self._take(_TICK)
            self._stopping = stopping
            # An empty batch when idle: the child expires held closes and shows it is alive.
            if taken or not stopping:
                batch = taken or []
                number = self._next_number
                self._next_number += 1
                with self._unacked_lock:
                    self._unacked[number] = batch
                with contextlib.suppress(OSError):  # it died: restarted above, then replayed
                    child.send(number, batch)
            if stopping:
                child.end_input()

    def _read_reports(self, child: _Child) -> None:
        pipe = child.process.stdout
        assert pipe is not None
        with pipe:
            while True:
                data = pipe.read(_REPORT.size)
                if len(data) < _REPORT.size:
                    break
                number, *values = _REPORT.unpack(data)
                child.acked = True
                done = 0
                with self._unacked_lock:
                    for key in [k for k in self._unacked if k <= number]:
                        done += len(self._unacked.pop(key))
                self.metrics.ingest.values = IngestStats.combined(self._before, values)
                if done:
                    self._done(done)
        # What this child counted stays counted after it is gone.
        self._before = list(self.metrics.ingest.values)


def _read_exactly(pipe: IO[bytes], size: int) -> bytes | None:
    data = pipe.read(size)
    return data if len(data) == size else None


def child_main(db: str, held_close_ttl: float = HELD_CLOSE_TTL, retain_days: float = 0.0) -> int:
    """The writer process: decode and write batches from stdin until it closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s (writer): %(message)s",
        stream=sys.stderr,
    )
    source = sys.stdin.buffer
    sink = sys.stdout.buffer
    try:
        store = open_store(db)
    except StoreError as exc:
        logger.error("%s", exc)
        return 3
    stats = IngestStats()
    expire = _Expiry(held_close_ttl)
    retain = Retention(retain_days)
    try:
        while True:
            header = _read_exactly(source, _FRAME.size)
            if header is None:
                break
            size, number = _FRAME.unpack(header)
            payload = _read_exactly(source, size)
            if payload is None:
                break
            ingest(store, stats, pickle.loads(payload))
            expire(store, stats)
            retain(store, stats)
            sink.write(_REPORT.pack(number, *stats.values))
            sink.flush()
    finally:
        store.close()
    return 0
