"""``telemetry-sdk collector report``: a period's summary as Markdown, HTML or CSV."""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from ._period import Period, parse_day
from ._period_views import summary
from ._report_csv import render_csv
from ._report_html import render_html
from ._report_markdown import render_markdown
from ._store import StoreError, open_store

__all__ = ["add_report_parser", "run_report"]

_RENDER = {"md": render_markdown, "html": render_html, "csv": render_csv}
_DEFAULT_DAYS = 30


def _date(text: str) -> datetime.date:
    try:
        return parse_day(text, "a date")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_report_parser(actions: Any) -> None:
    """Add ``report`` to the collector's operator commands."""
    report = actions.add_parser(
        "report",
        help="write a period's usage summary for funders (Markdown, HTML or CSV)",
        description=(
            "Summarise one product over a period: runs, distinct and top projects, version "
            "adoption and upgrade times, Python versions, platforms, components, failure "
            "rates, and the change from the previous period of the same length. Runs count "
            "on the day they started (UTC)."
        ),
    )
    report.add_argument(
        "--db", required=True, metavar="URL", help="database: a SQLite path or postgresql://..."
    )
    report.add_argument("--product", help="the product (default: the one with the most runs)")
    report.add_argument("--since", type=_date, metavar="DATE", help="first day, YYYY-MM-DD (UTC)")
    report.add_argument(
        "--until",
        type=_date,
        metavar="DATE",
        help="last day, YYYY-MM-DD (UTC; default: today)",
    )
    report.add_argument("--format", choices=sorted(_RENDER), default="md", help="default: md")
    report.add_argument("--out", metavar="FILE", help="write to FILE instead of the terminal")
    report.add_argument(
        "--top", type=int, default=20, metavar="N", help="named projects listed (default: 20)"
    )
    report.add_argument(
        "--include-ci",
        action="store_true",
        help="count runs from CI too (left out by default, as in the API and the dashboard)",
    )
    report.set_defaults(func=run_report)


def _fail(message: str, code: int = 1) -> int:
    print(f"telemetry-sdk collector report: {message}", file=sys.stderr)
    return code


def run_report(args: argparse.Namespace) -> int:
    """Write the report; 0, or 1 with one line saying what is wrong."""
    until = args.until or datetime.datetime.now(datetime.UTC).date()
    since = args.since or until - datetime.timedelta(days=_DEFAULT_DAYS - 1)
    if until < since:
        return _fail(f"--until ({until}) is before --since ({since})", 2)
    if not 1 <= args.top <= 1000:
        return _fail("--top must be from 1 to 1000", 2)
    try:
        store = open_store(args.db, readonly=True, create=False)
    except StoreError as exc:
        return _fail(str(exc))
    try:
        product = args.product
        if product is None:
            known = store.products(include_ci=args.include_ci)
            if not known:
                return _fail("the database holds no runs yet")
            product = known[0].product
        found = store.view(summary, product, Period(since, until), args.top, args.include_ci)
        text = _RENDER[args.format](found)
    finally:
        store.close()
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        _write(Path(args.out), text)
    except OSError as exc:
        return _fail(f"cannot write {args.out}: {exc.strerror or exc}")
    print(f"wrote the {args.format} report for {product}, {since} to {until}, to {args.out}")
    return 0


def _write(path: Path, text: str) -> None:
    """Write ``text`` whole or not at all (a temporary file renamed into place)."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
