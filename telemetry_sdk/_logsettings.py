"""How large the local log may grow: its rotation size and how many old generations are kept.

``<PRODUCT>_USAGE_TRACKING_LOG_MAX_BYTES`` (an integer, at least :data:`MIN_MAX_BYTES`) and
``<PRODUCT>_USAGE_TRACKING_LOG_BACKUPS`` (an integer 0-:data:`MAX_BACKUPS`) change the defaults.
A bad value falls back to the default with one warning (given by ``_consent``), never raises.

The log never holds more than ``max_bytes * (backups + 1)`` bytes, plus at most one batch of
records per file (a file is rotated once a write takes it past ``max_bytes``).
"""

from __future__ import annotations

from collections.abc import Mapping

from attrs import field, frozen, validators

__all__ = [
    "DEFAULT_BACKUPS",
    "DEFAULT_MAX_BYTES",
    "MAX_BACKUPS",
    "MIN_MAX_BYTES",
    "LogLimits",
    "read_log_limits",
]

#: The size at which the log file is rotated: 10 MiB.
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
#: How many previous generations (``usage.jsonl.1`` ... ``usage.jsonl.5``) are kept.
DEFAULT_BACKUPS = 5
#: The smallest rotation size accepted: a few records.
MIN_MAX_BYTES = 4096
#: The most previous generations accepted.
MAX_BACKUPS = 1000


@frozen
class LogLimits:
    """The rotation size of a local log and how many previous generations it keeps."""

    max_bytes: int = field(
        default=DEFAULT_MAX_BYTES, validator=[validators.instance_of(int), validators.ge(1)]
    )
    backups: int = field(
        default=DEFAULT_BACKUPS,
        validator=[validators.instance_of(int), validators.ge(0), validators.le(MAX_BACKUPS)],
    )

    @property
    def total_bytes(self) -> int:
        """The most the log's files hold together (before the last record of each file)."""
        return self.max_bytes * (self.backups + 1)


def _read_int(
    name: str, environ: Mapping[str, str], default: int, low: int, high: int | None
) -> tuple[int, str | None]:
    value = environ.get(name)
    if value is None or not value.strip():
        return default, None
    text = value.strip().replace("_", "")
    if text.isdigit():
        number = int(text)
        if number >= low and (high is None or number <= high):
            return number, None
    allowed = f"an integer >= {low}" if high is None else f"an integer {low}-{high}"
    problem = f"{name}={value!r} is not {allowed}; the default {default} is used."
    return default, problem


def read_log_limits(prefix: str, environ: Mapping[str, str]) -> tuple[LogLimits, list[str]]:
    """The limits set by ``<prefix>_LOG_MAX_BYTES`` and ``<prefix>_LOG_BACKUPS``, and problems."""
    max_bytes, bad_size = _read_int(
        f"{prefix}_LOG_MAX_BYTES", environ, DEFAULT_MAX_BYTES, MIN_MAX_BYTES, None
    )
    backups, bad_count = _read_int(
        f"{prefix}_LOG_BACKUPS", environ, DEFAULT_BACKUPS, 0, MAX_BACKUPS
    )
    problems = [p for p in (bad_size, bad_count) if p is not None]
    return LogLimits(max_bytes=max_bytes, backups=backups), problems
