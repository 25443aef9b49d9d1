"""The HTTP server: uvicorn (h11) in a thread of the collector, with the limits it lacks.

uvicorn is chosen over hypercorn and granian by measurement (BENCHMARKS.md, "HTTP server"). On
its own it has no deadline for receiving a request (its keep-alive timer restarts on every byte)
and no cap on connections that answers anything, so ``_LimitedProtocol`` adds:

- a header deadline: a connection must complete its request headers within
  ``header_timeout`` seconds of connecting (or of its previous response), else it gets a 408
  and is closed, however slowly it trickles bytes;
- a connection cap: beyond ``max_connections`` open connections a new one is answered with a
  JSON 503 and closed;
- a header block of at most ``max_header_bytes`` (431 beyond; request line included), and at
  most ``max_headers`` header lines (checked by the application, ``_http_app``).

Access logs are off, and nothing the server logs names a client: uvicorn's trace lines (which
do) are disabled, and event-loop errors are logged by type only.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any

import h11
import uvicorn
from attrs import define
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from ._http_app import refusal
from ._http_limits import HTTPLimits
from ._http_views import error
from ._metrics import HTTPStats

__all__ = ["HTTPLimits", "HTTPServer"]

logger = logging.getLogger("telemetry_sdk.collector")

_STARTUP_TIMEOUT = 10.0
_SHUTDOWN_GRACE = 5


class _Config(uvicorn.Config):
    """uvicorn's configuration plus what ``_LimitedProtocol`` needs."""

    def __init__(self, app: ASGIApp, limits: HTTPLimits, stats: HTTPStats) -> None:
        super().__init__(
            app,
            http=_LimitedProtocol,
            ws="none",
            lifespan="off",
            interface="asgi3",
            access_log=False,
            log_config=None,
            proxy_headers=False,
            server_header=False,
            backlog=limits.backlog,
            timeout_keep_alive=max(1, round(limits.keepalive_timeout)),
            timeout_graceful_shutdown=_SHUTDOWN_GRACE,
            # h11's own buffer limit is a backstop; _LimitedProtocol answers first, with a 431.
            h11_max_incomplete_event_size=limits.max_header_bytes + 1,
        )
        self.limits = limits
        self.stats = stats


async def _over_capacity(scope: Scope, receive: Receive, send: Send) -> None:
    response = error(503, "too many connections; retry later")
    response.headers["connection"] = "close"
    response.headers["retry-after"] = "1"
    await response(scope, receive, send)


class _LimitedProtocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline, a connection cap and a header limit."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        assert isinstance(config, _Config)
        self._limits = config.limits
        self._stats = config.stats
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._stats.connections = len(self.connections)
        if len(self.connections) > self._limits.max_connections:
            # Answered once its request headers arrive (answering before could be lost to a
            # reset when the client's request reaches a closed socket).
            self._stats.refuse("too_many_connections")
            self.app = _over_capacity
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
        self._stats.connections = len(self.connections)

    def data_received(self, data: bytes) -> None:
        limit = self._limits.max_header_bytes
        if self.conn.their_state is h11.IDLE:
            # Over the limit unless the headers end within it (pipelined requests may follow).
            waiting = self.conn.trailing_data[0] + data
            if len(waiting) > limit and waiting.find(b"\r\n\r\n", 0, limit + 4) == -1:
                self._refuse(431, "request headers too large", "headers_too_large")
                return
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm()

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "malformed HTTP request", "malformed")

    def shutdown(self) -> None:
        self._disarm()
        super().shutdown()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self._limits.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._refuse(408, "request headers not received in time", "header_timeout")

    def _refuse(self, status: int, message: str, reason: str) -> None:
        self._stats.refuse(reason)
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(refusal(status, message))
            self.transport.close()


def _log_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # The default handler prints the transport and socket, which can name the peer.
    exc = context.get("exception")
    logger.error(
        "HTTP event loop: %s%s", context.get("message"), f" ({type(exc).__name__})" if exc else ""
    )


@define
class HTTPServer:
    """The collector's HTTP server, running in a thread; ``start()`` returns once it listens."""

    app: ASGIApp
    address: tuple[str, int]
    limits: HTTPLimits
    stats: HTTPStats
    _sock: socket.socket | None = None
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def bound_address(self) -> tuple[str, int]:
        """The address listened on (the real port when 0 was asked for)."""
        assert self._sock is not None, "not started"
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Bind, listen and serve from a thread; raise ``OSError`` if the address is taken."""
        # uvicorn logs each connection at its TRACE level with the peer's address whenever
        # this logger's own level is unset, and warns of every malformed request (a log flood
        # any client can cause); at ERROR neither exists. Refusals are counted in /metrics.
        logging.getLogger("uvicorn.error").setLevel(logging.ERROR)
        family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(self.address)
            sock.listen(self.limits.backlog)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._server = uvicorn.Server(_Config(self.app, self.limits, self.stats))
        self._thread = threading.Thread(target=self._serve, name="collector-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                msg = "the HTTP server did not start"
                raise OSError(msg)
            time.sleep(0.01)

    def _serve(self) -> None:
        assert self._server is not None
        assert self._sock is not None
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(_log_loop_error)
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # SystemExit from uvicorn on a startup failure
            logger.error("the HTTP server stopped: %s", type(exc).__name__)
        finally:
            loop.close()

    def stop(self) -> None:
        """Stop accepting, finish requests in flight (at most a few seconds), and close."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(_SHUTDOWN_GRACE + 5)
        if self._sock is not None:
            self._sock.close()
