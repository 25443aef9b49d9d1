"""Query and path parameters of the HTTP API: each one declared once, checked with a clear 400.

The same declarations feed the OpenAPI document (``_openapi``), so what the API checks and what
it documents cannot drift apart.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import Any

from attrs import frozen

from .._wire_rules import STORED_CORRELATOR_PATTERN, is_stored_correlator
from ._period import parse_day

__all__ = [
    "CI",
    "CORRELATOR",
    "LIMIT",
    "PRODUCT",
    "SINCE",
    "UNTIL",
    "UUID_PATTERN",
    "BadParameterError",
    "ChoiceParam",
    "DateParam",
    "IntParam",
    "TextParam",
    "correlator",
]

_DIGITS = re.compile(r"[0-9]+")
#: A correlator in a path: a lower-case UUID (any version; the store knows which exist).
UUID_PATTERN = STORED_CORRELATOR_PATTERN
#: Text parameters: no control characters (C0, DEL, C1).
_TEXT_PATTERN = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"
_TEXT = re.compile(_TEXT_PATTERN)


class BadParameterError(ValueError):
    """A query or path parameter that the API cannot use; the message says why."""


@frozen
class IntParam:
    """An integer query parameter written in ASCII digits, within ``low..high``."""

    name: str
    low: int
    high: int
    default: int
    description: str

    def read(self, query: Mapping[str, str]) -> int:
        """The value in ``query``, or the default; raise ``BadParameterError``."""
        text = query.get(self.name)
        if text is None:
            return self.default
        # str.isdigit() accepts '²' and other non-ASCII digits; only 0-9 are a number here.
        if _DIGITS.fullmatch(text) is None or not self.low <= int(text) <= self.high:
            msg = f"{self.name} must be a whole number from {self.low} to {self.high}"
            raise BadParameterError(msg)
        return int(text)

    def schema(self) -> dict[str, Any]:
        """The OpenAPI schema of this parameter."""
        return {
            "type": "integer",
            "minimum": self.low,
            "maximum": self.high,
            "default": self.default,
        }


@frozen
class TextParam:
    """A text query parameter: at most ``max_length`` characters, no control characters.

    Empty means absent.
    """

    name: str
    max_length: int
    description: str

    def read(self, query: Mapping[str, str]) -> str | None:
        """The value in ``query``, or ``None``; raise ``BadParameterError``."""
        text = query.get(self.name)
        if not text:
            return None
        if len(text) > self.max_length or _TEXT.fullmatch(text) is None:
            msg = f"{self.name} must be at most {self.max_length} characters, none of them control"
            raise BadParameterError(msg)
        return text

    def schema(self) -> dict[str, Any]:
        """The OpenAPI schema of this parameter."""
        return {"type": "string", "maxLength": self.max_length, "pattern": _TEXT_PATTERN}


@frozen
class ChoiceParam:
    """A query parameter that is one of a few words; the first is the default."""

    name: str
    choices: tuple[str, ...]
    description: str

    def read(self, query: Mapping[str, str]) -> str:
        """The word in ``query``, or the default; raise ``BadParameterError``."""
        text = query.get(self.name)
        if not text:
            return self.choices[0]
        if text not in self.choices:
            msg = f"{self.name} must be one of {', '.join(self.choices)}"
            raise BadParameterError(msg)
        return text

    def schema(self) -> dict[str, Any]:
        """The OpenAPI schema of this parameter."""
        return {"type": "string", "enum": list(self.choices), "default": self.choices[0]}


@frozen
class DateParam:
    """A UTC date query parameter, ``YYYY-MM-DD`` (see ``_period.parse_day``)."""

    name: str
    description: str

    def read(self, query: Mapping[str, str]) -> datetime.date | None:
        """The date in ``query``, or ``None``; raise ``BadParameterError``."""
        text = query.get(self.name)
        if not text:
            return None
        try:
            return parse_day(text, self.name)
        except ValueError as exc:
            raise BadParameterError(str(exc)) from None

    def schema(self) -> dict[str, Any]:
        """The OpenAPI schema of this parameter."""
        return {
            "type": "string",
            "format": "date",
            "pattern": "^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$",
        }


SINCE = DateParam(
    "since",
    "First day (UTC, YYYY-MM-DD, from 2000-01-01) of the period: runs that started on or "
    "after it. Without it: from the first run.",
)
UNTIL = DateParam(
    "until",
    "Last day (UTC, YYYY-MM-DD, to 2100-12-31) of the period, included. Without it: today.",
)
PRODUCT = TextParam(
    "product", 200, "The product to show; the product with the most runs when absent."
)
LIMIT = IntParam("limit", 1, 1000, 50, "How many projects to list.")
CI = ChoiceParam(
    "ci",
    ("exclude", "include"),
    "Runs from CI (their Environment component names a CI service) are left out unless "
    "'include': a project's test suite is not a user.",
)
CORRELATOR = "correlator"


def correlator(text: str) -> str:
    """A run's correlator from a path; raise ``BadParameterError`` unless a lower-case UUID."""
    if not is_stored_correlator(text):
        msg = "a correlator is a lower-case UUID such as 3f2b8c1e-0d4a-4e8b-9c6f-1a2b3c4d5e6f"
        raise BadParameterError(msg)
    return text
