"""Periods of time every view is asked for: the UTC days from ``since`` to ``until``.

A run counts on the day it started: its ``start`` time when the start message arrived,
otherwise the day its first message was received. Days are numbered as the store keeps
them: whole days since 1970-01-01 (UTC).
"""

from __future__ import annotations

import datetime
import re
from typing import Literal

from attrs import frozen

__all__ = [
    "EARLIEST",
    "LATEST",
    "WEEKLY_FROM_DAYS",
    "Bucket",
    "Period",
    "bucket_start",
    "date_of",
    "day_number",
    "parse_day",
]

_EPOCH = datetime.date(1970, 1, 1)
#: Periods longer than this many days are charted per week instead of per day.
WEEKLY_FROM_DAYS = 93

Bucket = Literal["day", "week"]

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: The dates a period may name.
EARLIEST = datetime.date(2000, 1, 1)
LATEST = datetime.date(2100, 12, 31)


def parse_day(text: str, name: str) -> datetime.date:
    """A ``YYYY-MM-DD`` date from 2000 to 2100; ``ValueError`` naming ``name`` otherwise."""
    day = None
    if _DATE.fullmatch(text):
        try:
            day = datetime.date.fromisoformat(text)
        except ValueError:
            day = None
    if day is None or not EARLIEST <= day <= LATEST:
        msg = f"{name} must be YYYY-MM-DD, from {EARLIEST} to {LATEST}"
        raise ValueError(msg)
    return day


def day_number(day: datetime.date) -> int:
    """The store's number for a UTC date (days since 1970-01-01)."""
    return (day - _EPOCH).days


def date_of(number: int) -> datetime.date:
    """The UTC date of a store day number."""
    return _EPOCH + datetime.timedelta(days=number)


def bucket_start(number: int, bucket: Bucket) -> int:
    """The first day of the bucket holding day ``number``: itself, or the Monday of its week."""
    if bucket == "day":
        return number
    # 1970-01-01 was a Thursday: day 0 is weekday 3.
    return number - (number + 3) % 7


@frozen
class Period:
    """The UTC days ``since`` to ``until``, both included."""

    since: datetime.date
    until: datetime.date

    def __attrs_post_init__(self) -> None:
        if self.until < self.since:
            msg = f"until ({self.until}) is before since ({self.since})"
            raise ValueError(msg)

    @property
    def first(self) -> int:
        """The store day number of ``since``."""
        return day_number(self.since)

    @property
    def last(self) -> int:
        """The store day number of ``until``."""
        return day_number(self.until)

    @property
    def days(self) -> int:
        """How many days the period holds."""
        return self.last - self.first + 1

    @property
    def bucket(self) -> Bucket:
        """How the period is charted: per day up to 92 days, per week beyond."""
        return "week" if self.days >= WEEKLY_FROM_DAYS else "day"

    def previous(self) -> Period:
        """The period of the same length that ends the day before this one starts."""
        length = datetime.timedelta(days=self.days)
        return Period(self.since - length, self.until - length)

    def buckets(self) -> list[int]:
        """The first day of every bucket the period touches, in order."""
        starts: list[int] = []
        day = bucket_start(self.first, self.bucket)
        step = 1 if self.bucket == "day" else 7
        while day <= self.last:
            starts.append(day)
            day += step
        return starts
