"""``HTTPLimits``: what one client, or many, may take of the collector's HTTP server.

Kept apart from the server (``_http_server``) so that the settings and the command line can
name the limits without importing uvicorn. Each field is also a ``telemetry-sdk collector``
option (``--http-header-timeout`` ...), whose default is the field's.
"""

from __future__ import annotations

from attrs import field, frozen

from .._errors import ConfigurationError
from ._options import (
    check_positive,
    check_positive_number,
    option,
    parse_number,
    parse_whole_number,
)

__all__ = ["HTTPLimits"]


def _check_header_bytes(_: object, __: object, value: int) -> None:
    if type(value) is not int or value < 1024:
        msg = f"max_header_bytes must be a whole number >= 1024, got {value!r}"
        raise ConfigurationError(msg)


@frozen(kw_only=True)
class HTTPLimits:
    """What one client, or many, may take of the HTTP server."""

    #: Seconds from connecting (or from the previous response) to complete request headers.
    header_timeout: float = field(
        default=10.0,
        validator=check_positive_number,
        metadata=option(
            name="--http-header-timeout",
            help="seconds to complete request headers, from connecting or from the previous "
            "response; then 408 and closed",
            parse=parse_number,
            metavar="SECONDS",
            show="{:g}".format,
        ),
    )
    #: Seconds an idle keep-alive connection stays open.
    keepalive_timeout: float = field(
        default=5.0,
        validator=check_positive_number,
        metadata=option(
            name="--http-keepalive-timeout",
            help="seconds an idle keep-alive connection stays open",
            parse=parse_number,
            metavar="SECONDS",
            show="{:g}".format,
        ),
    )
    #: Open connections at most; beyond, a new one gets a 503.
    max_connections: int = field(
        default=1000,
        validator=check_positive,
        metadata=option(
            name="--http-max-connections",
            help="open connections at most; beyond, new ones get a 503",
            parse=parse_whole_number,
            metavar="N",
        ),
    )
    #: Bytes of request line and headers at most (431 beyond).
    max_header_bytes: int = field(
        default=16 * 1024,
        validator=_check_header_bytes,
        metadata=option(
            name="--http-max-header-bytes",
            help="bytes of request line and headers at most (at least 1024); beyond, 431",
            parse=parse_whole_number,
            metavar="BYTES",
        ),
    )
    #: Header lines per request at most (431 beyond).
    max_headers: int = field(
        default=100,
        validator=check_positive,
        metadata=option(
            name="--http-max-headers",
            help="header lines per request at most; beyond, 431",
            parse=parse_whole_number,
            metavar="N",
        ),
    )
    #: Connections the kernel queues before the server accepts them.
    backlog: int = field(
        default=4096,
        validator=check_positive,
        metadata=option(
            name="--http-backlog",
            help="connections the kernel queues before they are accepted",
            parse=parse_whole_number,
            metavar="N",
        ),
    )
