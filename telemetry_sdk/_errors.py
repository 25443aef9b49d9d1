"""The one exception root of telemetry-sdk and its subclasses."""

from __future__ import annotations

#: What to do when the collector's dependencies are missing (said by the command and the import).
SERVER_EXTRA_HINT = "the collector needs the server extra: pip install 'telemetry-sdk[server]'"


class TelemetryError(Exception):
    """Root of every exception raised by telemetry-sdk."""


class ConfigurationError(TelemetryError, ValueError):
    """A configuration value is invalid; raised at construction, never later."""


class DecodeError(TelemetryError, ValueError):
    """A datagram is not a valid protocol-1 message.

    ``reason`` is a short, stable token suitable for a metric label, one of
    ``telemetry_sdk._wire_rules.REASONS``: ``size``, ``protocol``, ``encoding``, ``json``,
    ``schema``, ``unknown_field``, ``duplicate_key``, and for values out of bounds
    ``correlator``, ``count``, ``fails_over_count``, ``duration``, ``timestamp``;
    ``detail`` says what exactly was wrong (cattrs paths such as ``... @ $.field``).
    """

    def __init__(self, reason: str, detail: str) -> None:
        msg = f"{reason}: {detail}"
        super().__init__(msg)
        self.reason = reason
        self.detail = detail


class TrackingSettingWarning(UserWarning):
    """An outside tracking setting (environment variable, saved settings file) is unreadable.

    Tracking is turned off for the run instead of raising: an unreadable setting never
    breaks the application, and never sends more than intended.
    """
