"""Where runs live: the ``Store`` protocol, its errors, and the factory that picks an engine.

``open_store(url)`` is the only way the writer, the HTTP side and the commands get a store:
a path or ``sqlite:///PATH`` opens SQLite (``_store_sqlite``), ``postgresql://...`` opens
PostgreSQL (``_store_postgres``, needs the ``postgres`` extra). Nothing outside the store
modules names an engine. What the engines share lives in ``_run_merge`` (how a run's
messages merge), ``_rollup`` (what a run counts for) and ``_store_views`` (the read views).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from attrs import frozen

from .._errors import TelemetryError
from ._ingest import Record
from ._run_merge import KeyedRun
from ._store_views import LeaderboardRow, ProductStats, ProductTotals, RunDetail

__all__ = [
    "SCHEMA_VERSION",
    "Store",
    "StoreError",
    "WriteResult",
    "is_postgres_url",
    "migrate_hint",
    "open_store",
    "shown_url",
]

#: The schema version this code writes. 1: before issue 8 (held closes without their time
#: of receipt); 2: ``collector_meta`` and held closes' ``received``; 3: runs' ``received``,
#: an index by day (retention, export) and the version itself in ``collector_meta``; 4: runs'
#: ``ci`` flag, ``last_received`` time and latest ``heartbeats`` number (progress messages);
#: 5: runs counted on the day they started, and per-day rollups (``_day_rollup``).
SCHEMA_VERSION = 5


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
    """What ingest, HTTP and the commands need from a store, whatever the engine."""

    #: Where it is, fit to show (no password).
    @property
    def location(self) -> str: ...

    def write_batch(self, records: Sequence[Record]) -> WriteResult:
        """Apply ``records`` in order, in one transaction; duplicates change nothing."""
        ...

    def products(self, *, include_ci: bool = False) -> list[ProductTotals]:
        """Every product with its run and point totals, most runs first.

        Runs from CI are left out unless ``include_ci`` (as in every view).
        """
        ...

    def leaderboard(
        self, product: str, limit: int = 50, *, include_ci: bool = False
    ) -> list[LeaderboardRow]:
        """Named projects of ``product`` ranked by points."""
        ...

    def stats(self, product: str, *, include_ci: bool = False) -> ProductStats:
        """Usage figures of ``product`` for the dashboard (one snapshot)."""
        ...

    def get_run(self, correlator: str) -> RunDetail | None:
        """Everything held about one run, or ``None``."""
        ...

    def view(self, function: Callable[..., T], *args: Any) -> T:
        """``function(query, *args)`` over one snapshot; ``query`` runs read statements.

        ``query(sql, params)`` takes ``?`` placeholders whatever the engine; the period
        views (``_period_views``) are read this way.
        """
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

    def remove_old_runs(self, received_before: int, limit: int) -> int:
        """Remove at most ``limit`` runs first received before the day of ``received_before``.

        The rollups keep what those runs counted for (retention). Returns how many went.
        """
        ...

    def iter_runs(
        self, product: str, since_day: int | None, until_day: int | None, batch: int
    ) -> Iterator[list[KeyedRun]]:
        """The runs of ``product`` first received in the days given (inclusive), in batches."""
        ...

    def rebuild_rollups(self) -> None:
        """Recompute every rollup from the runs held (after a bulk load or a repair)."""
        ...

    def close(self) -> None:
        """Release the connections."""
        ...


def is_postgres_url(url: str | Path) -> bool:
    """Whether ``url`` names a PostgreSQL database."""
    return str(url).startswith(("postgresql://", "postgres://"))


def shown_url(url: str | Path) -> str:
    """``url`` fit for a log line or a message: any password replaced by ``***``."""
    text = str(url)
    if not is_postgres_url(text):
        return text
    scheme, _, rest = text.partition("://")
    credentials, at, host = rest.rpartition("@")
    if at and ":" in credentials:
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return text


def migrate_hint(url: str | Path) -> str:
    """The command that upgrades the database at ``url``."""
    return f"telemetry-sdk collector migrate --db {shown_url(url)}"


def open_store(
    url: str | Path, *, readonly: bool = False, migrate: bool = True, create: bool = True
) -> Store:
    """Open the store ``url`` names: a path or ``sqlite:///PATH``, or ``postgresql://...``.

    Unless ``readonly``, the store proves it can write, and a database made by an older
    version is upgraded (``migrate=False`` refuses it instead, naming ``migrate_hint``). A
    database made by a newer version is refused; with ``create=False`` so is a database
    that holds no collector data yet. Raises ``StoreError`` saying why.
    """
    text = str(url)
    if is_postgres_url(text):
        from ._store_postgres import PostgresStore

        return PostgresStore.open(text, readonly=readonly, migrate=migrate, create=create)
    from ._store_sqlite import SQLiteStore as Engine

    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif text.startswith("sqlite:"):
        msg = f"a SQLite URL is sqlite:///PATH (three slashes, then the path), got {text!r}"
        raise StoreError(msg)
    return Engine.open(text, readonly=readonly, migrate=migrate, create=create)
