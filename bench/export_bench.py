"""Export at scale: time and peak memory of ``telemetry-sdk collector export``.

    python bench/export_bench.py --db postgresql://postgres@127.0.0.1/test?options=... \\
        --product minflow                                   # a database filled by datagen.py
    python bench/export_bench.py --quick                    # 20,000 runs in SQLite, to check

Runs ``python -m telemetry_sdk collector export`` in its own process once per format and
reports the wall time, the rows written (read back from the file's metadata for Parquet,
counted for CSV) against the runs the database holds for the product, the file's size, and
the process's peak resident memory (``ru_maxrss`` of the child, from ``wait4``). With
``--quick`` a temporary SQLite database is filled first.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import datagen
from _collector_proc import is_postgres
from _common import clean_env, machine_line, print_table

ROOT = Path(__file__).resolve().parent.parent


def product_runs(db: str, product: str) -> int:
    """Runs of ``product`` in the database (counted, not from the rollups)."""
    if is_postgres(db):
        import psycopg

        with psycopg.connect(db) as pg:
            row = pg.execute("SELECT count(*) FROM runs WHERE product = %s", (product,)).fetchone()
        return int(row[0]) if row else 0
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(db)) as conn:
        return int(
            conn.execute("SELECT count(*) FROM runs WHERE product = ?", (product,)).fetchone()[0]
        )


def rows_in(path: Path, fmt: str) -> int:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open("rb") as file:
        return sum(1 for _ in file) - 1


def export_once(db: str, product: str, fmt: str, out: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "telemetry_sdk", "collector", "export", "--db", db,
               "--product", product, "--format", fmt, "--out", str(out)]  # fmt: skip
    began = time.perf_counter()
    process = subprocess.Popen(command, env=clean_env(), cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        msg = f"export failed with status {process.returncode}"
        raise RuntimeError(msg)
    return {"seconds": elapsed, "peak_kib": float(usage.ru_maxrss)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="the database (a SQLite path or postgresql://...)")
    parser.add_argument("--product", default="minflow")
    parser.add_argument("--formats", default="parquet,csv")
    parser.add_argument("--quick", action="store_true", help="20,000 runs in a temporary SQLite")
    args = parser.parse_args(argv)
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db
        if args.quick or db is None:
            db = str(Path(tmp) / "runs.db")
            datagen.fill(db, 20_000, batch=5000, seed=5, progress=False, products=1)
        held = product_runs(db, args.product)
        rows = []
        for fmt in args.formats.split(","):
            out = Path(tmp) / f"runs.{fmt}"
            result = export_once(db, args.product, fmt, out)
            written = rows_in(out, fmt)
            rows.append([
                fmt, f"{held:,}", f"{written:,}", f"{result['seconds']:,.1f} s",
                f"{written / result['seconds']:,.0f}", f"{out.stat().st_size / (1 << 20):,.0f} MiB",
                f"{result['peak_kib'] / 1024:,.0f} MiB", "yes" if written == held else "NO",
            ])  # fmt: skip
            out.unlink()
    engine = "PostgreSQL" if is_postgres(db) else "SQLite"
    print_table(
        f"collector export of one product ({engine})",
        ["format", "runs held", "rows written", "time", "rows/s", "file", "peak RSS", "complete"],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
