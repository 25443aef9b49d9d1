"""The collector service: sockets, receiver, writer and HTTP wired together."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import socket
import threading
from pathlib import Path
from typing import Any

from attrs import define, field, frozen, validators
from attrs.validators import instance_of

from .._errors import TelemetryError
from ._admin_token import read_token_file, validate_token
from ._health import Health, HealthPolicy, assess
from ._http_app import build_app
from ._http_limits import HTTPLimits
from ._http_server import HTTPServer
from ._http_views import HTTPContext
from ._metrics import Metrics
from ._options import (
    check_address,
    check_non_negative,
    check_optional_address,
    check_positive,
    check_prefix_bits,
    option,
    option_group,
    parse_address,
    parse_address_or_off,
    parse_number,
    parse_whole_number,
    show_address,
)
from ._prometheus import registry_for
from ._ratelimit import Limit, RateLimiter
from ._receiver import Receiver
from ._store import Store, open_store, shown_url
from ._writer import HELD_CLOSE_TTL, Writer, WriterProcess

__all__ = ["Collector", "CollectorSettings", "ListenError", "parse_address"]

logger = logging.getLogger("telemetry_sdk.collector")

#: Receive buffer asked for; the kernel caps it at ``net.core.rmem_max`` (doubled).
RCVBUF = 8 * 1024 * 1024


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _show(address: tuple[Any, ...]) -> str:
    return show_address((address[0], address[1]))


class ListenError(TelemetryError, OSError):
    """The collector cannot listen where it was asked to: the message names the address.

    ``setting`` is the ``CollectorSettings`` field (``udp`` or ``http``), ``address`` the
    address asked for, ``errno`` the operating system's error number.
    """

    def __init__(self, setting: str, address: tuple[str, int], cause: OSError) -> None:
        what = {"udp": "UDP datagrams", "http": "HTTP"}.get(setting, setting)
        if cause.errno == errno.EADDRINUSE:
            why = "the address is already in use (is another collector running?)"
        elif cause.errno == errno.EACCES:
            why = "permission denied (ports below 1024 need privileges)"
        elif cause.errno == errno.EADDRNOTAVAIL:
            why = "this machine has no such address"
        else:
            why = cause.strerror or str(cause)
        msg = f"cannot listen for {what} on {show_address(address)}: {why}"
        super().__init__(msg)
        self.errno = cause.errno
        self.setting = setting
        self.address = address


def _set_receive_buffer(sock: socket.socket, size: int) -> None:
    """Ask for a receive buffer of ``size`` bytes; past ``net.core.rmem_max`` where allowed."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    if force is not None and sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < size:
        # Linux, with CAP_NET_ADMIN only: beyond the system's cap.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, force, size)


def _url_text(value: str | Path) -> str:
    return str(value)


def _optional_url_text(value: str | Path | None) -> str | None:
    return None if value is None else str(value)


@frozen(kw_only=True)
class CollectorSettings:
    """How a collector listens and where it keeps its data.

    A field with ``metadata=option(...)`` is also a ``telemetry-sdk collector`` option of the
    same name (``--burst``), whose default is the field's default and whose value the field's
    validator checks: a new setting with an option is one field here and nothing else.
    """

    udp: tuple[str, int] = field(
        default=("127.0.0.1", 50077),
        validator=check_address,
        metadata=option(
            help="where to receive datagrams; port 0 picks a free one",
            parse=parse_address,
            metavar="HOST:PORT",
            show=show_address,
        ),
    )
    #: ``None`` runs without HTTP.
    http: tuple[str, int] | None = field(
        default=("127.0.0.1", 8000),
        validator=check_optional_address,
        metadata=option(
            help="where to serve the API, the dashboard and the metrics; 'off' disables HTTP",
            parse=parse_address_or_off,
            metavar="HOST:PORT",
            show=show_address,
        ),
    )
    #: Where runs are kept: a SQLite file (a path or ``sqlite:///PATH``) or a PostgreSQL
    #: database (``postgresql://user@host:port/dbname``, needs the ``postgres`` extra).
    db: str = field(
        default="telemetry-collector.db",
        converter=_url_text,
        metadata=option(
            help="where runs are kept: SQLite (PATH or sqlite:///PATH) or PostgreSQL "
            "(postgresql://USER@HOST:PORT/DB, which several collectors may share)",
            parse=str,
            metavar="URL",
        ),
    )
    #: Where the HTTP side reads (a PostgreSQL replica, say); ``None``: from ``db``.
    read_db: str | None = field(
        default=None,
        converter=_optional_url_text,
        metadata=option(
            help="where the HTTP API and dashboard read from, for example a PostgreSQL "
            "replica (see the README on replica lag); deletions still go to --db",
            parse=str,
            metavar="URL",
            show=lambda v: "--db" if v is None else shown_url(v),
        ),
    )
    #: Days of run rows kept; older ones are removed in small batches, while the rollups
    #: (leaderboard, stats, runs per day) keep what they counted for. 0 keeps everything.
    retain_days: float = field(
        default=0.0,
        validator=check_non_negative,
        metadata=option(
            help="remove run rows first received more than N days ago, in small batches; "
            "the leaderboard, stats and charts keep their counts; 0 keeps every run",
            parse=parse_number,
            metavar="N",
            show="{:g}".format,
        ),
    )
    #: Upgrade a database made by an older version on start (``False``: refuse it, naming
    #: ``telemetry-sdk collector migrate``).
    migrate: bool = True
    #: Timeouts and size limits of the HTTP server (``--http-*`` options).
    http_limits: HTTPLimits = field(factory=HTTPLimits, metadata=option_group())
    #: Bearer token that allows ``DELETE /api/runs/...``; ``None`` refuses deletion over HTTP.
    admin_token: str | None = field(
        default=None,
        validator=validate_token,
        repr=False,
        metadata=option(
            name="--admin-token-file",
            help="file holding the bearer token that allows DELETE over HTTP; it must be "
            "readable by its owner only (chmod 600)",
            parse=read_token_file,
            metavar="FILE",
            show=lambda _: "none: DELETE over HTTP is refused",
        ),
    )
    #: Datagrams per second per source address (0: no limit) and the burst allowed.
    rate: float = field(
        default=20.0,
        validator=check_non_negative,
        metadata=option(
            help="datagrams per second allowed from one source address, sustained; "
            "0 disables the limit",
            parse=parse_number,
            metavar="R",
            show="{:g}".format,
        ),
    )
    burst: int = field(
        default=200,
        validator=check_positive,
        metadata=option(
            help="datagrams a source may send at once before --rate applies",
            parse=parse_whole_number,
            metavar="B",
        ),
    )
    #: The same per network prefix (a /``ipv4_prefix`` or /``ipv6_prefix`` network);
    #: ``None`` means ten times ``rate`` and ``burst`` (so ``rate=0`` turns both off).
    prefix_rate: float | None = field(
        default=None,
        validator=validators.optional(check_non_negative),
        metadata=option(
            help="datagrams per second allowed from one network (see --ipv4-prefix, "
            "--ipv6-prefix), sustained; 0 disables the limit",
            parse=parse_number,
            metavar="R",
            show=lambda v: "ten times --rate" if v is None else f"{v:g}",
        ),
    )
    prefix_burst: int | None = field(
        default=None,
        validator=validators.optional(check_positive),
        metadata=option(
            help="datagrams one network may send at once before --prefix-rate applies",
            parse=parse_whole_number,
            metavar="B",
            show=lambda v: "ten times --burst" if v is None else str(v),
        ),
    )
    ipv4_prefix: int = field(
        default=24,
        validator=check_prefix_bits(32),
        metadata=option(
            help="IPv4 addresses sharing this many leading bits are one network",
            parse=parse_whole_number,
            metavar="BITS",
        ),
    )
    ipv6_prefix: int = field(
        default=64,
        validator=check_prefix_bits(128),
        metadata=option(
            help="IPv6 addresses sharing this many leading bits are one network",
            parse=parse_whole_number,
            metavar="BITS",
        ),
    )
    #: Datagrams per second over all sources together (0: no cap) and the burst allowed:
    #: far above real usage, below what the writer stores losslessly.
    global_rate: float = field(
        default=20_000.0,
        validator=check_non_negative,
        metadata=option(
            help="datagrams per second accepted from all sources together; 0 disables the cap",
            parse=parse_number,
            metavar="R",
            show="{:g}".format,
        ),
    )
    global_burst: int = field(
        default=100_000,
        validator=check_positive,
        metadata=option(
            help="datagrams accepted at once from all sources together",
            parse=parse_whole_number,
            metavar="B",
        ),
    )
    #: UDP receive buffer asked for, in bytes; the kernel may grant less (it is logged).
    rcvbuf: int = field(
        default=RCVBUF,
        validator=check_positive,
        metadata=option(
            help="UDP receive buffer to ask the kernel for; the size granted is logged "
            "(Linux caps it at net.core.rmem_max)",
            parse=parse_whole_number,
            metavar="BYTES",
        ),
    )
    #: Datagrams received but not yet decoded and written, at most (about 300 bytes each);
    #: beyond it new ones are dropped and counted (``queue_dropped``).
    max_queued: int = field(
        default=500_000,
        validator=check_positive,
        metadata=option(
            help="datagrams waiting to be written, at most (about 300 bytes each); beyond it "
            "new ones are dropped and counted; /healthz says 503 above 80 % of it",
            parse=parse_whole_number,
            metavar="N",
        ),
    )
    #: Write from a supervised child process (the default: the receive loop keeps the GIL
    #: to itself) or from a thread in this process.
    writer_process: bool = True
    #: Seconds a Parsl close is held waiting for its start before it is dropped (7 days).
    held_close_ttl: float = field(
        default=HELD_CLOSE_TTL,
        validator=check_non_negative,
        metadata=option(
            help="seconds a Parsl close is held waiting for its start before it is dropped "
            "and counted (604800: 7 days; 0 holds none)",
            parse=parse_number,
            metavar="SECONDS",
            show="{:g}".format,
        ),
    )
    #: When ``/healthz`` says 503 (queue fraction, stale writes).
    health: HealthPolicy = field(factory=HealthPolicy, validator=instance_of(HealthPolicy))
    #: Seconds ``stop()`` waits for the writer to commit what it was handed.
    stop_timeout: float = field(default=120.0, validator=check_non_negative)

    def rate_limiter(self) -> RateLimiter:
        """The receiver's rate limits, as these settings describe them."""
        prefix_rate = 10 * self.rate if self.prefix_rate is None else self.prefix_rate
        prefix_burst = 10 * self.burst if self.prefix_burst is None else self.prefix_burst
        return RateLimiter(
            address=Limit(self.rate, self.burst),
            prefix=Limit(prefix_rate, prefix_burst),
            total=Limit(self.global_rate, self.global_burst),
            ipv4_prefix=self.ipv4_prefix,
            ipv6_prefix=self.ipv6_prefix,
        )


@define
class Collector:
    """A running collector. ``start()`` binds and returns; ``stop()`` drains and commits.

    >>> with Collector(CollectorSettings(udp=("127.0.0.1", 0), http=("127.0.0.1", 0))) as c:
    ...     print(c.udp_address, c.http_url)
    """

    settings: CollectorSettings
    metrics: Metrics = field(factory=Metrics)
    _store: Store | None = None
    _admin_store: Store | None = None
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

    @property
    def writer_pid(self) -> int | None:
        """The writer process's id (``None`` with a writer thread or while it restarts)."""
        writer = self._writer
        return writer.pid if isinstance(writer, WriterProcess) else None

    def health(self) -> Health:
        """What ``/healthz`` answers (see ``_health``)."""
        writer = self._writer
        return assess(
            self.metrics,
            writer_alive=writer is not None and writer.alive,
            max_queued=self.settings.max_queued,
            policy=self.settings.health,
        )

    def start(self) -> Collector:
        """Open the store, bind the sockets and start the threads.

        Raises ``StoreError`` if the database cannot be written, ``OSError`` if a socket
        cannot be bound.
        """
        settings = self.settings
        limiter = settings.rate_limiter()  # refuses invalid limits before anything opens
        # Proves it can write, and upgrades an older schema (StoreError if not).
        store = open_store(settings.db, migrate=settings.migrate)
        if settings.writer_process:
            store.close()  # the writer process opens its own
        else:
            self._store = store
        family = socket.AF_INET6 if ":" in settings.udp[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            _set_receive_buffer(sock, settings.rcvbuf)
            sock.bind(settings.udp)
        except OSError as exc:
            sock.close()
            if self._store is not None:
                self._store.close()
            raise ListenError("udp", settings.udp, exc) from exc
        self._sock = sock
        if settings.writer_process:
            self._writer = WriterProcess(
                self.metrics,
                settings.max_queued,
                settings.held_close_ttl,
                db=settings.db,
                retain_days=settings.retain_days,
            )
        else:
            self._writer = Writer(
                self.metrics,
                settings.max_queued,
                settings.held_close_ttl,
                store=self._store,
                retain_days=settings.retain_days,
            )
        self._writer.start()
        self._receiver = Receiver(sock, limiter, self.metrics, self._writer.submit)
        self._receiver.start()
        if settings.http is not None:
            self._start_http(settings.http)
        # Linux reports twice what it sets aside for data (the rest is bookkeeping), and
        # caps what it grants at net.core.rmem_max.
        buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.metrics.receive_buffer_bytes = buffer
        logger.info(
            "receiving UDP on %s (receive buffer: %d KiB asked, %d KiB granted), storing in %s",
            _show(self.udp_address),
            settings.rcvbuf // 1024,
            buffer // 1024,
            shown_url(settings.db),
        )
        if buffer < settings.rcvbuf:
            logger.warning(
                "the kernel granted a smaller receive buffer than asked (--rcvbuf); bursts may "
                "be dropped: raise net.core.rmem_max (sysctl) to at least %d",
                settings.rcvbuf,
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
        if limiter.enabled:
            logger.info(
                "rate limits (datagrams/s, burst): per address %g, %d; per /%d or /%d network "
                "%g, %d; all sources %g, %d (0: no limit)",
                limiter.address.rate, limiter.address.burst,
                limiter.ipv4_prefix, limiter.ipv6_prefix,
                limiter.prefix.rate, limiter.prefix.burst,
                limiter.total.rate, limiter.total.burst,
            )  # fmt: skip
        return self

    def _start_http(self, address: tuple[str, int]) -> None:
        settings = self.settings
        self._http_context = HTTPContext(
            db=settings.read_db or settings.db,
            udp_port=self.udp_address[1],
            registry=registry_for(self.metrics),
            admin_token=settings.admin_token,
            writable=self._admin,
            healthy=self.health,
        )
        app = build_app(self._http_context, self.metrics.http, settings.http_limits.max_headers)
        self._http = HTTPServer(app, address, settings.http_limits, self.metrics.http)
        try:
            self._http.start()
        except OSError as exc:
            self._http = None
            self.stop()
            raise ListenError("http", address, exc) from exc

    def _admin(self) -> Store:
        with self._admin_lock:
            if self._admin_store is None:
                self._admin_store = open_store(self.settings.db)
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
            self._writer.stop(self.settings.stop_timeout)
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
