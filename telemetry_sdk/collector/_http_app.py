"""The ASGI application of the HTTP side: the route table, and what applies to every route.

Every response carries the same security headers; every error is a small JSON body
``{"error": "..."}`` (404, 405, 400, 401, 403, 500, 503), never a traceback; the API takes no
request bodies, so a request with one is refused with a 400 and the connection is closed.
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import _http_views as views
from ._http_params import BadParameterError
from ._metrics import HTTPStats

__all__ = ["build_app", "refusal"]

logger = logging.getLogger("telemetry_sdk.collector")

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", _CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]

ROUTES = [
    Route("/", views.static, methods=["GET"]),
    Route("/static/dashboard.js", views.static, methods=["GET"]),
    Route("/static/dashboard.css", views.static, methods=["GET"]),
    Route("/favicon.svg", views.static, methods=["GET"]),
    Route("/healthz", views.healthz, methods=["GET"]),
    Route("/metrics", views.metrics, methods=["GET"]),
    Route("/openapi.json", views.openapi, methods=["GET"]),
    Route("/api/products", views.products, methods=["GET"]),
    Route("/api/leaderboard", views.leaderboard, methods=["GET"]),
    Route("/api/stats", views.stats, methods=["GET"]),
    *(Route(path, endpoint, methods=["GET"]) for path, endpoint in views.ANSWER_ENDPOINTS.items()),
    Route("/api/runs/{correlator:str}", views.get_run, methods=["GET"]),
    Route("/api/runs/{correlator:str}", views.delete_run, methods=["DELETE"]),
]


def refusal(status: int, message: str) -> bytes:
    """A complete HTTP/1.1 error response that closes the connection, as raw bytes.

    For refusals the server sends before (or instead of) handing a request to the app.
    """
    body = b'{"error":"' + message.encode("ascii") + b'"}'
    reason = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
    head = [
        b"HTTP/1.1 %d %s" % (status, reason.get(status, b"Error")),
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"connection: close",
        *(name + b": " + value for name, value in _SECURITY_HEADERS),
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class _Guard:
    """The outermost layer: security headers, no bodies, and no exception escapes."""

    def __init__(self, app: ASGIApp, stats: HTTPStats, max_headers: int) -> None:
        self.app = app
        self.stats = stats
        self.max_headers = max_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
            await send(message)

        headers = dict(scope["headers"])
        refused = None
        if len(scope["headers"]) > self.max_headers:
            refused = ("too_many_headers", 431, f"at most {self.max_headers} request headers")
        elif b"transfer-encoding" in headers or headers.get(b"content-length", b"0") != b"0":
            refused = ("body", 400, "this API takes no request body")
        if refused is not None:
            reason, status, message = refused
            self.stats.refuse(reason)
            response = views.error(status, message, {"connection": "close"})
            await response(scope, receive, send_with_headers)
            return
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            # Logged without the request's origin; the client sees a small JSON body.
            self.stats.refuse("server_error")
            logger.error(
                "error serving %s %s: %s",
                scope["method"],
                scope["path"],
                type(exc).__name__,
                exc_info=exc,
            )
            if not started:
                await views.error(500, "internal error")(scope, receive, send_with_headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {404: "not found", 405: "method not allowed"}
    message = messages.get(exc.status_code, str(exc.detail).lower())
    return views.error(exc.status_code, message, exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    # Starlette answers with this, then re-raises for _Guard to log.
    return views.error(500, "internal error")


async def _bad_parameter(request: Request, exc: Exception) -> Response:
    return views.error(400, str(exc))


def build_app(context: views.HTTPContext, stats: HTTPStats, max_headers: int = 100) -> ASGIApp:
    """The collector's ASGI application over ``context``, counting refusals in ``stats``.

    Requests with more than ``max_headers`` header lines get a 431.
    """
    app = Starlette(
        routes=ROUTES,
        exception_handlers={
            HTTPException: _http_error,
            BadParameterError: _bad_parameter,
            Exception: _server_error,
        },
    )
    app.state.context = context
    return _Guard(app, stats, max_headers)
