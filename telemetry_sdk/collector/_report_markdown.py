"""The report in Markdown (GitHub-flavoured tables), to paste into a grant report.

Only names (text cells and column names, which may come from datagrams) are escaped; the
figures are the report's own.
"""

from __future__ import annotations

import re

from ._report import format_cell, tables
from ._summaries import Summary

__all__ = ["markdown_text", "render_markdown"]

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]#|~<>&])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def markdown_text(text: str) -> str:
    """``text`` as literal Markdown: every special character escaped, controls dropped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _CONTROL.sub("", text))


def render_markdown(summary: Summary) -> str:
    """The report in Markdown (GitHub-flavoured tables), to paste into a grant report."""
    period = summary.period
    out = [
        f"# Usage of {markdown_text(summary.product)}: {period.since} to {period.until}",
        "",
        f"Runs are counted on the day they started (UTC). {period.days} days.",
    ]
    for table in tables(summary):
        out += ["", f"## {table.title}", ""]
        if table.note:
            out += [table.note, ""]
        if not table.rows:
            out.append("No runs in this period.")
            continue
        out.append("| " + " | ".join(markdown_text(c.name) for c in table.columns) + " |")
        # Only names (text cells, column names) can hold Markdown; figures are ours.
        out.append(
            "|" + "|".join("---" if c.kind == "text" else "---:" for c in table.columns) + "|"
        )
        for row in table.rows:
            cells = [
                markdown_text(v) if isinstance(v, str) else format_cell(v, c.kind)
                for v, c in zip(row, table.columns, strict=True)
            ]
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"
