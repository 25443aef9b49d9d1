"""What the host library declares (``Product``) and what its users configure (``Config``)."""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from ._errors import ConfigurationError
from ._wire_rules import PROJECT_NAME_MAX, is_product_name, is_project_name, is_token

if TYPE_CHECKING:
    # ``pathlib`` (with ``urllib.parse``, ``ipaddress``, ``fnmatch`` ...) is imported when a
    # ``log_path`` is given, not by ``import telemetry_sdk``: the host's import stays cheap.
    from pathlib import Path

__all__ = ["Config", "Endpoint", "Level", "Product", "parse_endpoint", "validate_project_name"]


class Level(enum.IntEnum):
    """How much a run reports. Levels are cumulative."""

    #: Nothing is built, sent, logged, opened or started.
    OFF = 0
    #: Product version, Python version, platform name.
    BASIC = 1
    #: Level 1 plus the class names of the configured components.
    COMPONENTS = 2
    #: Level 2 plus execution details: start time, app count, failures, runtime.
    EXECUTION = 3


#: The shortest heartbeat interval accepted, in seconds.
HEARTBEAT_MIN = 1.0
#: The default heartbeat interval: one progress message an hour, as Ray reports its usage.
HEARTBEAT_DEFAULT = 3600.0
_HOST = re.compile(r"[A-Za-z0-9_.-]{1,253}")


@frozen
class Endpoint:
    """A parsed ``udp://host:port`` destination."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"udp://{host}:{self.port}"


def parse_endpoint(text: str) -> Endpoint:
    """Parse ``udp://host:port`` (IPv6 literals in brackets); raise ``ConfigurationError``."""
    if not isinstance(text, str):
        msg = f"endpoint must be a string like 'udp://host:port', got {type(text).__name__}"
        raise ConfigurationError(msg)
    rest = text.strip()
    if not rest.startswith("udp://"):
        msg = f"endpoint must look like 'udp://host:port', got {text!r}"
        raise ConfigurationError(msg)
    rest = rest[len("udp://") :].rstrip("/")
    if rest.startswith("["):
        host, sep, port_text = rest[1:].partition("]:")
        ok = bool(sep) and ":" in host and all(c in "0123456789abcdefABCDEF:." for c in host)
    else:
        host, sep, port_text = rest.rpartition(":")
        ok = bool(sep) and _HOST.fullmatch(host) is not None
    if not ok or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        msg = f"endpoint must look like 'udp://host:port' with a port 1-65535, got {text!r}"
        raise ConfigurationError(msg)
    return Endpoint(host, int(port_text))


def validate_project_name(value: object) -> str | None:
    """Return the stripped project name, or ``None``; raise ``ConfigurationError`` if invalid.

    A project name is 1-64 printable characters after stripping surrounding white space.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        msg = f"project_name must be a string or None, got {type(value).__name__}"
        raise ConfigurationError(msg)
    name = value.strip()
    if not is_project_name(name):
        msg = (
            f"project_name must be 1-{PROJECT_NAME_MAX} printable characters "
            f"with no control characters, got {value!r}"
        )
        raise ConfigurationError(msg)
    return name


def _to_level(value: Any) -> Level:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3:
        msg = (
            "usage_tracking must be an int 0-3 (0 off, 1 basic, 2 components, 3 execution) "
            f"or a Level, got {value!r}"
        )
        raise ConfigurationError(msg)
    return Level(int(value))


def _to_components(value: Any) -> tuple[object, ...]:
    if value is None:
        return ()
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        msg = f"components must be a list of objects, got {type(value).__name__}"
        raise ConfigurationError(msg)
    return tuple(value)


def _to_endpoint(value: Any) -> Endpoint | None:
    if value is None or isinstance(value, Endpoint):
        return value
    return parse_endpoint(value)


def _to_log_path(value: Any) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike) or not os.fspath(value):
        msg = f"log_path must be a non-empty path, got {value!r}"
        raise ConfigurationError(msg)
    from pathlib import Path

    return Path(value).expanduser()


def _to_heartbeat_interval(value: Any) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not HEARTBEAT_MIN <= value < float("inf")
    ):
        msg = (
            f"heartbeat_interval must be a number of seconds >= {HEARTBEAT_MIN:g} "
            f"(finite), or None for no heartbeats, got {value!r}"
        )
        raise ConfigurationError(msg)
    return float(value)


def _check_product_name(_: object, __: object, value: Any) -> None:
    # The wire's rule: "python" is refused, its version key would be Python's "python_v".
    if not is_product_name(value):
        msg = (
            "Product name must be 1-40 letters, digits, '_' or '-', starting with a letter, "
            f"and not 'python', got {value!r}"
        )
        raise ConfigurationError(msg)


def _check_version(_: object, __: object, value: Any) -> None:
    if not is_token(value):
        msg = f"Product version must be 1-64 printable characters without spaces, got {value!r}"
        raise ConfigurationError(msg)


def _to_required_endpoint(value: Any) -> Endpoint:
    return value if isinstance(value, Endpoint) else parse_endpoint(value)


@frozen
class Product:
    """What the host library declares once: who it is and where its messages go.

    >>> PRODUCT = Product(name="minflow", version="1.4.0",
    ...                   endpoint="udp://tracking.example.org:50077")
    """

    name: str = field(validator=_check_product_name)
    version: str = field(validator=_check_version)
    endpoint: Endpoint = field(converter=_to_required_endpoint)

    @property
    def env_prefix(self) -> str:
        """The prefix of this product's environment variables, e.g. ``MINFLOW_USAGE_TRACKING``."""
        return re.sub(r"[^A-Z0-9]", "_", self.name.upper()) + "_USAGE_TRACKING"


@frozen
class Config:
    """What the end user sets in the application's configuration.

    ``usage_tracking`` is the only thing that can opt in: 0 (the default) is off.
    """

    usage_tracking: Level = field(default=Level.OFF, converter=_to_level)
    project_name: str | None = field(default=None, converter=validate_project_name)
    components: tuple[object, ...] = field(
        default=(), converter=_to_components, eq=False, repr=False
    )
    endpoint: Endpoint | None = field(default=None, converter=_to_endpoint)
    log_path: Path | None = field(default=None, converter=_to_log_path)
    #: At level 3, a run still open after each this many seconds sends a progress message
    #: (a heartbeat) with its counts so far; ``None``: no heartbeats.
    heartbeat_interval: float | None = field(
        default=HEARTBEAT_DEFAULT, converter=_to_heartbeat_interval
    )
