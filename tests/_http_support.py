"""Raw HTTP over real sockets, for what only a socket shows: timeouts, limits, framing."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from attrs import frozen


@frozen
class RawResponse:
    """One HTTP response read off a socket."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def connect(address: tuple[str, int], source: str = "127.0.0.1") -> socket.socket:
    """A TCP connection to ``address`` from ``source`` (a loopback address)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(address)
    return sock


def read_all(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (or ``timeout``)."""
    chunks = []
    deadline = time.monotonic() + timeout
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def parse_responses(data: bytes) -> list[RawResponse]:
    """Every response in ``data`` (each framed by Content-Length)."""
    responses = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        responses.append(RawResponse(int(lines[0].split()[1]), headers, rest[:length]))
        data = rest[length:]
    return responses


def exchange(
    address: tuple[str, int], request: bytes, source: str = "127.0.0.1"
) -> list[RawResponse]:
    """Send ``request`` bytes on a new connection; every response until the server closes.

    The last request should say ``Connection: close`` (a half-close is not an end of requests).
    """
    with connect(address, source) as sock:
        sock.sendall(request)
        return parse_responses(read_all(sock))
