"""Every rule and limit of the protocol-1 wire schema, written once.

The SDK's ``Product`` (``_config``), the message models' validators (``_wire``), the component
walk (``_collect``) and the collector's fast path (``collector._ingest``) all ask this module,
so the sender and the receiver cannot drift apart. Each rule is a plain function on a value;
nothing is compiled at import and nothing outside the standard library is imported, so the
import costs well under a millisecond (the SDK imports it at ``import telemetry_sdk``, through
``_config``).

A value that breaks a rule is reported as a ``RuleError`` whose ``reason`` is the collector's
metric label for it (see ``REASONS``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ._errors import TelemetryError

__all__ = [
    "COMPONENTS_MAX",
    "COMPONENT_NAME_MAX",
    "COUNT_KEYS",
    "COUNT_MAX",
    "DETAIL_INT_MAX",
    "DURATION_MAX",
    "EPOCH_MAX",
    "EPOCH_MIN",
    "FUTURE_SLACK",
    "INFO_KEYS_MAX",
    "INFO_VALUE_MAX",
    "MAX_DATAGRAM",
    "PROJECT_NAME_MAX",
    "REASONS",
    "RuleError",
    "as_duration",
    "clamp_count",
    "clamp_duration",
    "duplicate_key",
    "info_problem",
    "is_component_name",
    "is_count",
    "is_duration",
    "is_epoch",
    "is_info_key",
    "is_level",
    "is_product_name",
    "is_project_name",
    "is_scalar_detail",
    "is_token",
    "is_uuid4",
    "key_total",
    "may_have_duplicate_keys",
    "not_after_receipt",
]

# -- sizes --

#: Largest datagram sent or accepted: never fragmented, even at the IPv6 minimum MTU (1,280).
MAX_DATAGRAM = 1232
#: A product name: a letter, then letters, digits, ``_`` or ``-``; 40 at most.
PRODUCT_NAME_MAX = 40
#: Versions and platform names: printable ASCII without spaces; 64 at most.
TOKEN_MAX = 64
#: A project name: printable, no surrounding white space; 64 at most.
PROJECT_NAME_MAX = 64
#: A component's qualified class name: printable; 200 at most.
COMPONENT_NAME_MAX = 200
#: Components listed in one message, at most (the SDK's walk stops there).
COMPONENTS_MAX = 64
#: Details one component may report, and the longest detail name and string value.
INFO_KEYS_MAX = 32
INFO_KEY_MAX = 64
INFO_VALUE_MAX = 200

# -- numbers --

#: ``app_count`` and ``app_fails``: whole numbers 0 .. 2**31-1 (a signed 32-bit integer).
COUNT_MAX = 2**31 - 1
#: The component details that are counts.
COUNT_KEYS = ("app_count", "app_fails")
#: Any other whole-number detail: within +-2**53, exact in every JSON parser.
DETAIL_INT_MAX = 2**53
#: ``start`` and ``end``: whole epoch seconds from 2020-01-01T00:00:00Z ...
EPOCH_MIN = 1_577_836_800
#: ... and before 2100-01-01T00:00:00Z (a message built without a receipt time) ...
EPOCH_MAX = 4_102_444_800
#: ... and on receipt, at most one day after the collector's clock.
FUTURE_SLACK = 86_400
#: ``execution_time``: 0 to one year (365 days), in seconds.
DURATION_MAX = 31_536_000.0

#: Why a datagram is rejected: the ``reason`` of ``DecodeError`` and of ``RuleError``,
#: and the collector's metric label. The first six are about framing and shape.
REASONS = (
    "size",
    "protocol",
    "encoding",
    "json",
    "schema",
    "unknown_field",
    "duplicate_key",
    "correlator",
    "count",
    "fails_over_count",
    "duration",
    "timestamp",
)

#: Infinity, for finiteness tests without importing ``math`` (0.2 ms at import).
_INF = float("inf")
_IDENT_EXTRA = str.maketrans("", "", "_.-")
_NAME_EXTRA = str.maketrans("", "", "_-")


class RuleError(TelemetryError, ValueError):
    """A value breaks a wire rule; ``reason`` is one of ``REASONS``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# -- strings --


_uuid4_fullmatch: Callable[[str], object] | None = None


def _compile_uuid4() -> Callable[[str], object]:
    # Compiled on first use, not at import; a regular expression is 2.5x faster here than
    # the same test written with string methods (180 ns against 460 ns a correlator).
    global _uuid4_fullmatch
    pattern = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    _uuid4_fullmatch = re.compile(pattern).fullmatch
    return _uuid4_fullmatch


def is_uuid4(value: object) -> bool:
    """A lower-case RFC 4122 UUID, version 4 (random), as ``str(uuid.uuid4())`` gives."""
    if type(value) is not str:
        return False
    return (_uuid4_fullmatch or _compile_uuid4())(value) is not None


#: A correlator as a run is looked up or deleted by (API paths, ``collector delete``): any
#: lower-case UUID, looser than ``is_uuid4`` so that runs stored before the version check
#: can still be found and removed.
STORED_CORRELATOR_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def is_stored_correlator(value: str) -> bool:
    """Whether ``value`` matches ``STORED_CORRELATOR_PATTERN`` (any lower-case UUID)."""
    return re.fullmatch(STORED_CORRELATOR_PATTERN, value) is not None


def is_product_name(value: object) -> bool:
    """1-40 ASCII letters, digits, ``_`` or ``-``, starting with a letter; never ``python``.

    ``python`` is refused because its version key would be ``python_v``, Python's own.
    """
    if type(value) is not str or not 1 <= len(value) <= PRODUCT_NAME_MAX:
        return False
    rest = value.translate(_NAME_EXTRA)
    return (
        value.isascii()
        and value[0].isalpha()
        and (not rest or rest.isalnum())
        and value != "python"
    )


def is_token(value: object) -> bool:
    """1-64 printable ASCII characters without spaces (versions, platform names)."""
    return (
        type(value) is str
        and 1 <= len(value) <= TOKEN_MAX
        and value.isascii()
        and value.isprintable()
        and " " not in value
    )


def is_project_name(value: object) -> bool:
    """1-64 printable characters with no surrounding white space."""
    return (
        type(value) is str
        and 1 <= len(value) <= PROJECT_NAME_MAX
        and value.isprintable()
        and value == value.strip()
    )


def is_component_name(value: object) -> bool:
    """1-200 printable characters."""
    return type(value) is str and 1 <= len(value) <= COMPONENT_NAME_MAX and value.isprintable()


def is_info_key(value: object) -> bool:
    """An identifier-like detail name (letters, digits, ``_ . -``; not a digit first), not ``c``."""
    if type(value) is not str or not 1 <= len(value) <= INFO_KEY_MAX or value == "c":
        return False
    rest = value.translate(_IDENT_EXTRA)
    first = value[0]
    return value.isascii() and (first.isalpha() or first == "_") and (not rest or rest.isalnum())


# -- numbers --


def is_level(value: object) -> bool:
    """A tracking level: the integer 1, 2 or 3 (never a bool)."""
    return type(value) is int and 1 <= value <= 3


def is_epoch(value: object) -> bool:
    """Whole epoch seconds from 2020 and before 2100 (never a bool or a float)."""
    return type(value) is int and EPOCH_MIN <= value < EPOCH_MAX


def not_after_receipt(value: int, received: int) -> bool:
    """A time sent is at most ``FUTURE_SLACK`` after the receiver's clock."""
    return value <= received + FUTURE_SLACK


def is_duration(value: object) -> bool:
    """Seconds as a float, 0 to one year."""
    return type(value) is float and 0.0 <= value <= DURATION_MAX


def as_duration(value: Any) -> Any:
    """A wire ``execution_time`` as the model holds it: whole seconds (Parsl) become a float.

    Anything else is returned as it is, for ``is_duration`` to judge.
    """
    return float(value) if type(value) is int and abs(value) <= DETAIL_INT_MAX else value


def is_count(value: object) -> bool:
    """A whole number 0 .. 2**31-1 (never a bool)."""
    return type(value) is int and 0 <= value <= COUNT_MAX


def is_scalar_detail(value: object) -> bool:
    """A detail value: null, a bool, an int within +-2**53, a finite float, a short string."""
    if value is None or type(value) is bool:
        return True
    if type(value) is int:
        return -DETAIL_INT_MAX <= value <= DETAIL_INT_MAX
    if type(value) is float:
        return -_INF < value < _INF  # NaN fails every comparison
    return type(value) is str and len(value) <= INFO_VALUE_MAX and value.isprintable()


def info_problem(info: Mapping[Any, Any]) -> RuleError | None:
    """What is wrong with a component's details, or ``None`` when they may be sent."""
    if len(info) > INFO_KEYS_MAX:
        return RuleError("schema", f"a component may report at most {INFO_KEYS_MAX} details")
    for key, value in info.items():
        if not is_info_key(key):
            return RuleError(
                "schema", f"component detail names must be identifiers other than 'c', got {key!r}"
            )
        if key in COUNT_KEYS:
            if not is_count(value):
                return RuleError(
                    "count", f"{key} must be a whole number 0 to {COUNT_MAX}, got {value!r}"
                )
        elif not is_scalar_detail(value):
            return RuleError(
                "schema",
                f"component detail {key!r} must be a short string, a finite number, a bool or null",
            )
    if "app_fails" in info and "app_count" in info and info["app_fails"] > info["app_count"]:
        return RuleError(
            "fails_over_count",
            f"app_fails ({info['app_fails']}) is more than app_count ({info['app_count']})",
        )
    return None


def clamp_count(value: int) -> int:
    """A count the sender may put on the wire: 0 .. ``COUNT_MAX``."""
    return min(max(0, value), COUNT_MAX)


def clamp_duration(seconds: float) -> float:
    """A duration the sender may put on the wire: 0 .. one year, in milliseconds."""
    if not -_INF < seconds < _INF:
        return 0.0
    return round(min(max(0.0, seconds), DURATION_MAX), 3)


# -- duplicate keys --
#
# JSON parsers keep the last of two equal keys in an object. To refuse them without giving
# up a fast parser: every key in a JSON text is followed by exactly one ':' outside strings,
# and ':' appears nowhere else except inside strings. So if the text holds no more ':' bytes
# than the parsed objects hold keys, no key was written twice; only a text with a ':' inside
# a string (rare on this wire) needs the slow, exact check.


def key_total(data: object) -> int:
    """The keys in every JSON object within ``data`` (iterative: any depth)."""
    total = 0
    stack = [data]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            total += len(item)
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return total


def may_have_duplicate_keys(raw: bytes, keys: int) -> bool:
    """``False`` when ``raw``, whose parsed objects hold ``keys`` keys in all, repeats none."""
    return raw.count(b":") != keys


class _DuplicateKeyError(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKeyError(key)
        out[key] = value
    return out


def duplicate_key(text: str) -> str | None:
    """The first key written twice in one object of the JSON ``text``, or ``None``."""
    import json

    try:
        json.loads(text, object_pairs_hook=_refuse_duplicates)
    except _DuplicateKeyError as found:
        return found.key
    except (ValueError, RecursionError):
        return None
    return None
