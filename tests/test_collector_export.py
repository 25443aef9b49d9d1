"""collector export: one row per run as Parquet or CSV, read back and compared with the API."""

from __future__ import annotations

import csv
import datetime
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from _collector_support import CollectorProcess, close_message, datagram, start_message

from telemetry_sdk._wire import Component
from telemetry_sdk.collector import open_store, record_from_message
from telemetry_sdk.collector._cli import main as collector_main
from telemetry_sdk.collector._export import EXPORT_COLUMNS

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

DAY = 86_400


def runs_sent() -> tuple[list[bytes], list[str]]:
    """Datagrams of runs at every level (with and without their close) and their ids."""
    out: list[bytes] = []
    ids: list[str] = []
    for index in range(30):
        correlator = str(uuid.uuid4())
        ids.append(correlator)
        level = 1 + index % 3
        out.append(datagram(start_message(
            correlator=correlator,
            tracking_level=level,
            project_name=f"p{index % 4}" if index % 5 else None,
            components=(Component("x.A"), Component(f"x.B{index % 2}")) if level >= 2 else None,
            **({} if level == 3 else {"start": None}),
        )))  # fmt: skip
        if level == 3 and index % 2:
            out.append(datagram(close_message(correlator, execution_time=12.5 + index)))
    return out, ids


def api_row(run: dict[str, Any]) -> dict[str, Any]:
    """The export's columns, as the API's GET /api/runs/<id> gives them."""
    (row,) = run["runs"]
    components = row["components"] if row["has_start"] else row["close_components"]
    names = [c if isinstance(c, str) else c["c"] for c in components or []]
    return {
        "correlator": run["correlator"],
        "product": row["product"],
        "product_version": row["version"],
        "python_version": row["python_v"],
        "platform": row["platform"],
        "level": row["level"],
        "project": row["project"],
        "start": row["start"],
        "end": row["end"],
        "execution_time": row["execution_time"],
        "app_count": row["app_count"],
        "app_fails": row["app_fails"],
        "components": list(dict.fromkeys(names)),
        "received_day": row["received_day"],
    }


def parquet_row(row: dict[str, Any]) -> dict[str, Any]:
    """A Parquet row in the same form (times as epoch seconds, received as its day)."""
    out = dict(row)
    for name in ("start", "end"):
        out[name] = None if row[name] is None else int(row[name].timestamp())
    out["received_day"] = row.pop("received").date().isoformat()
    del out["received"]
    return out


@pytest.mark.slow
class TestExportMatchesTheAPI:
    def test_parquet_and_csv_hold_what_the_api_serves(self, tmp_path: Path, store_url: str) -> None:
        """Every run exported (Parquet and CSV) equals what GET /api/runs/<id> says of it."""
        sent, ids = runs_sent()
        collector = CollectorProcess(tmp_path, db=store_url).start()
        try:
            collector.send(*sent)
            collector.wait_processed(len(sent))
            api = {c: api_row(collector.get(f"/api/runs/{c}").json()) for c in ids}
        finally:
            assert collector.stop() == 0
        parquet, text = tmp_path / "runs.parquet", tmp_path / "runs.csv"
        for fmt, out in (("parquet", parquet), ("csv", text)):
            code = collector_main(["collector", "export", "--db", store_url, "--product", "minflow",
                                   "--format", fmt, "--out", str(out)])  # fmt: skip
            assert code == 0
        table = pq.read_table(parquet)
        assert table.schema.names == [c.name for c in EXPORT_COLUMNS]
        assert str(table.schema.field("start").type) == "timestamp[ms, tz=UTC]"
        assert str(table.schema.field("components").type) == "list<element: string>"
        exported = {r["correlator"]: parquet_row(r) for r in table.to_pylist()}
        assert exported == api
        with text.open(newline="") as file:
            rows = list(csv.DictReader(file))
        assert len(rows) == len(ids)
        for row in rows:
            expected = api[row["correlator"]]
            assert json.loads(row["components"]) == expected["components"]
            assert row["level"] == str(expected["level"])
            assert row["project"] == (expected["project"] or "")
            assert row["received"].startswith(expected["received_day"] + "T")


class TestExportFile:
    def write_runs(self, store_url: str) -> None:
        store = open_store(store_url)
        try:
            for days_ago in (10, 5, 1):
                received = int(datetime.datetime(2026, 3, 20, tzinfo=datetime.UTC).timestamp())
                store.write_batch([record_from_message(
                    start_message(tracking_level=2), received - days_ago * DAY
                )])  # fmt: skip
        finally:
            store.close()

    def test_since_and_until_select_days_of_receipt(self, tmp_path: Path, store_url: str) -> None:
        """--since and --until bound the day of first receipt, both days included."""
        self.write_runs(store_url)
        out = tmp_path / "some.parquet"
        code = collector_main(["collector", "export", "--db", store_url, "--product", "minflow",
                               "--since", "2026-03-15", "--until", "2026-03-19",
                               "--out", str(out)])  # fmt: skip
        assert code == 0
        received = [r["received"].date().isoformat() for r in pq.read_table(out).to_pylist()]
        assert received == ["2026-03-15", "2026-03-19"]

    def test_duckdb_opens_it_without_options(self, tmp_path: Path, store_url: str) -> None:
        """DuckDB reads the file as it is, with its types."""
        duckdb = pytest.importorskip("duckdb")
        self.write_runs(store_url)
        out = tmp_path / "runs.parquet"
        assert collector_main(["collector", "export", "--db", store_url, "--product", "minflow",
                               "--out", str(out)]) == 0  # fmt: skip
        with duckdb.connect() as db:
            count, level, kind = db.execute(
                f"SELECT count(*), max(level), typeof(max(received)) FROM '{out}'"
            ).fetchone()
        assert (count, level, kind) == (3, 2, "TIMESTAMP WITH TIME ZONE")

    def test_an_unknown_product_gives_an_empty_file_with_every_column(
        self, tmp_path: Path, store_url: str
    ) -> None:
        """No runs: a valid file with the schema and no rows."""
        self.write_runs(store_url)
        out = tmp_path / "none.parquet"
        assert collector_main(["collector", "export", "--db", store_url, "--product", "nothing",
                               "--out", str(out)]) == 0  # fmt: skip
        table = pq.read_table(out)
        assert (table.num_rows, table.schema.names) == (0, [c.name for c in EXPORT_COLUMNS])

    def test_a_missing_database_is_an_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Exporting from a database that does not exist fails and creates nothing."""
        out = tmp_path / "x.parquet"
        code = collector_main(["collector", "export", "--db", str(tmp_path / "missing.db"),
                               "--product", "p", "--out", str(out)])  # fmt: skip
        assert code == 1
        assert "no database at" in capsys.readouterr().err
        assert not out.exists()
        assert not (tmp_path / "missing.db").exists()
