"""Export for data at rest: one row per run, as Parquet or CSV, streamed in batches.

``EXPORT_COLUMNS`` documents every column (name, Parquet type, meaning). The store hands
runs over in batches (a server-side cursor on PostgreSQL), each batch becomes a Parquet row
group or a block of CSV lines, and nothing else is held: memory stays flat however many
runs there are. The file is written under a temporary name and renamed when complete, so
an interrupted export never leaves a partial file under the name asked for.
"""

from __future__ import annotations

import csv
import datetime
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import orjson
from attrs import frozen

from .._errors import TelemetryError
from ._rollup import component_names
from ._run_merge import KeyedRun, correlator_text
from ._store import Store

__all__ = ["EXPORT_COLUMNS", "PARQUET_EXTRA_HINT", "ExportColumn", "ExportError", "export_runs"]

PARQUET_EXTRA_HINT = "Parquet needs pyarrow: pip install 'telemetry-sdk[parquet]'"
#: Runs per batch (one Parquet row group).
BATCH = 65_536

Format = Literal["parquet", "csv"]


class ExportError(TelemetryError):
    """An export cannot be written (a missing extra, an unwritable file)."""


@frozen
class ExportColumn:
    """One column of an export."""

    name: str
    #: Its Parquet (Arrow) type; CSV writes the same values as text. Timestamps hold whole
    #: seconds (Parquet stores them as milliseconds; CSV as ISO 8601, ``...Z``).
    parquet_type: str
    meaning: str


#: Every column, in order.
EXPORT_COLUMNS: tuple[ExportColumn, ...] = (
    ExportColumn("correlator", "string", "the run's correlator (UUID4, as sent)"),
    ExportColumn("product", "string", "the product that was run"),
    ExportColumn("product_version", "string", "its version (null if not reported)"),
    ExportColumn("python_version", "string", "Python's version (level 2 and up)"),
    ExportColumn("platform", "string", "operating system (platform.system(); level 2 and up)"),
    ExportColumn("level", "int8", "tracking level, 1-3"),
    ExportColumn("project", "string", "project name, if the host named one"),
    ExportColumn("start", "timestamp[UTC]", "when the run started (level 3)"),
    ExportColumn("end", "timestamp[UTC]", "when the run ended (level 3, from its close)"),
    ExportColumn("execution_time", "float64", "seconds from start to end (level 3)"),
    ExportColumn("app_count", "int32", "apps the run executed (level 3)"),
    ExportColumn("app_fails", "int32", "apps that failed (level 3)"),
    ExportColumn(
        "components",
        "list<string>",
        "names of the components reported (start's, else close's); CSV: a JSON array",
    ),
    ExportColumn(
        "received",
        "timestamp[UTC]",
        "when the collector first received the run (to the "
        "day for runs stored before schema version 3)",
    ),
)


def _day(value: datetime.date | None) -> int | None:
    return None if value is None else (value - datetime.date(1970, 1, 1)).days


def _values(run: KeyedRun) -> list[Any]:
    row = run.row
    return [
        correlator_text(run.key),
        row.product,
        row.version,
        row.python_v,
        row.platform,
        row.level,
        row.project,
        row.start,
        row.end,
        row.execution_time,
        row.app_count,
        row.app_fails,
        list(component_names(row)),
        row.received,
    ]


def _parquet_schema(pa: Any) -> Any:
    types = {
        "string": pa.string(),
        "int8": pa.int8(),
        "int32": pa.int32(),
        "float64": pa.float64(),
        "timestamp[UTC]": pa.timestamp("s", tz="UTC"),
        "list<string>": pa.list_(pa.string()),
    }
    return pa.schema([pa.field(c.name, types[c.parquet_type]) for c in EXPORT_COLUMNS])


def _write_parquet(batches: Iterator[list[KeyedRun]], path: Path) -> int:
    try:
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.parquet as pq  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ExportError(PARQUET_EXTRA_HINT) from exc
    schema = _parquet_schema(pa)
    count = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for batch in batches:
            columns: list[list[Any]] = [[] for _ in EXPORT_COLUMNS]
            for run in batch:
                for column, value in zip(columns, _values(run), strict=True):
                    column.append(value)
            writer.write_table(pa.Table.from_arrays(
                [pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)],
                schema=schema,
            ))  # fmt: skip
            count += len(batch)
        if count == 0:
            writer.write_table(schema.empty_table())
    return count


def _csv_time(seconds: int | None) -> str:
    if seconds is None:
        return ""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_csv(batches: Iterator[list[KeyedRun]], path: Path) -> int:
    times = {"start", "end", "received"}
    names = [c.name for c in EXPORT_COLUMNS]
    count = 0
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(names)
        for batch in batches:
            for run in batch:
                out: list[Any] = []
                for name, value in zip(names, _values(run), strict=True):
                    if name in times:
                        out.append(_csv_time(value))
                    elif name == "components":
                        out.append(orjson.dumps(value).decode())
                    else:
                        out.append("" if value is None else value)
                writer.writerow(out)
            count += len(batch)
    return count


def export_runs(
    store: Store,
    product: str,
    out: str | Path,
    *,
    format: Format = "parquet",
    since: datetime.date | None = None,
    until: datetime.date | None = None,
    batch: int = BATCH,
) -> int:
    """Write the runs of ``product`` first received from ``since`` to ``until`` (inclusive
    days, UTC; ``None``: no bound) to ``out``; return how many runs were written."""
    target = Path(out)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    batches = store.iter_runs(product, _day(since), _day(until), batch)
    try:
        if format == "parquet":
            count = _write_parquet(batches, partial)
        else:
            count = _write_csv(batches, partial)
        partial.replace(target)
    except OSError as exc:
        msg = f"cannot write {target}: {exc.strerror or exc}"
        raise ExportError(msg) from exc
    finally:
        closing = getattr(batches, "close", None)
        if closing is not None:
            closing()  # ends the read transaction (PostgreSQL) if a write failed
        partial.unlink(missing_ok=True)
    return count
