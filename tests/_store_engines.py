"""Stores on every engine for the contract tests: SQLite files and PostgreSQL schemas.

PostgreSQL is the real server on 127.0.0.1:5432 (trust authentication, database ``test``,
or ``TELEMETRY_SDK_TEST_POSTGRES``). Each test gets a schema of its own with a unique name
(so parallel runs never collide), dropped afterwards. When the server cannot be reached
the PostgreSQL tests fail, saying how to start it: they are never skipped.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from telemetry_sdk.collector import Store, open_store

ENGINES = ["sqlite", "postgres"]
POSTGRES = os.environ.get(
    "TELEMETRY_SDK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
START_POSTGRES = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


def _admin() -> Any:
    import psycopg

    try:
        return psycopg.connect(POSTGRES, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES} ({str(exc).strip()}); the PostgreSQL "
            f"tests need it: start it with `{START_POSTGRES}`",
            pytrace=False,
        )


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a fresh, empty schema in the test database (dropped afterwards)."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with _admin() as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
    finally:
        with _admin() as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=ENGINES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL on each engine, nothing written yet."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open store on each engine."""
    opened = open_store(store_url)
    yield opened
    opened.close()


def raw_query(url: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run ``sql`` (``?`` placeholders) straight on the database behind ``url``."""
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute(sql.replace("?", "%s"), tuple(params)).fetchall()
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]
    with closing(sqlite3.connect(url)) as db:
        return db.execute(sql, tuple(params)).fetchall()


def raw_execute(url: str, sql: str) -> None:
    """Run one statement straight on the database behind ``url`` and commit it."""
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql)
        return
    with closing(sqlite3.connect(url)) as db, db:
        db.execute(sql)


@contextmanager
def fresh_store(engine: str, directory: Path) -> Iterator[Store]:
    """A new, empty store on ``engine`` (for tests that need several, as Hypothesis does)."""
    if engine == "sqlite":
        opened = open_store(directory / f"{uuid.uuid4().hex}.db")
        try:
            yield opened
        finally:
            opened.close()
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with _admin() as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        opened = open_store(f"{POSTGRES}?options=-csearch_path%3D{schema}")
        try:
            yield opened
        finally:
            opened.close()
    finally:
        with _admin() as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
