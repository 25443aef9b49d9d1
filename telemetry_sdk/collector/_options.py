"""How a collector setting is written on the command line, and the rules for its value.

A field of ``CollectorSettings`` becomes a ``telemetry-sdk collector`` option by carrying
``metadata=option(...)``: the option's name comes from the field's name (``burst`` is
``--burst``), its default from the field's default, and its value is checked by the field's
own validator. So adding a setting with an option is one field, and nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from attrs import Attribute, frozen

from .._errors import ConfigurationError

__all__ = [
    "OPTION",
    "OPTION_GROUP",
    "Option",
    "check_address",
    "check_non_negative",
    "check_optional_address",
    "check_positive",
    "check_positive_number",
    "check_prefix_bits",
    "option",
    "option_group",
    "parse_address",
    "parse_address_or_off",
    "parse_number",
    "parse_whole_number",
    "show_address",
]

#: The key under which a field's ``Option`` is kept in its attrs metadata.
OPTION = "telemetry_sdk.option"


@frozen(kw_only=True)
class Option:
    """How one setting appears on the command line."""

    #: What the option does, for ``--help`` (the default is appended there).
    help: str
    #: Turns the option's text into the setting's value; raises ``ConfigurationError`` with a
    #: message fit for the user. The field's validator then checks the value.
    parse: Callable[[str], Any]
    metavar: str
    #: Writes the default for ``--help``.
    show: Callable[[Any], str] = str
    #: The option's name, when it is not ``--`` plus the field's name with dashes.
    name: str | None = None

    def flag(self, field_name: str) -> str:
        """The option as typed on the command line, e.g. ``--admin-token-file``."""
        return self.name or "--" + field_name.replace("_", "-")


#: The key under which a field whose value is an attrs class of options (``HTTPLimits``)
#: marks itself: each of that class's options is an option too.
OPTION_GROUP = "telemetry_sdk.option_group"


def option_group() -> Mapping[str, bool]:
    """The attrs ``metadata`` of a field holding an attrs class whose fields are options."""
    return {OPTION_GROUP: True}


def option(
    *,
    help: str,
    parse: Callable[[str], Any],
    metavar: str,
    show: Callable[[Any], str] = str,
    name: str | None = None,
) -> Mapping[str, Option]:
    """The attrs ``metadata`` that makes a settings field a command-line option."""
    return {OPTION: Option(help=help, parse=parse, metavar=metavar, show=show, name=name)}


# -- addresses ---------------------------------------------------------------------------------


def parse_address(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` or ``[IPV6]:PORT``; raise ``ConfigurationError``."""
    rest = text.strip()
    if rest.startswith("["):
        host, sep, port = rest[1:].partition("]:")
    else:
        host, sep, port = rest.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or len(port) > 5:
        msg = f"expected HOST:PORT (port 0-65535; 0 picks a free port), got {text!r}"
        raise ConfigurationError(msg)
    return host, int(port)


def parse_address_or_off(text: str) -> tuple[str, int] | None:
    """``off`` (no listener) or ``HOST:PORT``."""
    return None if text.strip().lower() == "off" else parse_address(text)


def show_address(address: tuple[str, int] | None) -> str:
    """``host:port``, ``[v6]:port``, or ``off`` for ``None``."""
    if address is None:
        return "off"
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_address(_: object, attribute: Attribute[Any], value: object) -> None:
    """attrs validator: a ``(host, port)`` pair with a port in 0-65535."""
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not isinstance(value[0], str)
        or not value[0]
        or type(value[1]) is not int
        or not 0 <= value[1] <= 65535
    ):
        msg = (
            f"{attribute.name} must be a (host, port) pair with a port in 0-65535 "
            f"(0 picks a free port), got {value!r}"
        )
        raise ConfigurationError(msg)


def check_optional_address(instance: object, attribute: Attribute[Any], value: object) -> None:
    """attrs validator: ``None`` (no listener) or what ``check_address`` accepts."""
    if value is not None:
        check_address(instance, attribute, value)


# -- numbers -----------------------------------------------------------------------------------


def parse_number(text: str) -> float:
    """A decimal number such as ``20`` or ``0.5``; raise ``ConfigurationError``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        msg = f"expected a number, got {text!r}"
        raise ConfigurationError(msg)
    return value


def parse_whole_number(text: str) -> int:
    """ASCII digits only: no sign, no spaces, no underscores; raise ``ConfigurationError``."""
    if not (text.isascii() and text.isdigit()):
        msg = f"expected a whole number, got {text!r}"
        raise ConfigurationError(msg)
    return int(text)


def check_non_negative(_: object, attribute: Attribute[Any], value: float) -> None:
    """attrs validator: a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        msg = f"{attribute.name} must be a number >= 0, got {value!r}"
        raise ConfigurationError(msg)


def check_positive_number(_: object, attribute: Attribute[Any], value: float) -> None:
    """attrs validator: a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        msg = f"{attribute.name} must be a number > 0, got {value!r}"
        raise ConfigurationError(msg)


def check_positive(_: object, attribute: Attribute[Any], value: int) -> None:
    """attrs validator: a whole number >= 1."""
    if type(value) is not int or value < 1:
        msg = f"{attribute.name} must be a whole number >= 1, got {value!r}"
        raise ConfigurationError(msg)


def check_prefix_bits(most: int) -> Callable[[object, Attribute[Any], int], None]:
    """attrs validator: a network prefix length, a whole number 1..``most``."""

    def check(_: object, attribute: Attribute[Any], value: int) -> None:
        if type(value) is not int or not 1 <= value <= most:
            msg = f"{attribute.name} must be a whole number 1-{most}, got {value!r}"
            raise ConfigurationError(msg)

    return check
