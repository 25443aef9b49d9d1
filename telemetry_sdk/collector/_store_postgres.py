"""The PostgreSQL store: the SQL of the shared engine (psycopg 3 with its connection pool).

Any number of collector processes, on any number of hosts, may write one database at once.
What keeps that exact:

- Every correlator ever seen has a row in ``correlators`` (with its ``deleted`` mark). A
  batch first makes sure its correlators have rows, then locks them with
  ``SELECT ... FOR UPDATE``, in sorted order (so two batches never wait for each other in
  a cycle). Everything held about a correlator (its runs, a held Parsl close, its
  deletion) is read and written only under that lock, so a start at one collector and its
  close at another are merged, never written side by side; a repeated datagram finds the
  run it would fill already filled; a deletion through any collector is seen by every
  later batch.
- Rollups change by ``n = n + delta`` upserts, in sorted key order, in the same
  transaction as the runs they count.
- A deadlock or serialization failure rolls the whole transaction back (caches too) and
  it is tried again from the start.

Reads that take several statements run in one ``REPEATABLE READ`` snapshot. How runs merge
and what they count for is shared with SQLite (``_run_merge``, ``_rollup``,
``_store_views``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

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
from ._store import SCHEMA_VERSION, StoreError, WriteResult, migrate_hint, shown_url
from ._store_views import (
    LeaderboardRow,
    ProductStats,
    ProductTotals,
    RunDetail,
    read_leaderboard,
    read_products,
    read_stats,
)

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

__all__ = ["POSTGRES_EXTRA_HINT", "PostgresStore"]

logger = logging.getLogger("telemetry_sdk.collector")

POSTGRES_EXTRA_HINT = (
    "PostgreSQL needs psycopg 3 and its pool: pip install 'telemetry-sdk[postgres]'"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS collector_meta (key text PRIMARY KEY, value text NOT NULL);
-- Component lists repeat from run to run: each distinct list (JSON text) is kept once.
CREATE TABLE IF NOT EXISTS component_sets (id bigserial PRIMARY KEY, json text NOT NULL UNIQUE);
-- Every correlator seen: the row each batch locks first; ``deleted`` after a deletion.
CREATE TABLE IF NOT EXISTS correlators (
    corr bytea PRIMARY KEY,
    deleted boolean NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS runs (
    id bigserial PRIMARY KEY,
    corr bytea NOT NULL,
    product text NOT NULL,
    received bigint NOT NULL,
    version text,
    python_v text,
    platform text,
    level smallint,
    project text,
    components bigint REFERENCES component_sets (id),
    close_components bigint REFERENCES component_sets (id),
    start bigint,
    "end" bigint,
    execution_time double precision,
    app_count integer,
    app_fails integer,
    has_start boolean NOT NULL,
    has_close boolean NOT NULL,
    day integer NOT NULL,
    ci boolean,
    last_received bigint,
    heartbeats integer,
    UNIQUE (corr, product)
);
-- Schema 4 (a database made at 3 gets them here): the CI flag, when the run was last
-- heard of, its latest heartbeat's number.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS ci boolean;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS last_received bigint;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS heartbeats integer;
CREATE INDEX IF NOT EXISTS runs_by_day ON runs (day);
CREATE INDEX IF NOT EXISTS runs_by_product_day ON runs (product, day);
CREATE TABLE IF NOT EXISTS pending_closes (
    corr bytea PRIMARY KEY,
    project text,
    close_components bigint REFERENCES component_sets (id),
    "end" bigint,
    execution_time double precision,
    app_count integer,
    app_fails integer,
    day integer NOT NULL,
    received bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_by_received ON pending_closes (received);
-- Keys compare byte by byte ("C"): a period is a range of per-day keys (see _day_rollup).
CREATE TABLE IF NOT EXISTS rollup (
    kind text NOT NULL,
    product text NOT NULL,
    key text COLLATE "C" NOT NULL,
    runs bigint NOT NULL,
    points bigint NOT NULL,
    x bigint NOT NULL,
    y bigint NOT NULL,
    PRIMARY KEY (kind, product, key)
);
CREATE INDEX IF NOT EXISTS rollup_by_points ON rollup (kind, product, points DESC, runs DESC);
CREATE INDEX IF NOT EXISTS rollup_by_runs ON rollup (kind, product, runs DESC);
"""

#: Held while the schema is created or upgraded, so collectors starting together wait.
_SCHEMA_LOCK = 0x7E1E_0001
_STORED = ", ".join(f'"{c}"' for c in (*_ROW_COLUMNS, "day"))
_SET_JOINS = (
    "LEFT JOIN component_sets AS c1 ON c1.id = runs.components "
    "LEFT JOIN component_sets AS c2 ON c2.id = runs.close_components"
)
_RUN_FROM = f"runs {_SET_JOINS}"
_RUN_SELECT = ", ".join(
    {"components": "c1.json", "close_components": "c2.json"}.get(c, f'runs."{c}"')
    for c in _ROW_COLUMNS
)
#: Each stored column's type, to pass a batch as one array per column (``unnest``).
_ROW_TYPES = (
    "text", "bigint", "text", "text", "text", "smallint", "text", "bigint", "bigint",
    "bigint", "bigint", "float8", "integer", "integer", "boolean", "boolean", "boolean",
    "bigint", "integer", "integer",
)  # fmt: skip
_ARRAYS = ", ".join(f"%s::{t}[]" for t in _ROW_TYPES)
#: A batch of runs in one statement: one array per column (a few round trips per batch,
#: however many runs it holds).
_INSERT_RUNS = f"INSERT INTO runs (corr, {_STORED}) SELECT * FROM unnest(%b::bytea[], {_ARRAYS})"
_UPDATE_RUNS = (
    "UPDATE runs SET "
    + ", ".join(f'"{c}" = u."{c}"' for c in (*_ROW_COLUMNS, "day"))
    + f" FROM unnest(%s::bigint[], {_ARRAYS}) AS u (id, {_STORED}) WHERE runs.id = u.id"
)
_HELD_SELECT = 'p.project, c.json, p."end", p.execution_time, p.app_count, p.app_fails, p.received'
_HELD_FROM = "pending_closes AS p LEFT JOIN component_sets AS c ON c.id = p.close_components"
_INSERT_HELD = (
    'INSERT INTO pending_closes (corr, project, close_components, "end", execution_time, '
    "app_count, app_fails, day, received) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_UPSERT_ROLLUP = """
INSERT INTO rollup (kind, product, key, runs, points, x, y)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::bigint[],
    %s::bigint[], %s::bigint[])
ON CONFLICT (kind, product, key) DO UPDATE SET
    runs = rollup.runs + excluded.runs, points = rollup.points + excluded.points,
    x = rollup.x + excluded.x, y = rollup.y + excluded.y
"""
#: A batch's correlators as a relation. Joined to a table (rather than ``= ANY(array)``) the
#: planner looks each one up in the table's index (it estimates ``unnest`` at 100 rows)
#: instead of scanning a table of a few hundred thousand rows once per batch.
_KEYS = "unnest(%b::bytea[]) AS k(corr)"
#: A write transaction looks up a few thousand keys in tables of millions of rows. Without
#: this the planner, pricing each index probe as a random read, scans whole tables once the
#: batch is large (100-200 ms a batch at 200,000 runs, growing with the table); with it each
#: key is one index probe (the pages are cached). ``SET LOCAL`` ends with the transaction.
_KEY_LOOKUPS = "SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; " + (
    "SET LOCAL enable_mergejoin = off"
)
#: Transactions tried at most when PostgreSQL reports a deadlock or serialization failure.
_ATTEMPTS = 8
_POOL_MAX = 4

T = TypeVar("T")


def _import_psycopg() -> Any:
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        raise StoreError(POSTGRES_EXTRA_HINT) from exc
    return psycopg, psycopg_pool


def _columns(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows turned into one list per column (for ``unnest``)."""
    return [list(column) for column in zip(*rows, strict=True)]


def _row(values: Sequence[Any]) -> RunRow:
    return RunRow(*values)


def _schema_version(conn: psycopg.Connection[Any]) -> int | None:
    found = conn.execute(
        "SELECT to_regclass('collector_meta') IS NOT NULL, to_regclass('runs') IS NOT NULL"
    ).fetchone()
    assert found is not None
    has_meta, has_runs = found
    if not has_runs:
        return None
    if has_meta:
        version = conn.execute(
            "SELECT value FROM collector_meta WHERE key = 'schema_version'"
        ).fetchone()
        if version is not None:
            return int(version[0])
    msg = "it has a runs table but no schema version: not a collector database?"
    raise StoreError(msg)


def _upgrade_to_days(conn: psycopg.Connection[Any]) -> None:
    """Schema 3 or 4 to 5: byte-order rollup keys; runs move to the day they started and get their
    per-day rollups (``_rollup.upgrade_to_days``). In the caller's transaction."""
    conn.execute('ALTER TABLE rollup ALTER COLUMN key TYPE text COLLATE "C"')
    with conn.cursor(name="upgrade_to_days") as cursor:
        cursor.execute(f"SELECT {_RUN_SELECT} FROM {_RUN_FROM}")
        while batch := cursor.fetchmany(50_000):
            PostgresStore._apply_deltas(conn, upgrade_to_days([_row(r) for r in batch]))


def _check_version(
    location: str, version: int | None, *, readonly: bool, migrate: bool, create: bool
) -> None:
    if version is None:
        if readonly or not create:
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


@define
class PostgresStore:
    """The PostgreSQL store: a small pool of connections to one database.

    >>> store = PostgresStore.open("postgresql://collector@db.example.org/usage")
    """

    url: str
    _pool: ConnectionPool[Any]
    readonly: bool = False
    _set_ids: ComponentSetIds = field(factory=ComponentSetIds)
    #: One write transaction at a time per store object (the id cache follows it).
    _write_lock: threading.Lock = field(factory=threading.Lock)

    @property
    def location(self) -> str:
        """The database's URL, without its password."""
        return shown_url(self.url)

    @classmethod
    def open(
        cls,
        url: str,
        *,
        readonly: bool = False,
        migrate: bool = True,
        create: bool = True,
    ) -> PostgresStore:
        """Connect to ``url``; unless ``readonly``, create or upgrade the schema.

        Raises ``StoreError`` saying why when the database cannot be reached, is of
        another schema version, or (unless ``readonly``) cannot be written.
        """
        psycopg, psycopg_pool = _import_psycopg()
        location = shown_url(url)
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
                if readonly:
                    _check_version(
                        location, _schema_version(conn), readonly=True, migrate=False,
                        create=False,
                    )  # fmt: skip
                else:
                    with conn.transaction():
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                        version = _schema_version(conn)
                        _check_version(
                            location, version, readonly=False, migrate=migrate, create=create
                        )
                        if version is not None and version < SCHEMA_VERSION:
                            logger.info(
                                "upgrading %s from schema %d to %d",
                                location, version, SCHEMA_VERSION,
                            )  # fmt: skip
                        conn.execute(_SCHEMA)
                        if version is not None and version < 5:
                            _upgrade_to_days(conn)
                        conn.execute(
                            "INSERT INTO collector_meta (key, value) VALUES "
                            "('schema_version', %s), ('opened', %s) ON CONFLICT (key) "
                            "DO UPDATE SET value = excluded.value",
                            (str(SCHEMA_VERSION), str(int(time.time()))),
                        )
        except psycopg.Error as exc:
            what = "read" if readonly else "write"
            msg = f"cannot {what} the database {location}: {str(exc).strip()}"
            raise StoreError(msg) from exc
        pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=_POOL_MAX,
            kwargs={"autocommit": True},
            open=False,
            name="telemetry-collector",
        )
        try:
            pool.open(wait=True, timeout=15)
        except psycopg_pool.PoolTimeout as exc:
            pool.close()
            msg = f"cannot connect to the database {location}: {exc}"
            raise StoreError(msg) from exc
        return cls(url, pool, readonly=readonly)

    def close(self) -> None:
        """Close every connection of the pool."""
        self._pool.close()

    # -- transactions --

    def _retrying(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``work`` in one transaction; again on a deadlock or serialization failure."""
        psycopg, _ = _import_psycopg()
        retryable = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
        for attempt in range(_ATTEMPTS):
            with self._write_lock, self._pool.connection() as conn:
                self._set_ids.begin()
                try:
                    with conn.transaction():
                        result = work(conn)
                except retryable:
                    self._set_ids.rolled_back()
                    if attempt == _ATTEMPTS - 1:
                        raise
                    logger.debug("transaction conflict; trying again", exc_info=True)
                    time.sleep(0.005 * 2**attempt)
                    continue
                except BaseException:
                    self._set_ids.rolled_back()
                    raise
                self._set_ids.committed()
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def _snapshot(self) -> Iterator[Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]]:
        """A read-only snapshot; yields a query function taking ``?`` placeholders."""
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")

            def query(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
                rows: list[tuple[Any, ...]] = conn.execute(
                    sql.replace("?", "%s"), tuple(params)
                ).fetchall()
                return rows

            yield query

    # -- writing --

    def write_batch(self, records: Sequence[Record]) -> WriteResult:
        """Apply ``records`` in order, in one transaction; duplicates change nothing."""
        if not records:
            return WriteResult(0, 0, 0)
        keys = sorted({correlator_key(r.correlator) for r in records})

        def work(conn: psycopg.Connection[Any]) -> WriteResult:
            conn.execute(_KEY_LOOKUPS)
            plan = merge_batch(records, self._lock_and_load(conn, keys))
            self._prefetch_set_ids(conn, plan)
            self._write_plan(conn, plan)
            return WriteResult(plan.changed, len(plan.hold), plan.suppressed)

        return self._retrying(work)

    @staticmethod
    def _lock(conn: psycopg.Connection[Any], keys: Sequence[bytes]) -> frozenset[bytes]:
        """Lock the rows of ``keys`` in ``correlators`` (made if new); the deleted ones."""
        conn.execute(
            "INSERT INTO correlators (corr) SELECT k FROM unnest(%b::bytea[]) AS k ORDER BY k "
            "ON CONFLICT (corr) DO NOTHING",
            (list(keys),),
        )
        rows = conn.execute(
            f"SELECT c.corr, c.deleted FROM {_KEYS} JOIN correlators AS c ON c.corr = k.corr "
            "ORDER BY c.corr FOR UPDATE OF c",
            (list(keys),),
        ).fetchall()
        return frozenset(bytes(corr) for corr, deleted in rows if deleted)

    def _lock_and_load(self, conn: psycopg.Connection[Any], keys: Sequence[bytes]) -> Held:
        deleted = self._lock(conn, keys)
        listed = list(keys)
        runs = []
        for row in conn.execute(
            f"SELECT runs.id, runs.corr, {_RUN_SELECT} FROM {_KEYS} "
            f"JOIN runs ON runs.corr = k.corr {_SET_JOINS}",
            (listed,),
        ):
            old = _row(row[2:])
            runs.append(StoredRun(bytes(row[1]), row[0], old, old.copy()))
        held = {
            bytes(row[0]): HeldClose(*row[1:])
            for row in conn.execute(
                f"SELECT p.corr, {_HELD_SELECT} FROM {_KEYS} "
                "JOIN pending_closes AS p ON p.corr = k.corr "
                "LEFT JOIN component_sets AS c ON c.id = p.close_components",
                (listed,),
            )
        }
        return Held(deleted, runs, held)

    def _write_plan(self, conn: psycopg.Connection[Any], plan: MergePlan) -> None:
        with conn.cursor() as cursor:
            if plan.inserts:
                cursor.execute(
                    _INSERT_RUNS,
                    [
                        [run.key for run in plan.inserts],
                        *_columns([self._stored(conn, run.new) for run in plan.inserts]),
                    ],
                )
            if plan.updates:
                cursor.execute(
                    _UPDATE_RUNS,
                    [
                        [run.id for run in plan.updates],
                        *_columns([self._stored(conn, run.new) for run in plan.updates]),
                    ],
                )
            if plan.hold:
                cursor.executemany(
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
                cursor.execute(
                    "DELETE FROM pending_closes WHERE corr = ANY(%s)", (sorted(plan.joined),)
                )
        self._apply_deltas(
            conn,
            tally(
                [(run.old, run.new) for run in plan.updates]
                + [(None, run.new) for run in plan.inserts]
            ),
        )

    def _prefetch_set_ids(self, conn: psycopg.Connection[Any], plan: MergePlan) -> None:
        """Store and look up every component list the plan writes, in two statements."""
        texts = {
            text
            for run in (*plan.inserts, *plan.updates)
            for text in (run.new.components, run.new.close_components)
            if text is not None
        }
        texts.update(c.close_components for c in plan.hold.values() if c.close_components)
        unknown = self._set_ids.unknown(texts)
        if not unknown:
            return
        conn.execute(
            "INSERT INTO component_sets (json) SELECT j FROM unnest(%s::text[]) AS j ORDER BY j "
            "ON CONFLICT (json) DO NOTHING",
            (unknown,),
        )
        found = conn.execute(
            "SELECT s.json, s.id FROM unnest(%s::text[]) AS k(json) "
            "JOIN component_sets AS s ON s.json = k.json",
            (unknown,),
        ).fetchall()
        self._set_ids.stored({json: int(id_) for json, id_ in found})

    def _set_id(self, conn: psycopg.Connection[Any], text: str | None) -> int | None:
        def store(json: str) -> int:
            found = conn.execute(
                "INSERT INTO component_sets (json) VALUES (%s) ON CONFLICT (json) DO NOTHING "
                "RETURNING id",
                (json,),
            ).fetchone()
            if found is None:  # stored before (maybe by another collector)
                found = conn.execute(
                    "SELECT id FROM component_sets WHERE json = %s", (json,)
                ).fetchone()
            assert found is not None
            return int(found[0])

        return self._set_ids.get(text, store)

    def _stored(self, conn: psycopg.Connection[Any], row: RunRow) -> tuple[Any, ...]:
        """A run's values as stored (``_ROW_COLUMNS``, then its day): lists as set ids."""
        return row.stored(lambda text: self._set_id(conn, text))

    @staticmethod
    def _apply_deltas(conn: psycopg.Connection[Any], deltas: Deltas) -> None:
        """``n = n + delta`` for each rollup row, in sorted key order (``tally`` sorts)."""
        if not deltas:
            return
        with conn.cursor() as cursor:
            cursor.execute(_UPSERT_ROLLUP, _columns([(*k, *v) for k, v in deltas.items()]))
            emptied = [k for k, v in deltas.items() if v[0] < 0]
            if emptied:
                cursor.executemany(
                    "DELETE FROM rollup WHERE kind = %s AND product = %s AND key = %s "
                    "AND runs <= 0",
                    emptied,
                )

    def delete_run(self, correlator: str) -> int:
        """Delete everything held about one run, in every view; return how many records went.

        The correlator stays marked as deleted (nothing else about it), so a late datagram
        of the run is dropped by every collector writing this database.
        """
        key = correlator_key(correlator)

        def work(conn: psycopg.Connection[Any]) -> int:
            self._lock(conn, [key])
            conn.execute("UPDATE correlators SET deleted = true WHERE corr = %s", (key,))
            rows = [
                _row(r)
                for r in conn.execute(
                    f"SELECT {_RUN_SELECT} FROM {_RUN_FROM} WHERE runs.corr = %s", (key,)
                )
            ]
            conn.execute("DELETE FROM runs WHERE corr = %s", (key,))
            held = conn.execute("DELETE FROM pending_closes WHERE corr = %s", (key,)).rowcount
            self._apply_deltas(conn, tally([(row, None) for row in rows]))
            return len(rows) + held

        return self._retrying(work)

    def expire_pending(self, received_before: int) -> int:
        """Drop the held Parsl closes received before ``received_before`` (epoch seconds)."""

        def work(conn: psycopg.Connection[Any]) -> int:
            # Lock the correlators first, like a batch: a start being merged keeps its close.
            keys = [
                bytes(r[0])
                for r in conn.execute(
                    "SELECT corr FROM pending_closes WHERE received < %s ORDER BY corr",
                    (received_before,),
                )
            ]
            dropped = 0
            if keys:
                self._lock(conn, keys)
                dropped = conn.execute(
                    "DELETE FROM pending_closes WHERE corr = ANY(%s) AND received < %s",
                    (keys, received_before),
                ).rowcount
            conn.execute(
                "INSERT INTO collector_meta (key, value) VALUES ('expired', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(int(time.time())),),
            )
            return dropped

        return self._retrying(work)

    def remove_old_runs(self, received_before: int, limit: int) -> int:
        """Remove at most ``limit`` runs first received on a day before ``received_before``'s.

        Runs whose correlator another collector holds locked are skipped (the next sweep
        takes them); the rollups keep what the runs counted for.
        """
        cutoff = received_before // DAY

        def work(conn: psycopg.Connection[Any]) -> int:
            keys = [
                r[0]
                for r in conn.execute(
                    "SELECT c.corr FROM correlators AS c WHERE c.corr IN "
                    "(SELECT corr FROM runs WHERE day < %s LIMIT %s) "
                    "ORDER BY c.corr FOR UPDATE SKIP LOCKED",
                    (cutoff, limit),
                )
            ]
            if not keys:
                return 0
            removed = conn.execute(
                "DELETE FROM runs WHERE corr = ANY(%s) AND day < %s", (keys, cutoff)
            ).rowcount
            # Forget the correlators nothing is held about any more (not the deleted ones).
            conn.execute(
                "DELETE FROM correlators AS c WHERE c.corr = ANY(%s) AND NOT c.deleted "
                "AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.corr = c.corr) "
                "AND NOT EXISTS (SELECT 1 FROM pending_closes AS p WHERE p.corr = c.corr)",
                (keys,),
            )
            return int(removed)

        return self._retrying(work)

    def pending_count(self) -> int:
        """How many Parsl closes are held, waiting for their start."""
        with self._snapshot() as query:
            return int(query("SELECT count(*) FROM pending_closes", ())[0][0])

    def rebuild_rollups(self) -> None:
        """Recompute every rollup from the runs (after a bulk load or a manual repair).

        Locks the rollup table for the duration: run it while no collector writes.
        """

        def work(conn: psycopg.Connection[Any]) -> None:
            conn.execute("LOCK TABLE rollup IN EXCLUSIVE MODE")
            conn.execute("DELETE FROM rollup")
            with conn.cursor(name="rebuild_rollups") as cursor:
                cursor.execute(f"SELECT {_RUN_SELECT} FROM {_RUN_FROM}")
                while batch := cursor.fetchmany(50_000):
                    self._apply_deltas(conn, tally([(None, _row(r)) for r in batch]))

        self._retrying(work)

    # -- reading --

    def view(self, function: Callable[..., T], *args: Any) -> T:
        """``function(query, *args)`` over one snapshot (see ``Store.view``)."""
        with self._snapshot() as query:
            return function(query, *args)

    def products(self, *, include_ci: bool = False) -> list[ProductTotals]:
        """Every product with its run and point totals, most runs first (CI runs if asked)."""
        with self._snapshot() as query:
            return read_products(query, include_ci=include_ci)

    def leaderboard(
        self, product: str, limit: int = 50, *, include_ci: bool = False
    ) -> list[LeaderboardRow]:
        """Named projects of ``product`` ranked by points (level 1-2: 1, level 3: 2 a run)."""
        with self._snapshot() as query:
            return read_leaderboard(query, product, limit, include_ci=include_ci)

    def stats(self, product: str, *, include_ci: bool = False) -> ProductStats:
        """Runs per day, versions, Python versions, platforms, components, apps, run times."""
        with self._snapshot() as query:
            return read_stats(query, product, include_ci=include_ci)

    def get_run(self, correlator: str) -> RunDetail | None:
        """Everything held about one run (per product), or ``None`` if nothing is."""
        key = correlator_key(correlator)
        with self._snapshot() as query:
            rows = query(
                f"SELECT {_RUN_SELECT} FROM {_RUN_FROM} WHERE runs.corr = ? ORDER BY product",
                (key,),
            )
            pending = query(f"SELECT {_HELD_SELECT} FROM {_HELD_FROM} WHERE p.corr = ?", (key,))
        if not rows and not pending:
            return None
        return RunDetail(key, [_row(r) for r in rows], HeldClose(*pending[0]) if pending else None)

    def iter_runs(
        self, product: str, since_day: int | None, until_day: int | None, batch: int
    ) -> Iterator[list[KeyedRun]]:
        """The runs of ``product`` first received in the days given (inclusive), in batches.

        A server-side cursor in one snapshot: memory holds one batch at a time.
        """
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            with conn.cursor(name="export_runs") as cursor:
                cursor.itersize = batch
                cursor.execute(
                    f"SELECT runs.corr, {_RUN_SELECT} FROM {_RUN_FROM} WHERE runs.product = %s "
                    "AND runs.day >= %s AND runs.day <= %s ORDER BY runs.day, runs.id",
                    (product, -(2**31) if since_day is None else since_day,
                     2**31 - 1 if until_day is None else until_day),
                )  # fmt: skip
                while rows := cursor.fetchmany(batch):
                    yield [KeyedRun(bytes(r[0]), _row(r[1:])) for r in rows]
