"""Inline SVG charts for the HTML report: a stacked area of shares and horizontal bars.

Every label is escaped here (``html.escape``): names come from datagrams. Charts carry a
title, labelled axes with units, and a legend; the numbers are also in the report's tables.
"""

from __future__ import annotations

from html import escape

from ._summaries import Count, Series

__all__ = ["PALETTE", "bar_chart", "share_chart"]

#: Series colours (colour-blind safe, Okabe-Ito), then grey for "other".
PALETTE = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
)  # fmt: skip
OTHER = "#999999"
_W, _H = 640, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 12, 12, 40


def _text(x: float, y: float, text: str, anchor: str = "start", size: int = 11) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'fill="#333">{escape(text)}</text>'
    )


def share_chart(series: Series, title: str) -> str:
    """A stacked area chart: each name's share (%) of the runs per day or week."""
    points = series.points
    if not points or not any(p.runs for p in points):
        return f"<p><em>{escape(title)}: no runs in this period.</em></p>"
    names = [*series.names, "other"]
    colours = [*PALETTE[: len(series.names)], OTHER]
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    n = len(points)

    def x(i: int) -> float:
        return _LEFT + (plot_w / 2 if n == 1 else i * plot_w / (n - 1))

    def y(share: float) -> float:
        return _TOP + plot_h * (1 - share)

    shares = []
    for p in points:
        values = [p.counts.get(name, 0) for name in series.names] + [p.other]
        shares.append([v / p.runs if p.runs else 0.0 for v in values])
    legend_h = 20 * ((len(names) + 3) // 4)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H + legend_h}" '
        f'role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    below = [0.0] * n
    for k, (name, colour) in enumerate(zip(names, colours, strict=True)):
        above = [below[i] + shares[i][k] for i in range(n)]
        if not any(shares[i][k] for i in range(n)):
            below = above
            continue
        top = " ".join(f"{x(i):.1f},{y(above[i]):.1f}" for i in range(n))
        bottom = " ".join(f"{x(i):.1f},{y(below[i]):.1f}" for i in reversed(range(n)))
        if n == 1:
            top = f"{x(0) - 6:.1f},{y(above[0]):.1f} {x(0) + 6:.1f},{y(above[0]):.1f}"
            bottom = f"{x(0) + 6:.1f},{y(below[0]):.1f} {x(0) - 6:.1f},{y(below[0]):.1f}"
        parts.append(
            f'<polygon points="{top} {bottom}" fill="{colour}" fill-opacity="0.85">'
            f"<title>{escape(name)}</title></polygon>"
        )
        below = above
    for share in (0.0, 0.5, 1.0):
        parts.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y(share):.1f}" y2="{y(share):.1f}" '
            'stroke="#ccc"/>'
        )
        parts.append(_text(_LEFT - 4, y(share) + 4, f"{share:.0%}", "end"))
    parts.append(_text(_LEFT, _H - _BOTTOM + 14, points[0].start.isoformat()))
    if n > 1:
        parts.append(_text(_W - _RIGHT, _H - _BOTTOM + 14, points[-1].start.isoformat(), "end"))
    unit = "day" if series.bucket == "day" else "week (from Monday)"
    parts.append(_text(_LEFT + plot_w / 2, _H - _BOTTOM + 28, f"date, per {unit}", "middle"))
    parts.append(
        f'<text transform="translate(12 {_TOP + plot_h / 2:.1f}) rotate(-90)" font-size="11" '
        'text-anchor="middle" fill="#333">share of runs (%)</text>'
    )
    for k, (name, colour) in enumerate(zip(names, colours, strict=True)):
        lx = _LEFT + (k % 4) * (plot_w / 4)
        ly = _H + 4 + (k // 4) * 20
        parts.append(
            f'<rect x="{lx:.1f}" y="{ly - 9:.1f}" width="10" height="10" fill="{colour}"/>'
        )
        label = name if len(name) <= 22 else name[:21] + "\u2026"
        parts.append(_text(lx + 14, ly, label))
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(items: list[Count], title: str, unit: str = "runs") -> str:
    """Horizontal bars, one per name, longest first (at most 12)."""
    rows = [c for c in items if c.runs > 0][:12]
    if not rows:
        return f"<p><em>{escape(title)}: no runs in this period.</em></p>"
    row_h, label_w = 20, 200
    height = row_h * len(rows) + 30
    top = max(c.runs for c in rows)
    span = _W - label_w - 70
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for i, c in enumerate(rows):
        y = i * row_h + 4
        width = max(1.0, c.runs / top * span)
        label = c.name if len(c.name) <= 30 else c.name[:29] + "\u2026"
        parts.append(
            f"<g><title>{escape(c.name)}: {c.runs} {unit}</title>"
            + _text(label_w - 6, y + 13, label, "end")
            + f'<rect x="{label_w}" y="{y + 2}" width="{width:.1f}" height="{row_h - 6}" '
            f'fill="{PALETTE[0]}"/>' + _text(label_w + width + 4, y + 13, str(c.runs)) + "</g>"
        )
    parts.append(_text(label_w + span / 2, height - 6, unit, "middle"))
    parts.append("</svg>")
    return "".join(parts)
