"""Public protocols and type aliases of telemetry-sdk, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, TypeAlias, runtime_checkable

#: A value a component may report about itself: small and JSON-safe.
Scalar: TypeAlias = str | int | float | bool | None


@runtime_checkable
class UsageInformation(Protocol):
    """A component that adds safe details about itself to level-2 and level-3 messages.

    Return only values that say nothing about the user: counts, flags, names of
    choices. Never host names, user names, paths or addresses.
    """

    def usage_information(self) -> Mapping[str, Scalar]: ...
