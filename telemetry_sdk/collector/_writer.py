"""The ingest side: decode queued datagrams and commit them to the store in batches.

Two forms with one interface. ``WriterProcess`` (the service's default) runs the work in a
child process, so that decoding and writing never compete with the receive loop for the
GIL: on two cores that is what keeps a 50,000 datagrams/s stream lossless. ``Writer`` does
the same work on a thread of this process (for embedding and small setups). Both decode and
write everything they were handed before ``stop()`` returns.

The child is a plain ``python -c "...child_main(DB)"`` process, not
``multiprocessing``: nothing of the parent's ``__main__`` is re-imported, so an embedding
script needs no ``if __name__ == "__main__"`` guard. Batches go to its stdin as
length-prefixed pickles of ``list[bytes]``; after every batch it writes its counters
(``IngestStats``) to stdout as a fixed-size record of doubles.
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
from ._store import SQLiteStore, Store

__all__ = ["Writer", "WriterProcess", "ingest"]

logger = logging.getLogger("telemetry_sdk.collector")

#: Datagrams per transaction at most; under load batches grow to this, idle they stay small.
_MAX_BATCH = 5000
_RETRIES = 5
_FRAME = struct.Struct("<I")
_STATS = struct.Struct(f"<{INGEST_SLOTS}d")
_CHILD_CODE = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from telemetry_sdk.collector._writer import child_main; sys.exit(child_main(sys.argv[2]))"
)


def write_with_retries(store: Store, stats: IngestStats, batch: list[Record]) -> None:
    """Write one batch; retry a few times (the database may be locked for a moment).

    If it still fails, write the records one at a time, so that one record that cannot be
    written (a bug) costs only itself, never the accepted messages around it.
    """
    for attempt in range(_RETRIES):
        started = time.perf_counter()
        try:
            result = store.write_batch(batch)
        except Exception:
            logger.warning("writing %d messages failed; retrying", len(batch), exc_info=True)
            time.sleep(0.05 * 2**attempt)
            continue
        stats.observe(time.perf_counter() - started, len(batch) - result.suppressed)
        stats.drop_deleted(result.suppressed)
        return
    for record in batch:
        started = time.perf_counter()
        try:
            result = store.write_batch([record])
        except Exception:
            stats.fail(1)
            logger.exception("a message could not be written and is lost: %r", record)
        else:
            stats.observe(time.perf_counter() - started, 1 - result.suppressed)
            stats.drop_deleted(result.suppressed)


def ingest(store: Store, stats: IngestStats, datagrams: list[bytes]) -> None:
    """Decode ``datagrams``, count rejections by reason, write the valid ones in one batch."""
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
    stats.accept(len(records))
    if records:
        write_with_retries(store, stats, records)


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
    _queue: queue.SimpleQueue[list[bytes] | None] = field(factory=queue.SimpleQueue)

    def submit(self, datagrams: list[bytes]) -> bool:
        """Queue datagrams; ``False`` (nothing queued) if too many are waiting."""
        if self.metrics.depth + len(datagrams) > self.max_queued:
            return False
        self._queue.put(datagrams)
        return True


@define
class Writer(_Front):
    """Decode and write on a thread of this process."""

    store: Store | None = None
    _thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        """Whether the writer is running."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the writer thread."""
        self._thread = threading.Thread(target=self._run, name="collector-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Decode and write everything queued so far, commit, and stop."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        assert self.store is not None
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch, stopping = _take_batch(item, self._queue)
            ingest(self.store, self.metrics.ingest, batch)
            if stopping:
                return


@define
class WriterProcess(_Front):
    """Decode and write in a child process; two threads here feed it and read its counters."""

    db_path: str = ""
    _process: subprocess.Popen[bytes] | None = None
    _forwarder: threading.Thread | None = None
    _stats_reader: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        """Whether the child process is running."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the child process and the threads that talk to it."""
        # The child imports this very package (also from a source checkout or a path the
        # parent added by hand): the package's parent directory goes first on its path.
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self._process = subprocess.Popen(
            [sys.executable, "-c", _CHILD_CODE, package_root, self.db_path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # Ctrl-C in a terminal goes to the whole process group; only the parent decides
            # when the writer stops, after it has been handed everything.
            start_new_session=True,
        )
        self._forwarder = threading.Thread(
            target=self._forward, name="collector-forwarder", daemon=True
        )
        self._forwarder.start()
        self._stats_reader = threading.Thread(
            target=self._read_stats, name="collector-stats", daemon=True
        )
        self._stats_reader.start()

    def stop(self, timeout: float | None = 120.0) -> None:
        """Hand over everything queued so far, let the child commit it, and wait for it."""
        self._queue.put(None)
        if self._forwarder is not None:
            self._forwarder.join(timeout)
        if self._process is not None:
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.error("the writer process did not stop in %s s; killing it", timeout)
                self._process.kill()
                self._process.wait()
        if self._stats_reader is not None:
            self._stats_reader.join(5)

    def _forward(self) -> None:
        assert self._process is not None
        assert self._process.stdin is not None
        pipe = self._process.stdin
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    break
                batch, stopping = _take_batch(item, self._queue)
                payload = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
                pipe.write(_FRAME.pack(len(payload)))
                pipe.write(payload)
                pipe.flush()
                if stopping:
                    break
        except OSError:
            logger.exception("the writer process went away")
        finally:
            with contextlib.suppress(OSError):
                pipe.close()

    def _read_stats(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        with self._process.stdout as pipe:
            while True:
                data = pipe.read(_STATS.size)
                if len(data) < _STATS.size:
                    break
                self.metrics.ingest.values = list(_STATS.unpack(data))
        code = self._process.wait()
        if code != 0:
            logger.error("the writer process exited with status %s", code)


def _read_exactly(pipe: IO[bytes], size: int) -> bytes | None:
    data = pipe.read(size)
    return data if len(data) == size else None


def child_main(db_path: str) -> int:
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
    store = SQLiteStore.open(db_path)
    stats = IngestStats()
    try:
        while True:
            header = _read_exactly(source, _FRAME.size)
            if header is None:
                break
            payload = _read_exactly(source, _FRAME.unpack(header)[0])
            if payload is None:
                break
            ingest(store, stats, pickle.loads(payload))
            sink.write(_STATS.pack(*stats.values))
            sink.flush()
    finally:
        store.close()
    return 0
