"""The HTTP side: JSON API, Prometheus metrics, health check and the dashboard.

Reads use their own read-only SQLite connections (a small pool); nothing here writes except
``DELETE /api/runs/<correlator>``, which needs the admin token. Client addresses are never
logged.
"""

from __future__ import annotations

import hmac
import logging
import queue
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from ._health import Health
from ._metrics import Metrics
from ._store import SQLiteStore

__all__ = ["CollectorHTTPServer"]

logger = logging.getLogger("telemetry_sdk.collector")

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/static/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
_RUN_PATH = re.compile(r"/api/runs/([^/]+)")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_POOL_SIZE = 8


class CollectorHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that knows the store, the metrics and the admin token."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        db_path: str,
        metrics: Metrics,
        admin_token: str | None,
        writable: Callable[[], SQLiteStore],
        healthy: Callable[[], Health],
    ) -> None:
        self.db_path = db_path
        self.metrics = metrics
        self.admin_token = admin_token
        self.writable = writable
        self.healthy = healthy
        self._readers: queue.SimpleQueue[SQLiteStore] = queue.SimpleQueue()
        family = __import__("socket").AF_INET6 if ":" in address[0] else None
        if family is not None:
            self.address_family = family
        super().__init__(address, _Handler)

    @contextmanager
    def reader(self) -> Iterator[SQLiteStore]:
        """A read-only store from the pool."""
        try:
            store = self._readers.get_nowait()
        except queue.Empty:
            store = SQLiteStore.open(self.db_path, readonly=True)
        try:
            yield store
        finally:
            if self._readers.qsize() < _POOL_SIZE:
                self._readers.put(store)
            else:
                store.close()

    def server_close(self) -> None:
        """Close the socket and the pooled connections."""
        super().server_close()
        while True:
            try:
                self._readers.get_nowait().close()
            except queue.Empty:
                break


class _Handler(BaseHTTPRequestHandler):
    server: CollectorHTTPServer
    server_version = "telemetry-collector"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        # The default logs the client address; the collector never logs addresses.
        logger.debug("http %s", self.requestline)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, orjson.dumps(data), "application/json", headers)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._json(status, {"error": message}, headers)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = url.path
        try:
            if path in _STATIC:
                name, content_type = _STATIC[path]
                body = resources.files(__package__).joinpath("static", name).read_bytes()
                self._send(HTTPStatus.OK, body, content_type)
            elif path == "/healthz":
                health = self.server.healthy()
                self._json(health.status, health.body)
            elif path == "/metrics":
                text = self.server.metrics.render()
                self._send(HTTPStatus.OK, text.encode(), "text/plain; version=0.0.4; charset=utf-8")
            elif path == "/api/products":
                with self.server.reader() as store:
                    self._json(HTTPStatus.OK, {"products": store.products()})
            elif path in ("/api/leaderboard", "/api/stats"):
                self._product_view(path, query)
            elif match := _RUN_PATH.fullmatch(path):
                self._get_run(match.group(1))
            else:
                self._error(HTTPStatus.NOT_FOUND, "not found")
        except Exception:
            logger.exception("error serving %s", path)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")

    def _product_view(self, path: str, query: dict[str, str]) -> None:
        with self.server.reader() as store:
            product = query.get("product")
            if not product:
                products = store.products()
                product = products[0]["product"] if products else ""
            if path == "/api/stats":
                self._json(HTTPStatus.OK, store.stats(product))
                return
            limit_text = query.get("limit", "50")
            if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
                self._error(HTTPStatus.BAD_REQUEST, "limit must be 1-1000")
                return
            rows = store.leaderboard(product, int(limit_text))
            self._json(HTTPStatus.OK, {"product": product, "leaderboard": rows})

    def _get_run(self, correlator: str) -> None:
        if _UUID.fullmatch(correlator) is None:
            self._error(HTTPStatus.BAD_REQUEST, "a correlator is a lower-case UUID")
            return
        with self.server.reader() as store:
            run = store.get_run(correlator)
        if run is None:
            self._error(HTTPStatus.NOT_FOUND, "no such run")
        else:
            self._json(HTTPStatus.OK, run)

    def do_DELETE(self) -> None:
        path = urlsplit(self.path).path
        match = _RUN_PATH.fullmatch(path)
        if match is None:
            self._error(HTTPStatus.NOT_FOUND, "not found")
            return
        token = self.server.admin_token
        if token is None:
            self._error(
                HTTPStatus.FORBIDDEN,
                "deletion over HTTP is off: start the collector with --admin-token-file, "
                "or use 'telemetry-sdk collector delete'",
            )
            return
        given = self.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), token.encode()
        ):
            self._error(
                HTTPStatus.UNAUTHORIZED,
                "a valid admin token is needed",
                {"WWW-Authenticate": "Bearer"},
            )
            return
        correlator = match.group(1)
        if _UUID.fullmatch(correlator) is None:
            self._error(HTTPStatus.BAD_REQUEST, "a correlator is a lower-case UUID")
            return
        try:
            deleted = self.server.writable().delete_run(correlator)
        except Exception:
            logger.exception("deleting a run failed")
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
            return
        logger.info("deleted run %s on request (%d records)", correlator, deleted)
        status = HTTPStatus.OK if deleted else HTTPStatus.NOT_FOUND
        self._json(status, {"correlator": correlator, "deleted": deleted})

    def _not_allowed(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed", {"Allow": "GET, DELETE"})

    def do_POST(self) -> None:
        self._not_allowed()

    def do_PUT(self) -> None:
        self._not_allowed()

    def do_PATCH(self) -> None:
        self._not_allowed()
