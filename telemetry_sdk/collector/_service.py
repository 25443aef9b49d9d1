"""The collector service: sockets, receiver, writer and HTTP wired together."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from pathlib import Path
from typing import Any

from attrs import define, field, frozen

from ._http_app import build_app
from ._http_server import HTTPLimits, HTTPServer
from ._http_views import HTTPContext
from ._metrics import Metrics
from ._prometheus import registry_for
from ._ratelimit import RateLimiter
from ._receiver import Receiver
from ._store import SQLiteStore
from ._writer import Writer, WriterProcess

__all__ = ["Collector", "CollectorSettings", "parse_address"]

logger = logging.getLogger("telemetry_sdk.collector")

#: Receive buffer asked for; the kernel caps it at ``net.core.rmem_max`` (doubled).
RCVBUF = 8 * 1024 * 1024


def parse_address(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` or ``[IPV6]:PORT``; raise ``ValueError``."""
    rest = text.strip()
    if rest.startswith("["):
        host, sep, port = rest[1:].partition("]:")
    else:
        host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        msg = f"expected HOST:PORT (port 0-65535; 0 picks a free port), got {text!r}"
        raise ValueError(msg)
    return host, int(port)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _show(address: tuple[Any, ...]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@frozen(kw_only=True)
class CollectorSettings:
    """How a collector listens and where it keeps its data."""

    udp: tuple[str, int] = ("127.0.0.1", 50077)
    #: ``None`` runs without HTTP.
    http: tuple[str, int] | None = ("127.0.0.1", 8000)
    db: Path = Path("telemetry-collector.db")
    #: Timeouts and size limits of the HTTP server.
    http_limits: HTTPLimits = field(factory=HTTPLimits)
    #: Bearer token that allows ``DELETE /api/runs/...``; ``None`` refuses deletion over HTTP.
    admin_token: str | None = None
    #: Datagrams per second per source address (0: no limit) and the burst allowed.
    rate: float = 20.0
    burst: int = 200
    rcvbuf: int = RCVBUF
    #: Datagrams received but not yet decoded and written, at most (about 300 bytes each);
    #: beyond it new ones are dropped and counted (``queue_dropped``).
    max_queued: int = 500_000
    #: Write from a child process (the default: the receive loop keeps the GIL to itself)
    #: or from a thread in this process.
    writer_process: bool = True


@define
class Collector:
    """A running collector. ``start()`` binds and returns; ``stop()`` drains and commits.

    >>> with Collector(CollectorSettings(udp=("127.0.0.1", 0), http=("127.0.0.1", 0))) as c:
    ...     print(c.udp_address, c.http_url)
    """

    settings: CollectorSettings
    metrics: Metrics = field(factory=Metrics)
    _store: SQLiteStore | None = None
    _admin_store: SQLiteStore | None = None
    _admin_lock: threading.Lock = field(factory=threading.Lock)
    _writer: Writer | WriterProcess | None = None
    _receiver: Receiver | None = None
    _sock: socket.socket | None = None
    _http: HTTPServer | None = None
    _http_context: HTTPContext | None = None
    _stopped: bool = False

    @property
    def udp_address(self) -> tuple[str, int]:
        """The bound UDP address (the real port when 0 was asked for)."""
        assert self._sock is not None, "not started"
        host, port = self._sock.getsockname()[:2]
        return host, port

    @property
    def http_address(self) -> tuple[str, int] | None:
        """The bound HTTP address, or ``None`` without HTTP."""
        return None if self._http is None else self._http.bound_address

    @property
    def http_url(self) -> str | None:
        """The dashboard's URL, or ``None`` without HTTP."""
        address = self.http_address
        return None if address is None else f"http://{_show(address)}/"

    def start(self) -> Collector:
        """Open the store, bind the sockets and start the threads."""
        settings = self.settings
        self._store = SQLiteStore.open(settings.db)
        family = socket.AF_INET6 if ":" in settings.udp[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, settings.rcvbuf)
            sock.bind(settings.udp)
        except OSError:
            sock.close()
            self._store.close()
            raise
        self._sock = sock
        if settings.writer_process:
            self._writer = WriterProcess(
                self.metrics, settings.max_queued, db_path=str(settings.db)
            )
        else:
            self._writer = Writer(self.metrics, settings.max_queued, store=self._store)
        self._writer.start()
        self._receiver = Receiver(
            sock, RateLimiter(settings.rate, settings.burst), self.metrics, self._writer.submit
        )
        self._receiver.start()
        if settings.http is not None:
            self._start_http(settings.http)
        buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        logger.info(
            "receiving UDP on %s (receive buffer %d KiB), storing in %s",
            _show(self.udp_address),
            buffer // 1024,
            settings.db,
        )
        for what, address in (("UDP", settings.udp), ("HTTP", settings.http)):
            if address is not None and not _is_loopback(address[0]):
                logger.warning(
                    "%s listens on %s, reachable from other machines (as asked)", what, address[0]
                )
        if settings.rate <= 0 and not _is_loopback(settings.udp[0]):
            logger.warning(
                "no per-source rate limit (--rate 0): for a public collector keep the default, "
                "--rate 20 --burst 200"
            )
        if self.http_url is not None:
            logger.info(
                "serving HTTP on %s (dashboard at %s)",
                _show(self.http_address or ()),
                self.http_url,
            )
        if settings.rate > 0:
            logger.info(
                "rate limit: %g datagrams/s per source, bursts of %d", settings.rate, settings.burst
            )
        return self

    def _start_http(self, address: tuple[str, int]) -> None:
        settings = self.settings
        self._http_context = HTTPContext(
            db_path=str(settings.db),
            registry=registry_for(self.metrics),
            admin_token=settings.admin_token,
            writable=self._admin,
            healthy=lambda: bool(self._writer and self._writer.alive),
        )
        app = build_app(self._http_context, self.metrics.http, settings.http_limits.max_headers)
        self._http = HTTPServer(app, address, settings.http_limits, self.metrics.http)
        try:
            self._http.start()
        except OSError:
            self._http = None
            self.stop()
            raise

    def _admin(self) -> SQLiteStore:
        with self._admin_lock:
            if self._admin_store is None:
                self._admin_store = SQLiteStore.open(self.settings.db)
            return self._admin_store

    def stop(self) -> None:
        """Stop receiving, write everything accepted so far, commit, and close."""
        if self._stopped:
            return
        self._stopped = True
        if self._http is not None:
            self._http.stop()
        if self._http_context is not None:
            self._http_context.close()
        if self._receiver is not None:
            self._receiver.stop()
        if self._writer is not None:
            self._writer.stop()
        if self._sock is not None:
            self._sock.close()
        for store in (self._store, self._admin_store):
            if store is not None:
                store.close()
        if self._writer is not None:
            summary = " ".join(f"{k}={v}" for k, v in self.metrics.summary().items())
            logger.info("stopped: %s", summary)

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
