"""Store URLs: the factory picks the engine, passwords never show, readers can use a replica."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from _collector_support import start_message

from telemetry_sdk.collector import (
    Collector,
    CollectorSettings,
    SQLiteStore,
    StoreError,
    open_store,
    record_from_message,
)
from telemetry_sdk.collector._store import shown_url


class TestFactory:
    def test_paths_and_sqlite_urls_open_sqlite(self, tmp_path: Path) -> None:
        """A path and sqlite:///PATH (relative or absolute) both open the same SQLite file."""
        path = tmp_path / "a.db"
        for url in (str(path), f"sqlite:///{path}", path):
            store = open_store(url)
            try:
                assert isinstance(store, SQLiteStore)
                assert store.location == str(path)
            finally:
                store.close()

    def test_a_malformed_sqlite_url_is_refused(self) -> None:
        """sqlite:// without the third slash is an error that shows the right form."""
        with pytest.raises(StoreError, match="sqlite:///PATH"):
            open_store("sqlite://relative.db")

    def test_an_unreachable_postgres_is_a_store_error(self) -> None:
        """A PostgreSQL that does not answer gives a StoreError naming the database."""
        with pytest.raises(StoreError, match=r"cannot write the database postgresql://u:\*\*\*@"):
            open_store("postgresql://u:hunter2secret@127.0.0.1:1/test")

    def test_passwords_never_show(self) -> None:
        """shown_url hides the password and keeps the rest."""
        assert shown_url("postgresql://u:pw@db:5432/x?sslmode=require") == (
            "postgresql://u:***@db:5432/x?sslmode=require"
        )
        assert shown_url("postgresql://u@db/x") == "postgresql://u@db/x"
        assert shown_url("/var/lib/usage.db") == "/var/lib/usage.db"


class TestReadDatabase:
    def test_the_api_reads_from_read_db(self, tmp_path: Path, store_url: str) -> None:
        """With read_db the API serves what that database holds; writes still go to db."""
        replica = open_store(store_url)
        try:
            replica.write_batch(
                [record_from_message(start_message(product="only-on-replica"), 1_790_000_000)]
            )
        finally:
            replica.close()
        settings = CollectorSettings(
            udp=("127.0.0.1", 0), http=("127.0.0.1", 0), db=tmp_path / "primary.db",
            read_db=store_url, writer_process=False,
        )  # fmt: skip
        with (
            Collector(settings) as collector,
            urllib.request.urlopen(f"{collector.http_url}api/products", timeout=10) as reply,
        ):
            products = json.loads(reply.read())["products"]
        assert [p["product"] for p in products] == ["only-on-replica"]
        primary = open_store(tmp_path / "primary.db", readonly=True)
        try:
            assert primary.products() == []
        finally:
            primary.close()
