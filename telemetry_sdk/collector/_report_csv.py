"""The report as CSV: one table per section, each headed by a ``section`` row."""

from __future__ import annotations

import csv
import io

from ._report import Cell, tables
from ._summaries import Summary

__all__ = ["render_csv"]


def _csv_cell(value: Cell) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        # Spreadsheets would run it as a formula.
        return "'" + value
    return value


def render_csv(summary: Summary) -> str:
    """The report as CSV: one table per section, each headed by its name, a blank line between."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    period = summary.period
    writer.writerow(["report", summary.product, period.since.isoformat(), period.until.isoformat()])
    for table in tables(summary):
        writer.writerow([])
        writer.writerow(["section", table.key])
        writer.writerow([c.name for c in table.columns])
        for row in table.rows:
            writer.writerow([_csv_cell(v) for v in row])
    return buffer.getvalue()
