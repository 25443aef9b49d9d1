"""The report for funders as one self-contained HTML file: inline CSS and SVG, no scripts.

Laid out to print on A4 (portrait, 14 mm margins; a section never splits across pages
unless it is longer than a page). Every name from a datagram is escaped.
"""

from __future__ import annotations

from html import escape

from ._report import Table, format_cell, tables
from ._summaries import Summary
from ._svg import bar_chart, share_chart

__all__ = ["render_html"]

_STYLE = """
@page { size: A4; margin: 14mm; }
body { font: 10.5pt/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2733;
       max-width: 182mm; margin: 1.5em auto; padding: 0 4mm; }
h1 { font-size: 17pt; margin: 0 0 0.2em; }
h2 { font-size: 12.5pt; margin: 1.4em 0 0.4em; }
section { break-inside: avoid; }
table { border-collapse: collapse; width: 100%; font-size: 9pt; margin: 0.3em 0; }
th, td { border-bottom: 1px solid #d7dee6; padding: 2px 5px; text-align: left;
         overflow-wrap: anywhere; }
th { overflow-wrap: normal; vertical-align: bottom; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.note, .meta { color: #5b6b7c; font-size: 9pt; }
.flag { color: #b00020; font-weight: 600; }
svg { width: 100%; height: auto; max-height: 110mm; }
"""


def _table(table: Table) -> str:
    if not table.rows:
        return "<p class='note'>No runs in this period.</p>"
    head = "".join(
        f"<th class='{'text' if c.kind == 'text' else 'num'}' scope='col'>{escape(c.name)}</th>"
        for c in table.columns
    )
    body = []
    for row in table.rows:
        cells = []
        for value, column in zip(row, table.columns, strict=True):
            text = escape(format_cell(value, column.kind))
            css = "text" if column.kind == "text" else "num"
            if value == "worse":
                css += " flag"
            cells.append(f"<td class='{css}'>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(summary: Summary) -> str:
    """The report as one HTML document."""
    period = summary.period
    title = f"Usage of {summary.product}: {period.since} to {period.until}"
    charts = {
        "versions": share_chart(summary.versions, "Share of runs per version"),
        "python": bar_chart(summary.python_versions, "Runs per Python version"),
        "platforms": bar_chart(summary.platforms, "Runs per platform"),
        "components": bar_chart(summary.components, "Runs that used each component"),
    }
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p class='meta'>{period.days} days. Runs are counted on the day they started "
        "(UTC). Made by telemetry-sdk collector report.</p>",
    ]
    for table in tables(summary):
        parts.append(f"<section id='{table.key}'><h2>{escape(table.title)}</h2>")
        if table.note:
            parts.append(f"<p class='note'>{escape(table.note)}</p>")
        if table.key in charts:
            parts.append(charts[table.key])
        parts.append(_table(table))
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "".join(parts)
