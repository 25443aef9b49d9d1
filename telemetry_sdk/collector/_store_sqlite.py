"""The SQLite store: the SQL of the embedded default engine (one file, WAL mode).

Every write is one ``BEGIN IMMEDIATE`` transaction, so any number of writers (threads or
processes) on one file are serialised by SQLite; a transaction either commits whole or
leaves the database *and* this object's caches as they were. Every read that takes several
statements sees one snapshot. How runs merge and what they count for is shared with the
other engines (``_run_merge``, ``_rollup``, ``_store_views``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from attrs import define, field

from ._component_sets import ComponentSetIds
from ._ingest import Record
from ._rollup import Deltas, tally, upgrade_to_days
from ._run_merge import (
    DAY,
    Held,
    HeldClose,
    KeyedRun,
    MergePlan,
    RunRow,
    StoredRun,
    correlator_key,
    merge_batch,
)
from ._run_merge import (
    ROW_COLUMNS as _ROW_COLUMNS,
)
from ._store import SCHEMA_VERSION, StoreError, WriteResult, migrate_hint
from ._store_views import (
    LeaderboardRow,
    ProductStats,
    ProductTotals,
    RunDetail,
    read_leaderboard,
    read_products,
    read_stats,
)

logger = logging.getLogger("telemetry_sdk.collector")

__all__ = ["SQLiteStore"]

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
    day INTEGER NOT NULL,
    received INTEGER,
    ci INTEGER,
    last_received INTEGER,
    heartbeats INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_key ON runs (corr, product);
CREATE INDEX IF NOT EXISTS runs_by_day ON runs (day);
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
CREATE INDEX IF NOT EXISTS pending_by_received ON pending_closes (received);
CREATE TABLE IF NOT EXISTS deleted_runs (corr BLOB PRIMARY KEY) WITHOUT ROWID;
-- What the collector notes about itself (schema version, last start): proves it can write.
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
"""

_STORED = ", ".join(f'"{c}"' for c in (*_ROW_COLUMNS, "day"))
# Reading a run: the component lists come back as their JSON text.
_RUN_FROM = (
    "runs LEFT JOIN component_sets AS c1 ON c1.id = runs.components "
    "LEFT JOIN component_sets AS c2 ON c2.id = runs.close_components"
)
_RUN_SELECT = ", ".join(
    {"components": "c1.json", "close_components": "c2.json"}.get(c, f'runs."{c}"')
    for c in _ROW_COLUMNS
)
_INSERT_RUN = f"INSERT INTO runs (corr, {_STORED}) VALUES (?{', ?' * (len(_ROW_COLUMNS) + 1)})"
_UPDATE_RUN = (
    "UPDATE runs SET " + ", ".join(f'"{c}" = ?' for c in (*_ROW_COLUMNS, "day")) + " WHERE id = ?"
)
_HELD_SELECT = (
    'p.project, c.json, p."end", p.execution_time, p.app_count, p.app_fails, '
    "coalesce(p.received, p.day * 86400)"
)
_HELD_FROM = "pending_closes AS p LEFT JOIN component_sets AS c ON c.id = p.close_components"
_INSERT_HELD = (
    'INSERT INTO pending_closes (corr, project, close_components, "end", execution_time, '
    "app_count, app_fails, day, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_ROLLUP = """
INSERT INTO rollup (kind, product, key, runs, points, x, y) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (kind, product, key) DO UPDATE SET
    runs = rollup.runs + excluded.runs, points = rollup.points + excluded.points,
    x = rollup.x + excluded.x, y = rollup.y + excluded.y
"""
T = TypeVar("T")
#: Keys per ``IN (...)`` at most (SQLite's limit on variables is far above).
_CHUNK = 500


def _row(values: Sequence[Any]) -> RunRow:
    """A ``RunRow`` from ``_RUN_SELECT``'s values."""
    row = RunRow(*values)
    row.has_start = bool(row.has_start)
    row.has_close = bool(row.has_close)
    if row.ci is not None:
        row.ci = bool(row.ci)
    return row


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _schema_version(conn: sqlite3.Connection) -> int | None:
    """The version of the database's schema; ``None`` for an empty database."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "runs" not in tables:
        return None
    if "collector_meta" in tables:
        found = conn.execute(
            "SELECT value FROM collector_meta WHERE key = 'schema_version'"
        ).fetchone()
        if found is not None:
            return int(found[0])
    columns = {row[1] for row in conn.execute("PRAGMA table_info(pending_closes)")}
    return 2 if "received" in columns else 1


def _create(conn: sqlite3.Connection) -> None:
    """Create what is missing of the schema, in the open transaction (``executescript``
    would commit it)."""
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


def _upgrade(conn: sqlite3.Connection, version: int) -> None:
    """Bring a database of schema ``version`` up to ``SCHEMA_VERSION`` (in a transaction)."""
    if version < 2:
        # Held closes from before: their receipt is known to the day.
        conn.execute("ALTER TABLE pending_closes ADD COLUMN received INTEGER")
        conn.execute(f"UPDATE pending_closes SET received = day * {DAY}")
    if version < 3:
        # Runs from before: their first receipt is known to the day.
        conn.execute("ALTER TABLE runs ADD COLUMN received INTEGER")
        conn.execute(f"UPDATE runs SET received = day * {DAY}")
    if version < 4:
        # Runs from before heartbeats and the CI flag: not known to be CI, last heard of
        # when first received.
        for column in ("ci", "last_received", "heartbeats"):
            conn.execute(f"ALTER TABLE runs ADD COLUMN {column} INTEGER")
        conn.execute("UPDATE runs SET last_received = received")
    _create(conn)  # tables and indexes added since
    if version < 5:
        # Runs move to the day they started, and get their per-day rollups.
        cursor = conn.execute(f"SELECT {_RUN_SELECT} FROM {_RUN_FROM}")
        while batch := cursor.fetchmany(50_000):
            SQLiteStore._apply_deltas(conn, upgrade_to_days([_row(r) for r in batch]))


@define
class SQLiteStore:
    """The SQLite store (WAL mode). One writer connection; readers open ``readonly=True``.

    >>> store = SQLiteStore.open("usage.db")
    >>> store.write_batch([record_from_message(message)])
    """

    path: str
    _conn: sqlite3.Connection
    readonly: bool = False
    _lock: threading.RLock = field(factory=threading.RLock)
    _set_ids: ComponentSetIds = field(factory=ComponentSetIds)

    @property
    def location(self) -> str:
        """The database file."""
        return self.path

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        readonly: bool = False,
        migrate: bool = True,
        create: bool = True,
    ) -> SQLiteStore:
        """Open (and, unless ``readonly``, create or upgrade) the database at ``path``.

        Unless ``readonly``, the store proves it can write (one committed row in
        ``collector_meta``) and raises ``StoreError`` saying why when it cannot: a
        read-only file, a directory where SQLite cannot create the ``-wal`` and ``-shm``
        files, a full disk. A database of another schema version is refused (an older one
        is upgraded first, unless ``migrate`` is false); without ``create``, so is a
        missing file.
        """
        text = str(path)
        if not (create and not readonly) and not Path(text).is_file():
            msg = f"no database at {text}"
            raise StoreError(msg)
        if readonly:
            try:
                uri = f"{Path(text).resolve().as_uri()}?mode=ro"
                reader = sqlite3.connect(
                    uri, uri=True, isolation_level=None, check_same_thread=False
                )
                reader.execute("PRAGMA busy_timeout = 5000")
                reader.execute("PRAGMA query_only = ON")
                version = _schema_version(reader)
            except sqlite3.Error as exc:
                msg = f"cannot read the database {text}: {exc}"
                raise StoreError(msg) from exc
            try:
                _check_version(text, version, readonly=True)
            except StoreError:
                reader.close()
                raise
            return cls(text, reader, readonly=True)
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(text, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA cache_size = -32768")
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = _schema_version(conn)
                _check_version(text, version, readonly=False, migrate=migrate)
                if version is not None and version < SCHEMA_VERSION:
                    logger.info("upgrading %s from schema %d to %d", text, version, SCHEMA_VERSION)
                    _upgrade(conn, version)
                else:
                    _create(conn)
                conn.executemany(
                    "INSERT OR REPLACE INTO collector_meta (key, value) VALUES (?, ?)",
                    [("schema_version", SCHEMA_VERSION), ("opened", int(time.time()))],
                )
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                msg = "SQLite could not switch it to WAL mode (it needs to create -wal and -shm)"
                raise sqlite3.OperationalError(msg)
        except (sqlite3.Error, StoreError) as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, StoreError):
                raise
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
            self._set_ids.begin()
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
                self._set_ids.rolled_back()
                raise
            self._set_ids.committed()

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
            keys = sorted({correlator_key(r.correlator) for r in records})
            plan = merge_batch(records, self._held(conn, keys))
            self._write_plan(conn, plan)
            return WriteResult(plan.changed, len(plan.hold), plan.suppressed)

    def _select_in(
        self, conn: sqlite3.Connection, sql: str, keys: Sequence[bytes]
    ) -> Iterator[tuple[Any, ...]]:
        for chunk in _chunks(keys):
            marks = ", ".join("?" * len(chunk))
            yield from conn.execute(sql.format(marks=marks), chunk)

    def _held(self, conn: sqlite3.Connection, keys: Sequence[bytes]) -> Held:
        """What the database holds about ``keys``."""
        # Most batches meet no deleted run and no held Parsl close: skip those lookups then.
        any_deleted, any_pending = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM deleted_runs), EXISTS (SELECT 1 FROM pending_closes)"
        ).fetchone()
        deleted = frozenset(
            row[0]
            for row in (
                self._select_in(conn, "SELECT corr FROM deleted_runs WHERE corr IN ({marks})", keys)
                if any_deleted
                else ()
            )
        )
        runs = []
        for row in self._select_in(
            conn,
            f"SELECT runs.id, runs.corr, {_RUN_SELECT} FROM {_RUN_FROM} "
            "WHERE runs.corr IN ({marks})",
            keys,
        ):
            old = _row(row[2:])
            runs.append(StoredRun(row[1], row[0], old, old.copy()))
        held = (
            {
                row[0]: HeldClose(*row[1:])
                for row in self._select_in(
                    conn,
                    f"SELECT p.corr, {_HELD_SELECT} FROM {_HELD_FROM} WHERE p.corr IN ({{marks}})",
                    keys,
                )
            }
            if any_pending
            else {}
        )
        return Held(deleted, runs, held)

    def _write_plan(self, conn: sqlite3.Connection, plan: MergePlan) -> None:
        if plan.inserts:
            conn.executemany(
                _INSERT_RUN, [(run.key, *self._stored(conn, run.new)) for run in plan.inserts]
            )
        if plan.updates:
            conn.executemany(
                _UPDATE_RUN, [(*self._stored(conn, run.new), run.id) for run in plan.updates]
            )
        if plan.hold:
            conn.executemany(
                _INSERT_HELD,
                [
                    (
                        key,
                        close.project,
                        self._set_id(conn, close.close_components),
                        close.end,
                        close.execution_time,
                        close.app_count,
                        close.app_fails,
                        close.day,
                        close.received,
                    )
                    for key, close in plan.hold.items()
                ],
            )
        if plan.joined:
            conn.executemany(
                "DELETE FROM pending_closes WHERE corr = ?", [(k,) for k in plan.joined]
            )
        self._apply_deltas(
            conn,
            tally(
                [(run.old, run.new) for run in plan.updates]
                + [(None, run.new) for run in plan.inserts]
            ),
        )

    def _set_id(self, conn: sqlite3.Connection, text: str | None) -> int | None:
        """The id of a component list (JSON text), stored the first time it is seen."""

        def store(json: str) -> int:
            conn.execute(
                "INSERT INTO component_sets (json) VALUES (?) ON CONFLICT (json) DO NOTHING",
                (json,),
            )
            found: int = conn.execute(
                "SELECT id FROM component_sets WHERE json = ?", (json,)
            ).fetchone()[0]
            return found

        return self._set_ids.get(text, store)

    def _stored(self, conn: sqlite3.Connection, row: RunRow) -> tuple[Any, ...]:
        """A run's values as stored (``_ROW_COLUMNS``, then its day): lists as set ids."""
        return row.stored(lambda text: self._set_id(conn, text))

    @staticmethod
    def _apply_deltas(conn: sqlite3.Connection, deltas: Deltas) -> None:
        if not deltas:
            return
        conn.executemany(_UPSERT_ROLLUP, [(*k, *v) for k, v in deltas.items()])
        emptied = [k for k, v in deltas.items() if v[0] < 0]
        if emptied:
            conn.executemany(
                "DELETE FROM rollup WHERE kind = ? AND product = ? AND key = ? AND runs <= 0",
                emptied,
            )

    def delete_run(self, correlator: str) -> int:
        """Delete everything held about one run, in every view; return how many records went.

        The correlator is remembered (nothing else) so that a late datagram of the same
        run is dropped instead of bringing it back.
        """
        key = correlator_key(correlator)
        with self._transaction() as conn:
            rows = [
                _row(r)
                for r in conn.execute(
                    f"SELECT {_RUN_SELECT} FROM {_RUN_FROM} WHERE runs.corr = ?", (key,)
                )
            ]
            conn.execute("DELETE FROM runs WHERE corr = ?", (key,))
            gone = (
                len(rows)
                + conn.execute("DELETE FROM pending_closes WHERE corr = ?", (key,)).rowcount
            )
            conn.execute("INSERT OR IGNORE INTO deleted_runs (corr) VALUES (?)", (key,))
            self._apply_deltas(conn, tally([(row, None) for row in rows]))
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
            return int(dropped)

    def remove_old_runs(self, received_before: int, limit: int) -> int:
        """Remove at most ``limit`` runs first received on a day before ``received_before``'s.

        The rollups keep what they counted for; a short transaction each call.
        """
        with self._transaction() as conn:
            return int(
                conn.execute(
                    "DELETE FROM runs WHERE id IN "
                    "(SELECT id FROM runs WHERE day < ? ORDER BY day LIMIT ?)",
                    (received_before // DAY, limit),
                ).rowcount
            )

    def pending_count(self) -> int:
        """How many Parsl closes are held, waiting for their start."""
        return int(self._query("SELECT count(*) FROM pending_closes")[0][0])

    def rebuild_rollups(self) -> None:
        """Recompute every rollup from the runs (after a bulk load or a manual repair)."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM rollup")
            cursor = conn.execute(f"SELECT {_RUN_SELECT} FROM {_RUN_FROM}")
            while batch := cursor.fetchmany(50_000):
                self._apply_deltas(conn, tally([(None, _row(r)) for r in batch]))

    # -- reading --

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    def view(self, function: Callable[..., T], *args: Any) -> T:
        """``function(query, *args)`` over one snapshot (see ``Store.view``)."""
        with self._snapshot():
            return function(self._query, *args)

    def products(self, *, include_ci: bool = False) -> list[ProductTotals]:
        """Every product with its run and point totals, most runs first (CI runs if asked)."""
        return read_products(self._query, include_ci=include_ci)

    def leaderboard(
        self, product: str, limit: int = 50, *, include_ci: bool = False
    ) -> list[LeaderboardRow]:
        """Named projects of ``product`` ranked by points (level 1-2: 1, level 3: 2 a run)."""
        return read_leaderboard(self._query, product, limit, include_ci=include_ci)

    def stats(self, product: str, *, include_ci: bool = False) -> ProductStats:
        """Runs per day, versions, Python versions, platforms, components, apps, run times."""
        with self._snapshot():
            return read_stats(self._query, product, include_ci=include_ci)

    def get_run(self, correlator: str) -> RunDetail | None:
        """Everything held about one run (per product), or ``None`` if nothing is."""
        key = correlator_key(correlator)
        with self._snapshot():
            rows = self._query(
                f"SELECT {_RUN_SELECT} FROM {_RUN_FROM} WHERE runs.corr = ? ORDER BY product",
                (key,),
            )
            pending = self._query(
                f"SELECT {_HELD_SELECT} FROM {_HELD_FROM} WHERE p.corr = ?", (key,)
            )
        if not rows and not pending:
            return None
        return RunDetail(key, [_row(r) for r in rows], HeldClose(*pending[0]) if pending else None)

    def iter_runs(
        self, product: str, since_day: int | None, until_day: int | None, batch: int
    ) -> Iterator[list[KeyedRun]]:
        """The runs of ``product`` first received in the days given (inclusive), in batches.

        Reads through a connection of its own, in one snapshot.
        """
        conn = sqlite3.connect(
            f"{Path(self.path).resolve().as_uri()}?mode=ro", uri=True, isolation_level=None
        )
        try:
            conn.execute("BEGIN")
            cursor = conn.execute(
                f"SELECT runs.corr, {_RUN_SELECT} FROM {_RUN_FROM} WHERE runs.product = ? "
                "AND runs.day >= ? AND runs.day <= ? ORDER BY runs.day, runs.id",
                (product, -(2**62) if since_day is None else since_day,
                 2**62 if until_day is None else until_day),
            )  # fmt: skip
            while rows := cursor.fetchmany(batch):
                yield [KeyedRun(r[0], _row(r[1:])) for r in rows]
        finally:
            conn.close()


def _check_version(
    location: str, version: int | None, *, readonly: bool, migrate: bool = True
) -> None:
    """Refuse a database of a schema this code does not read or write as it is."""
    if version is None:
        if readonly:
            msg = f"{location} holds no collector database (nothing written yet?)"
            raise StoreError(msg)
        return
    if version > SCHEMA_VERSION:
        msg = (
            f"the database {location} has schema version {version}, newer than this "
            f"collector's ({SCHEMA_VERSION}): upgrade telemetry-sdk"
        )
        raise StoreError(msg)
    if version < SCHEMA_VERSION and (readonly or not migrate):
        msg = (
            f"the database {location} has schema version {version}, older than this "
            f"collector's ({SCHEMA_VERSION}): upgrade it with {migrate_hint(location)}"
        )
        raise StoreError(msg)
