"""telemetry-sdk: tiered, opt-in usage tracking that never hurts its host.

The public surface is what ``__all__`` lists; everything in ``telemetry_sdk._*`` is private.
"""

from __future__ import annotations

from typing import Any

from ._config import Config, Endpoint, Level, Product
from ._environment import Environment
from ._errors import ConfigurationError, DecodeError, TelemetryError, TrackingSettingWarning
from ._tracker import UsageTracker
from .typing import UsageInformation

__all__ = [
    "Config",
    "ConfigurationError",
    "DecodeError",
    "Endpoint",
    "Environment",
    "Level",
    "Product",
    "TelemetryError",
    "TrackingSettingWarning",
    "UsageInformation",
    "UsageTracker",
]


def __getattr__(name: str) -> Any:
    # The version is read from package metadata lazily: importing importlib.metadata
    # costs 10-47 ms, which the host should not pay at import time.
    if name == "__version__":
        from importlib.metadata import version

        return version("telemetry-sdk")
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
