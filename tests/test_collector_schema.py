"""Schema versions: recorded by both engines, older databases upgraded, newer refused."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

import pytest
from _store_engines import raw_execute, raw_query

from telemetry_sdk.collector import StoreError, open_store
from telemetry_sdk.collector._cli import main as collector_main
from telemetry_sdk.collector._store import SCHEMA_VERSION

OLD_SCHEMA = (Path(__file__).parent / "data" / "schema_c87d7ed.sql").read_text()
DAY = 20_000
CORR = uuid.UUID("5b2c1f1e-8c39-4d0e-9f11-3d2a7c1e0b42")
HELD = uuid.UUID("7d0f3a2b-1c4e-4b6a-8e9d-0a1b2c3d4e5f")


def old_database(path: Path) -> Path:
    """A database as the collector of commit c87d7ed left it: one run, one held close."""
    with closing(sqlite3.connect(path)) as db, db:
        db.executescript(OLD_SCHEMA)
        db.execute("INSERT INTO component_sets (id, json) VALUES (1, '[\"x.A\"]')")
        db.execute(
            "INSERT INTO runs (corr, product, version, level, project, components, start, "
            "has_start, has_close, day) VALUES (?, 'minflow', '1.0', 2, 'old', 1, NULL, 1, 0, ?)",
            (CORR.bytes, DAY),
        )
        db.execute(
            'INSERT INTO pending_closes (corr, project, "end", execution_time, app_count, '
            "app_fails, day) VALUES (?, 'held', 1795305802, 7, 5, 1, ?)",
            (HELD.bytes, DAY),
        )
        db.executemany(
            "INSERT INTO rollup VALUES (?, 'minflow', ?, 1, 1, 0, 0)",
            [("total", ""), ("level", "2"), ("day", str(DAY)), ("project", "old"),
             ("version", "1.0"), ("component", "x.A")],
        )  # fmt: skip
    return path


class TestUpgrade:
    def test_a_database_from_before_issue_8_is_upgraded_on_open(self, tmp_path: Path) -> None:
        """Opening the c87d7ed schema upgrades it in place and keeps every run and count."""
        path = old_database(tmp_path / "old.db")
        store = open_store(path)
        try:
            run = store.get_run(str(CORR))
            held = store.get_run(str(HELD))
            board = store.leaderboard("minflow")
        finally:
            store.close()
        assert run is not None
        assert run.to_json()["runs"][0]["received_day"] == "2024-10-04"
        assert run.to_json()["runs"][0]["components"] == ["x.A"]
        assert held is not None
        assert held.to_json()["pending_close"]["received_day"] == "2024-10-04"
        assert [(r.project, r.points) for r in board] == [("old", 1)]
        assert raw_query(
            str(path), "SELECT value FROM collector_meta WHERE key = 'schema_version'"
        ) == [(SCHEMA_VERSION,)]

    def test_the_upgraded_database_takes_new_messages(self, tmp_path: Path) -> None:
        """After the upgrade the old run is filled by its close like any other."""
        from _collector_support import close_message

        from telemetry_sdk.collector import record_from_message

        store = open_store(old_database(tmp_path / "old.db"))
        try:
            store.write_batch([record_from_message(close_message(str(CORR), product="minflow"))])
            run = store.get_run(str(CORR))
        finally:
            store.close()
        assert run is not None
        (row,) = run.to_json()["runs"]
        assert (row["has_start"], row["has_close"], row["received_day"]) == (
            True, True, "2024-10-04",
        )  # fmt: skip

    def test_no_migrate_refuses_and_names_the_command(self, tmp_path: Path) -> None:
        """With migrate=False an older database is refused, untouched, naming the command."""
        path = old_database(tmp_path / "old.db")
        with pytest.raises(StoreError, match="older than") as caught:
            open_store(path, migrate=False)
        assert f"telemetry-sdk collector migrate --db {path}" in str(caught.value)
        columns = [r[1] for r in raw_query(str(path), "PRAGMA table_info(runs)")]
        assert "received" not in columns

    def test_readers_refuse_an_older_database(self, tmp_path: Path) -> None:
        """A read-only open does not upgrade: it says what to run."""
        path = old_database(tmp_path / "old.db")
        with pytest.raises(StoreError, match="collector migrate"):
            open_store(path, readonly=True)

    def test_the_migrate_command_upgrades(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`telemetry-sdk collector migrate --db PATH` upgrades and says to which version."""
        path = old_database(tmp_path / "old.db")
        assert collector_main(["collector", "migrate", "--db", f"sqlite:///{path}"]) == 0
        assert f"schema version {SCHEMA_VERSION}" in capsys.readouterr().out
        open_store(path, migrate=False).close()

    @pytest.mark.slow
    def test_the_collector_refuses_with_no_migrate(self, tmp_path: Path) -> None:
        """`telemetry-sdk collector --no-migrate` exits 1 on an older database, naming migrate."""
        import subprocess
        import sys

        path = old_database(tmp_path / "old.db")
        done = subprocess.run(
            [sys.executable, "-m", "telemetry_sdk", "collector", "--udp", "127.0.0.1:0",
             "--http", "off", "--db", str(path), "--no-migrate"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 1
        assert "telemetry-sdk collector migrate --db" in done.stderr


class TestVersions:
    def test_every_engine_records_its_version(self, store_url: str) -> None:
        """A new database records the schema version it was made with."""
        open_store(store_url).close()
        rows = raw_query(store_url, "SELECT value FROM collector_meta WHERE key = 'schema_version'")
        assert [int(v) for (v,) in rows] == [SCHEMA_VERSION]

    def test_a_newer_database_is_refused(self, store_url: str) -> None:
        """A database written by a newer version is refused, for writing and for reading."""
        open_store(store_url).close()
        raw_execute(
            store_url, "UPDATE collector_meta SET value = '99' WHERE key = 'schema_version'"
        )
        for readonly in (False, True):
            with pytest.raises(StoreError, match="newer than"):
                open_store(store_url, readonly=readonly)

    def test_commands_do_not_create_a_database(self, store_url: str) -> None:
        """leaderboard and delete on an empty database say so instead of creating tables."""
        assert collector_main(["collector", "leaderboard", "--db", store_url]) == 1
        with pytest.raises(StoreError, match="no"):
            open_store(store_url, create=False)
