"""Where runs live: the ``Store`` interface and its SQLite implementation.

A run is one row keyed by (product, correlator). A start inserts or fills it, a close fills
it, in any order; a repeated message changes nothing. A Parsl close names no product: it is
joined to its run by correlator, or kept as a *pending close* until its start arrives.

The leaderboard and the stats never scan the runs: they read rollup tables that the writer
keeps current in the same transaction. Each run contributes a fixed set of counts to the
rollups (its day, version, platform, project, ...); when a run changes, the writer subtracts
what its old row contributed and adds what the new row contributes, so fills, duplicates
and deletions stay exact.
"""

from __future__ import annotations

import datetime
import functools
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
from attrs import define, field, frozen

from .._errors import TelemetryError
from ._day_rollup import EXEC_BUCKETS, DayDeltas, add_run, exec_bucket
from ._ingest import Record
from ._period import Period
from ._period_views import leaderboard as period_leaderboard
from ._period_views import period_stats, rank

logger = logging.getLogger("telemetry_sdk.collector")

__all__ = ["EXEC_BUCKETS", "SQLiteStore", "Store", "StoreError", "WriteResult"]


_SCHEMA = """
-- Component lists repeat from run to run: each distinct list (JSON text) is kept once.
CREATE TABLE IF NOT EXISTS component_sets (id INTEGER PRIMARY KEY, json TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    corr BLOB NOT NULL,
    product TEXT NOT NULL,
    version TEXT,
    python_v TEXT,
    platform TEXT,
    level INTEGER,
    project TEXT,
    components INTEGER REFERENCES component_sets (id),
    close_components INTEGER REFERENCES component_sets (id),
    start INTEGER,
    "end" INTEGER,
    execution_time REAL,
    app_count INTEGER,
    app_fails INTEGER,
    has_start INTEGER NOT NULL,
    has_close INTEGER NOT NULL,
    day INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_key ON runs (corr, product);
CREATE TABLE IF NOT EXISTS pending_closes (
    corr BLOB PRIMARY KEY,
    project TEXT,
    close_components INTEGER REFERENCES component_sets (id),
    "end" INTEGER,
    execution_time REAL,
    app_count INTEGER,
    app_fails INTEGER,
    day INTEGER NOT NULL,
    received INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deleted_runs (corr BLOB PRIMARY KEY) WITHOUT ROWID;
-- What the collector notes about itself; written at every start to prove it can write.
CREATE TABLE IF NOT EXISTS collector_meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup (
    kind TEXT NOT NULL,
    product TEXT NOT NULL,
    key TEXT NOT NULL,
    runs INTEGER NOT NULL,
    points INTEGER NOT NULL,
    x INTEGER NOT NULL,
    y INTEGER NOT NULL,
    PRIMARY KEY (kind, product, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rollup_by_points ON rollup (kind, product, points DESC, runs DESC);
CREATE INDEX IF NOT EXISTS rollup_by_runs ON rollup (kind, product, runs DESC);
-- The same counts per day (the day a run started), for views of any period: see _day_rollup.
CREATE TABLE IF NOT EXISTS day_rollup (
    product TEXT NOT NULL,
    kind TEXT NOT NULL,
    day INTEGER NOT NULL,
    key TEXT NOT NULL,
    runs INTEGER NOT NULL,
    points INTEGER NOT NULL,
    x INTEGER NOT NULL,
    y INTEGER NOT NULL,
    PRIMARY KEY (product, kind, day, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS day_rollup_by_key ON day_rollup (product, kind, key, day);
"""

# Column order of a run row as held in memory (after ``id`` and ``corr``).
_COLUMNS = (
    "product",
    "version",
    "python_v",
    "platform",
    "level",
    "project",
    "components",
    "close_components",
    "start",
    "end",
    "execution_time",
    "app_count",
    "app_fails",
    "has_start",
    "has_close",
    "day",
)
_SELECT_COLUMNS = ", ".join(f'"{c}"' for c in _COLUMNS)
# Reading a run: the component lists come back as their JSON text.
_RUN_FROM = (
    "runs LEFT JOIN component_sets AS c1 ON c1.id = runs.components "
    "LEFT JOIN component_sets AS c2 ON c2.id = runs.close_components"
)
_RUN_COLUMNS = ", ".join(
    {"components": "c1.json", "close_components": "c2.json"}.get(c, f'runs."{c}"') for c in _COLUMNS
)
_INSERT_RUN = (
    f"INSERT INTO runs (corr, {_SELECT_COLUMNS}) VALUES (?, {', '.join('?' * len(_COLUMNS))})"
)
_ASSIGN_COLUMNS = ", ".join(f'"{c}" = ?' for c in _COLUMNS)
_UPDATE_RUN = f"UPDATE runs SET {_ASSIGN_COLUMNS} WHERE id = ?"
_PENDING_COLUMNS = (
    "project",
    "close_components",
    "end",
    "execution_time",
    "app_count",
    "app_fails",
    "day",
)
_PENDING_SELECT = ", ".join(f'"{c}"' for c in _PENDING_COLUMNS)
_PENDING_FROM = "pending_closes AS p LEFT JOIN component_sets AS c ON c.id = p.close_components"
_PENDING_COLUMNS_TEXT = ", ".join(
    "c.json" if c == "close_components" else f'p."{c}"' for c in _PENDING_COLUMNS
)
_INSERT_PENDING = (
    f"INSERT INTO pending_closes (corr, {_PENDING_SELECT}, received) "
    f"VALUES (?, {', '.join('?' * (len(_PENDING_COLUMNS) + 1))})"
)
_UPSERT_DAY_ROLLUP = """
INSERT INTO day_rollup (product, kind, day, key, runs, points, x, y)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (product, kind, day, key) DO UPDATE SET
    runs = runs + excluded.runs, points = points + excluded.points,
    x = x + excluded.x, y = y + excluded.y
"""
_UPSERT_ROLLUP = """
INSERT INTO rollup (kind, product, key, runs, points, x, y) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (kind, product, key) DO UPDATE SET
    runs = runs + excluded.runs, points = points + excluded.points,
    x = x + excluded.x, y = y + excluded.y
"""
_CHUNK = 500
_SET_CACHE_MAX = 50_000
_DAY = 86400

Row = list[Any]
#: A pending close: ``_PENDING_COLUMNS`` in order.
Pending = tuple[Any, ...]
Deltas = dict[tuple[str, str, str], list[int]]
T = TypeVar("T")


class StoreError(TelemetryError):
    """The database cannot be opened for what the collector needs (for example, writing)."""


@frozen
class WriteResult:
    """What one ``write_batch`` did."""

    #: Runs created or changed (a duplicate changes nothing).
    changed: int
    #: Parsl closes kept until their start arrives.
    pending: int
    #: Messages dropped because their run was deleted.
    suppressed: int


class Store(Protocol):
    """What ingest and HTTP need from a store; SQLite today, PostgreSQL could follow."""

    def write_batch(self, records: Sequence[Record]) -> WriteResult:
        """Apply ``records`` in order, in one transaction."""
        ...

    def products(self) -> list[dict[str, Any]]:
        """Every product with its run and point totals."""
        ...

    def leaderboard(
        self, product: str, limit: int = 50, period: Period | None = None
    ) -> list[dict[str, Any]]:
        """Named projects of ``product`` ranked by points (in ``period``, or all time)."""
        ...

    def stats(self, product: str, period: Period | None = None) -> dict[str, Any]:
        """Usage figures of ``product`` for the dashboard (in ``period``, or all time)."""
        ...

    def view(self, function: Callable[..., T], *args: Any) -> T:
        """``function(query, *args)`` over one snapshot, ``query`` running read statements."""
        ...

    def get_run(self, correlator: str) -> dict[str, Any] | None:
        """Everything held about one run, or ``None``."""
        ...

    def delete_run(self, correlator: str) -> int:
        """Delete everything held about one run; return how many records went."""
        ...

    def expire_pending(self, received_before: int) -> int:
        """Drop held Parsl closes received before ``received_before`` (epoch s); how many."""
        ...

    def pending_count(self) -> int:
        """How many Parsl closes are held, waiting for their start."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a database made by an older version up to this schema.

    Databases from before the per-day rollups counted a run on the day it was received:
    their runs move to the day they started, and every rollup is recomputed, once.
    """
    columns = {row[1] for row in conn.execute("PRAGMA table_info(pending_closes)")}
    if "received" not in columns:
        # Held closes from before: their receipt is known to the day.
        conn.execute("ALTER TABLE pending_closes ADD COLUMN received INTEGER")
        conn.execute(f"UPDATE pending_closes SET received = day * {_DAY}")
    conn.execute("CREATE INDEX IF NOT EXISTS pending_by_received ON pending_closes (received)")
    if conn.execute("SELECT 1 FROM collector_meta WHERE key = 'day_rollup'").fetchone() is None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                f"UPDATE runs SET day = start / {_DAY} WHERE has_start AND start IS NOT NULL"
            )
            _rebuild(conn)
            conn.execute("INSERT INTO collector_meta (key, value) VALUES ('day_rollup', 1)")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _apply_deltas(conn: sqlite3.Connection, deltas: Deltas, days: DayDeltas) -> None:
    changes = [(*k, *v) for k, v in deltas.items() if any(v)]
    if changes:
        conn.executemany(_UPSERT_ROLLUP, changes)
        emptied = [k for k, v in deltas.items() if v[0] < 0]
        if emptied:
            conn.executemany(
                "DELETE FROM rollup WHERE kind = ? AND product = ? AND key = ? AND runs <= 0",
                emptied,
            )
    day_changes = [(k[1], k[0], k[2], k[3], *v) for k, v in days.items() if any(v)]
    if day_changes:
        conn.executemany(_UPSERT_DAY_ROLLUP, day_changes)
        emptied_days = [(k[1], k[0], k[2], k[3]) for k, v in days.items() if v[0] < 0]
        if emptied_days:
            conn.executemany(
                "DELETE FROM day_rollup WHERE product = ? AND kind = ? AND day = ? AND key = ? "
                "AND runs <= 0",
                emptied_days,
            )


def _rebuild(conn: sqlite3.Connection) -> None:
    """Recompute every rollup from the runs, inside the caller's transaction."""
    conn.execute("DELETE FROM rollup")
    conn.execute("DELETE FROM day_rollup")
    signatures: dict[Signature, int] = {}
    cursor = conn.execute(f"SELECT {_RUN_COLUMNS} FROM {_RUN_FROM}")
    while batch := cursor.fetchmany(10_000):
        for row in batch:
            signature = _signature(list(row))
            if signature is not None:
                signatures[signature] = signatures.get(signature, 0) + 1
    deltas: Deltas = {}
    day_deltas: DayDeltas = {}
    _tally(signatures, deltas, day_deltas)
    _apply_deltas(conn, deltas, day_deltas)


def correlator_key(correlator: str) -> bytes:
    """The 16-byte key a (validated, lower-case) correlator is stored under."""
    return bytes.fromhex(correlator.replace("-", ""))


def _corr_text(key: bytes) -> str:
    return str(uuid.UUID(bytes=key))


# Indexes of a run row (a list, in ``_COLUMNS`` order).
(
    _PRODUCT,
    _VERSION,
    _PYTHON,
    _PLATFORM,
    _LEVEL,
    _PROJECT,
    _COMPONENTS,
    _CLOSE_COMPONENTS,
    _START,
    _END,
    _EXEC,
    _APP_COUNT,
    _APP_FAILS,
    _HAS_START,
    _HAS_CLOSE,
    _DAY_COL,
) = range(len(_COLUMNS))

#: What a run counts for in the rollups, as a hashable signature (see ``_signature``).
Signature = tuple[Any, ...]


@functools.lru_cache(maxsize=4096)
def _names(components: str | None, *, skip_app_counts: bool) -> tuple[str, ...]:
    if not components:
        return ()
    names: dict[str, None] = {}
    for item in orjson.loads(components):
        if isinstance(item, str):
            names[item] = None
        elif isinstance(item, dict) and not (skip_app_counts and "app_count" in item):
            names[str(item["c"])] = None
    return tuple(names)


def _signature(row: Row) -> Signature | None:
    """Everything about a run the rollups depend on; ``None`` if it counts for nothing."""
    if row[_LEVEL] is None:
        return None
    has_start = row[_HAS_START]
    return (
        row[_PRODUCT],
        row[_LEVEL],
        row[_DAY_COL],
        row[_VERSION],
        row[_PYTHON],
        row[_PLATFORM],
        row[_PROJECT],
        has_start,
        row[_COMPONENTS] if has_start else row[_CLOSE_COMPONENTS],
        row[_APP_COUNT],
        row[_APP_FAILS],
        None if row[_EXEC] is None else exec_bucket(row[_EXEC]),
        row[_HAS_CLOSE],
    )


def _contribute(signature: Signature, times: int, deltas: Deltas, days: DayDeltas) -> None:
    """Add what ``times`` runs with this signature count for (negative ``times`` subtracts)."""
    (product, level, day, version, python_v, platform, project, has_start, components,
     app_count, app_fails, bucket, has_close) = signature  # fmt: skip
    names = _names(components, skip_app_counts=not has_start)
    add_run(
        days,
        times,
        product=product,
        day=day,
        level=level,
        version=version,
        python_v=python_v,
        platform=platform,
        project=project,
        components=names,
        has_start=bool(has_start),
        has_close=bool(has_close),
        app_count=app_count,
        app_fails=app_fails,
        exec_bucket=bucket,
    )
    points = times * (2 if level == 3 else 1)

    def add(kind: str, key: str, pts: int = 0, x: int = 0, y: int = 0) -> None:
        entry = deltas.get((kind, product, key))
        if entry is None:
            entry = deltas[(kind, product, key)] = [0, 0, 0, 0]
        entry[0] += times
        entry[1] += pts
        entry[2] += x
        entry[3] += y

    add("total", "", points)
    add("level", str(level), points)
    add("day", str(day), points)
    if version is not None:
        add("version", version)
    if python_v is not None:
        add("python", python_v)
    if platform is not None:
        add("platform", platform)
    if project is not None:
        add("project", project, points)
    for name in names:
        add("component", name)
    if app_count is not None:
        add("apps", "", 0, times * app_count, times * app_fails)
    if bucket is not None:
        add("exec", str(bucket))


def _tally(signatures: dict[Signature, int], deltas: Deltas, days: DayDeltas) -> None:
    for signature, times in signatures.items():
        if times:
            _contribute(signature, times, deltas, days)


def _new_row(product: str, day: int) -> Row:
    row: Row = [None] * len(_COLUMNS)
    row[_PRODUCT] = product
    row[_HAS_START] = row[_HAS_CLOSE] = 0
    row[_DAY_COL] = day
    return row


def _fill_start(row: Row, record: Record) -> None:
    row[_VERSION] = record.version
    row[_PYTHON] = record.python_v
    row[_PLATFORM] = record.platform
    row[_LEVEL] = record.level
    row[_COMPONENTS] = record.components
    row[_START] = record.start
    row[_HAS_START] = 1
    if record.project is not None:
        row[_PROJECT] = record.project
    # A run counts on the day it started; without a start time, the day it was received.
    if record.start is not None:
        row[_DAY_COL] = record.start // _DAY
    else:
        row[_DAY_COL] = min(row[_DAY_COL], record.received // _DAY)


def _fill_close(
    row: Row, close: Pending, version: str | None = None, level: int | None = None
) -> None:
    """Fill a run from a close (as a pending-close tuple); ``version`` and ``level`` if sent."""
    project, components, end, duration, app_count, app_fails, day = close
    row[_CLOSE_COMPONENTS] = components
    row[_END] = end
    row[_EXEC] = duration
    row[_APP_COUNT] = app_count
    row[_APP_FAILS] = app_fails
    row[_HAS_CLOSE] = 1
    if row[_PROJECT] is None:
        row[_PROJECT] = project
    if not row[_HAS_START]:
        row[_DAY_COL] = min(row[_DAY_COL], day)
        if row[_VERSION] is None:
            row[_VERSION] = version
        if row[_LEVEL] is None:
            row[_LEVEL] = level


def _pending_from(record: Record) -> Pending:
    return (
        record.project,
        record.components,
        record.end,
        record.execution_time,
        record.app_count,
        record.app_fails,
        record.received // _DAY,
    )


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


@define
class _Run:
    """A run touched by the batch: its row id, the row before and the row after."""

    id: int | None
    old: Row | None
    new: Row


@define
class SQLiteStore:
    """The SQLite store (WAL mode). One writer connection; readers open ``readonly=True``.

    Every write is one transaction that either commits whole or leaves the database *and*
    this object's caches as they were; every read that takes several statements sees one
    snapshot.

    >>> store = SQLiteStore.open("usage.db")
    >>> store.write_batch([record_from_message(message)])
    """

    path: str
    _conn: sqlite3.Connection
    readonly: bool = False
    _lock: threading.RLock = field(factory=threading.RLock)
    #: Component list (JSON text) -> id in ``component_sets``: only ids that are committed.
    _set_ids: dict[str, int] = field(factory=dict)
    #: Ids stored by the transaction in progress; they join ``_set_ids`` once it commits.
    _new_set_ids: dict[str, int] = field(factory=dict)

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False) -> SQLiteStore:
        """Open (and, unless ``readonly``, create) the database at ``path``.

        Unless ``readonly``, the store proves it can write (one committed row in
        ``collector_meta``) and raises ``StoreError`` saying why when it cannot: a
        read-only file, a directory where SQLite cannot create the ``-wal`` and ``-shm``
        files, a full disk.
        """
        text = str(path)
        if readonly:
            uri = f"{Path(text).resolve().as_uri()}?mode=ro"
            reader = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            reader.execute("PRAGMA busy_timeout = 5000")
            reader.execute("PRAGMA query_only = ON")
            return cls(text, reader, readonly=True)
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(text, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA cache_size = -32768")
            conn.executescript(_SCHEMA)
            _migrate(conn)
            conn.execute(
                "INSERT OR REPLACE INTO collector_meta (key, value) VALUES ('opened', ?)",
                (int(time.time()),),
            )
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                msg = "SQLite could not switch it to WAL mode (it needs to create -wal and -shm)"
                raise sqlite3.OperationalError(msg)
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            msg = (
                f"cannot write the database {text}: {exc}; the collector needs to write the "
                "file and to create files next to it (-wal, -shm): check the permissions "
                "of the file and its directory, and the free space"
            )
            raise StoreError(msg) from exc
        return cls(text, conn)

    def close(self) -> None:
        """Release the connection."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it commits, or none of it and no cache keeps it."""
        with self._lock:
            conn = self._conn
            self._new_set_ids.clear()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # SQLite rolls some failures back by itself (SQLITE_FULL, SQLITE_IOERR):
                # a ROLLBACK then fails, and must not hide the first error.
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        logger.warning("rolling back failed", exc_info=True)
                self._new_set_ids.clear()
                raise
            if len(self._set_ids) + len(self._new_set_ids) > _SET_CACHE_MAX:
                self._set_ids.clear()
            self._set_ids.update(self._new_set_ids)
            self._new_set_ids.clear()

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """Several reads that see one state of the database (a read transaction)."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN")
            try:
                yield
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    # -- writing --

    def write_batch(self, records: Sequence[Record]) -> WriteResult:
        """Apply ``records`` in order, in one transaction; duplicates change nothing.

        This is the ingest path; it is also the fast way to fill a database with
        synthetic runs (batches of a few thousand records).
        """
        if not records:
            return WriteResult(0, 0, 0)
        with self._transaction() as conn:
            return self._apply(conn, records)

    def _select_in(
        self, conn: sqlite3.Connection, sql: str, keys: Sequence[bytes]
    ) -> Iterator[tuple[Any, ...]]:
        for chunk in _chunks(keys):
            marks = ", ".join("?" * len(chunk))
            yield from conn.execute(sql.format(marks=marks), chunk)

    def _apply(self, conn: sqlite3.Connection, records: Sequence[Record]) -> WriteResult:
        keyed = [(correlator_key(r.correlator), r) for r in records]
        keys = list({k for k, _ in keyed})
        # Most batches meet no deleted run and no held Parsl close: skip those lookups then.
        any_deleted, any_pending = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM deleted_runs), EXISTS (SELECT 1 FROM pending_closes)"
        ).fetchone()
        deleted = (
            {
                row[0]
                for row in self._select_in(
                    conn, "SELECT corr FROM deleted_runs WHERE corr IN ({marks})", keys
                )
            }
            if any_deleted
            else set()
        )
        runs: dict[tuple[bytes, str], _Run] = {}
        by_corr: dict[bytes, list[_Run]] = {}
        for row in self._select_in(
            conn,
            f"SELECT runs.id, runs.corr, {_RUN_COLUMNS} FROM {_RUN_FROM} "
            "WHERE runs.corr IN ({marks})",
            keys,
        ):
            old = list(row[2:])
            run = _Run(row[0], old, list(old))
            runs[(row[1], old[_PRODUCT])] = run
            by_corr.setdefault(row[1], []).append(run)
        pending_old: dict[bytes, Pending] = (
            {
                row[0]: row[1:]
                for row in self._select_in(
                    conn,
                    f"SELECT p.corr, {_PENDING_COLUMNS_TEXT} FROM {_PENDING_FROM} "
                    "WHERE p.corr IN ({marks})",
                    keys,
                )
            }
            if any_pending
            else {}
        )
        pending_new: dict[bytes, Pending] = {}
        pending_gone: set[bytes] = set()
        pending_received: dict[bytes, int] = {}
        suppressed = 0

        for key, record in keyed:
            if key in deleted:
                suppressed += 1
                continue
            product = record.product
            if product is None:  # a Parsl close: join by correlator
                targets = by_corr.get(key)
                if targets:
                    for run in targets:
                        if not run.new[_HAS_CLOSE]:
                            _fill_close(run.new, _pending_from(record))
                elif key not in pending_old and key not in pending_new:
                    pending_new[key] = _pending_from(record)
                    pending_received[key] = record.received
                continue
            run_or_none = runs.get((key, product))
            if run_or_none is None:
                run = _Run(None, None, _new_row(product, record.received // _DAY))
                runs[(key, product)] = run
                by_corr.setdefault(key, []).append(run)
            else:
                run = run_or_none
            current = run.new
            if record.kind == "start":
                if current[_HAS_START]:
                    continue
                _fill_start(current, record)
                waiting = pending_new.pop(key, None)
                if waiting is None and key in pending_old and key not in pending_gone:
                    waiting = pending_old[key]
                    pending_gone.add(key)
                if waiting is not None and not current[_HAS_CLOSE]:
                    _fill_close(current, waiting)
            elif not current[_HAS_CLOSE]:
                _fill_close(current, _pending_from(record), record.version, record.level)

        signatures: dict[Signature, int] = {}
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        for (key, _), run in runs.items():
            if run.old == run.new:
                continue
            if run.old is not None:
                old_signature = _signature(run.old)
                if old_signature is not None:
                    signatures[old_signature] = signatures.get(old_signature, 0) - 1
                updates.append((*run.new, run.id))
            else:
                inserts.append((key, *run.new))
            new_signature = _signature(run.new)
            if new_signature is not None:
                signatures[new_signature] = signatures.get(new_signature, 0) + 1
        if inserts:
            conn.executemany(_INSERT_RUN, [self._stored_run(conn, row, 1) for row in inserts])
        if updates:
            conn.executemany(_UPDATE_RUN, [self._stored_run(conn, row, 0) for row in updates])
        if pending_new:
            set_id = self._set_id
            conn.executemany(
                _INSERT_PENDING,
                [
                    (k, v[0], set_id(conn, v[1]), *v[2:], pending_received[k])
                    for k, v in pending_new.items()
                ],
            )
        if pending_gone:
            conn.executemany(
                "DELETE FROM pending_closes WHERE corr = ?", [(k,) for k in pending_gone]
            )
        deltas: Deltas = {}
        day_deltas: DayDeltas = {}
        _tally(signatures, deltas, day_deltas)
        _apply_deltas(conn, deltas, day_deltas)
        return WriteResult(len(inserts) + len(updates), len(pending_new), suppressed)

    def _set_id(self, conn: sqlite3.Connection, text: str | None) -> int | None:
        """The id of a component list (JSON text), stored the first time it is seen."""
        if text is None:
            return None
        found = self._set_ids.get(text)
        if found is None:
            found = self._new_set_ids.get(text)
        if found is None:
            conn.execute(
                "INSERT INTO component_sets (json) VALUES (?) ON CONFLICT (json) DO NOTHING",
                (text,),
            )
            (found,) = conn.execute(
                "SELECT id FROM component_sets WHERE json = ?", (text,)
            ).fetchone()
            self._new_set_ids[text] = found
        return found

    def _stored_run(
        self, conn: sqlite3.Connection, values: tuple[Any, ...], offset: int
    ) -> tuple[Any, ...]:
        """A run's values as stored: component lists replaced by their ids."""
        out = list(values)
        for index in (_COMPONENTS + offset, _CLOSE_COMPONENTS + offset):
            out[index] = self._set_id(conn, out[index])
        return tuple(out)

    def delete_run(self, correlator: str) -> int:
        """Delete everything held about one run, in every view; return how many records went.

        The correlator is remembered (nothing else) so that a late datagram of the same
        run is dropped instead of bringing it back.
        """
        key = correlator_key(correlator)
        with self._transaction() as conn:
            deltas: Deltas = {}
            day_deltas: DayDeltas = {}
            rows = conn.execute(
                f"SELECT runs.id, {_RUN_COLUMNS} FROM {_RUN_FROM} WHERE runs.corr = ?", (key,)
            ).fetchall()
            for row in rows:
                signature = _signature(list(row[1:]))
                if signature is not None:
                    _contribute(signature, -1, deltas, day_deltas)
            conn.execute("DELETE FROM runs WHERE corr = ?", (key,))
            gone = (
                len(rows)
                + conn.execute("DELETE FROM pending_closes WHERE corr = ?", (key,)).rowcount
            )
            conn.execute("INSERT OR IGNORE INTO deleted_runs (corr) VALUES (?)", (key,))
            _apply_deltas(conn, deltas, day_deltas)
        return gone

    def expire_pending(self, received_before: int) -> int:
        """Drop the held Parsl closes received before ``received_before`` (epoch seconds).

        A close whose start never arrives would otherwise be held forever and count in no
        view. Returns how many were dropped. It also notes when it ran (``collector_meta``),
        so that it always writes: an idle collector learns this way whether it still can.
        """
        with self._transaction() as conn:
            dropped = conn.execute(
                "DELETE FROM pending_closes WHERE received < ?", (received_before,)
            ).rowcount
            conn.execute(
                "INSERT OR REPLACE INTO collector_meta (key, value) VALUES ('expired', ?)",
                (int(time.time()),),
            )
            return dropped

    def pending_count(self) -> int:
        """How many Parsl closes are held, waiting for their start."""
        return int(self._query("SELECT count(*) FROM pending_closes")[0][0])

    def rebuild_rollups(self) -> None:
        """Recompute every rollup from the runs (after a bulk load or a manual repair)."""
        with self._transaction() as conn:
            _rebuild(conn)

    # -- reading --

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    def products(self) -> list[dict[str, Any]]:
        """Every product with its run and point totals, most runs first."""
        rows = self._query(
            "SELECT product, runs, points FROM rollup WHERE kind = 'total' AND runs > 0 "
            "ORDER BY runs DESC, product"
        )
        return [{"product": p, "runs": r, "points": s} for p, r, s in rows]

    def leaderboard(
        self, product: str, limit: int = 50, period: Period | None = None
    ) -> list[dict[str, Any]]:
        """Named projects of ``product`` ranked by points (level 1-2: 1, level 3: 2 a run).

        Points earned in ``period``, or all time; equal points share a rank (1, 1, 3).
        """
        if period is not None:
            rows = self.view(period_leaderboard, product, period, limit)
        else:
            found = self._query(
                "SELECT key, points, runs FROM rollup WHERE kind = 'project' AND product = ? "
                "AND runs > 0 ORDER BY points DESC, runs DESC, key LIMIT ?",
                (product, limit),
            )
            rows = rank([(k, int(p), int(r)) for k, p, r in found])
        return [
            {"rank": r.rank, "project": r.project, "points": r.points, "runs": r.runs} for r in rows
        ]

    def view(self, function: Callable[..., T], *args: Any) -> T:
        """``function(query, *args)`` over one snapshot, ``query`` running read statements.

        The period views (``_period_views``) are run this way.
        """
        with self._snapshot():
            return function(self._query, *args)

    def _top(self, kind: str, product: str, limit: int = 20) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT key, runs FROM rollup WHERE kind = ? AND product = ? AND runs > 0 "
            "ORDER BY runs DESC, key LIMIT ?",
            (kind, product, limit),
        )
        return [{"name": k, "runs": r} for k, r in rows]

    def stats(self, product: str, period: Period | None = None) -> dict[str, Any]:
        """Runs per day, versions, Python versions, platforms, components, apps, run times.

        Of ``period``, or all time.
        """
        if period is not None:
            return self.view(period_stats, product, period)
        with self._snapshot():
            return self._stats(product)

    def _stats(self, product: str) -> dict[str, Any]:
        total = self._query(
            "SELECT runs, points FROM rollup WHERE kind = 'total' AND product = ?", (product,)
        )
        runs, points = total[0] if total else (0, 0)
        days = self._query(
            "SELECT key, runs FROM rollup WHERE kind = 'day' AND product = ? AND runs > 0",
            (product,),
        )
        per_day = sorted((int(k), r) for k, r in days)[-366:]
        levels = dict(
            self._query(
                "SELECT key, runs FROM rollup WHERE kind = 'level' AND product = ? AND runs > 0",
                (product,),
            )
        )
        apps = self._query(
            "SELECT runs, x, y FROM rollup WHERE kind = 'apps' AND product = ?", (product,)
        )
        app_runs, app_count, app_fails = apps[0] if apps else (0, 0, 0)
        buckets = dict(
            self._query(
                "SELECT key, runs FROM rollup WHERE kind = 'exec' AND product = ?", (product,)
            )
        )
        return {
            "product": product,
            "runs": runs,
            "points": points,
            "levels": {str(n): levels.get(str(n), 0) for n in (1, 2, 3)},
            "runs_per_day": [
                {"day": datetime.date.fromordinal(_EPOCH_ORDINAL + d).isoformat(), "runs": r}
                for d, r in per_day
            ],
            "versions": self._top("version", product),
            "python_versions": self._top("python", product),
            "platforms": self._top("platform", product),
            "components": self._top("component", product),
            "apps": {
                "runs": app_runs,
                "apps": app_count,
                "failures": app_fails,
                "failure_rate": (app_fails / app_count) if app_count else 0.0,
            },
            "execution_time": [
                {"bucket": label, "runs": buckets.get(str(i), 0)}
                for i, (_, label) in enumerate(EXEC_BUCKETS)
            ],
        }

    def get_run(self, correlator: str) -> dict[str, Any] | None:
        """Everything held about one run (per product), or ``None`` if nothing is."""
        key = correlator_key(correlator)
        with self._snapshot():
            rows = self._query(
                f"SELECT {_RUN_COLUMNS} FROM {_RUN_FROM} WHERE runs.corr = ?", (key,)
            )
            pending = self._query(
                f"SELECT {_PENDING_COLUMNS_TEXT} FROM {_PENDING_FROM} WHERE p.corr = ?", (key,)
            )
        if not rows and not pending:
            return None
        return {
            "correlator": _corr_text(key),
            "runs": [_public_row(dict(zip(_COLUMNS, row, strict=True))) for row in rows],
            "pending_close": (
                _public_row(dict(zip(_PENDING_COLUMNS, pending[0], strict=True)))
                if pending
                else None
            ),
        }


_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()


def _public_row(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for name in ("components", "close_components"):
        if out.get(name) is not None:
            out[name] = orjson.loads(out[name])
    for name in ("has_start", "has_close"):
        if name in out:
            out[name] = bool(out[name])
    out["received_day"] = datetime.date.fromordinal(_EPOCH_ORDINAL + out.pop("day")).isoformat()
    return out
