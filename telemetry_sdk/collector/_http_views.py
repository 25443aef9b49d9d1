"""The endpoints of the HTTP side: what each route answers.

Reads use read-only stores of their own (a small pool; ``open_store`` picks the engine, and
``--read-db`` may point them at a replica); nothing here writes except
``DELETE /api/runs/<correlator>``, which needs the admin token. Endpoints are plain functions:
Starlette runs them in its thread pool, so a slow query never holds up the event loop.
"""

from __future__ import annotations

import datetime
import functools
import hmac
import logging
import queue
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib import resources
from typing import Any

import orjson
from attrs import define, field
from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.responses import Response

from ._health import Health
from ._http_params import CI, LIMIT, PRODUCT, SINCE, UNTIL, BadParameterError, correlator
from ._openapi import openapi_document
from ._period import EARLIEST, Period
from ._period_api import ANSWERS, Answer
from ._period_views import leaderboard as period_leaderboard
from ._period_views import period_products, period_stats, resolve_period
from ._prometheus import exposition
from ._store import Store, open_store

__all__ = ["HTTPContext", "answer_endpoint", "json_response"]

logger = logging.getLogger("telemetry_sdk.collector")

_POOL_SIZE = 8
_STATIC_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
}


@define
class HTTPContext:
    """What the endpoints need: the database, the metrics, the admin token and the health."""

    #: Where reads go (a store URL, see ``open_store``).
    db: str
    registry: CollectorRegistry
    admin_token: str | None
    writable: Callable[[], Store]
    healthy: Callable[[], Health]
    #: The UDP port SDKs send to, for the dashboard's empty state; ``None``: unknown.
    udp_port: int | None = None
    _readers: queue.SimpleQueue[Store] = field(factory=queue.SimpleQueue)

    @contextmanager
    def reader(self) -> Iterator[Store]:
        """A read-only store from the pool."""
        try:
            store = self._readers.get_nowait()
        except queue.Empty:
            store = open_store(self.db, readonly=True)
        try:
            yield store
        finally:
            if self._readers.qsize() < _POOL_SIZE:
                self._readers.put(store)
            else:
                store.close()

    def close(self) -> None:
        """Close the pooled connections."""
        while True:
            try:
                self._readers.get_nowait().close()
            except queue.Empty:
                break


def json_response(status: int, data: Any, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response."""
    return Response(orjson.dumps(data), status, headers, "application/json")


def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """The API's one error shape: ``{"error": message}``."""
    return json_response(status, {"error": message}, headers)


def _context(request: Request) -> HTTPContext:
    context: HTTPContext = request.app.state.context
    return context


@functools.cache
def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def static(request: Request) -> Response:
    """The dashboard page and its assets, from the package (read once)."""
    name = request.url.path.rpartition("/")[2] or "index.html"
    return Response(_asset(name), 200, media_type=_STATIC_TYPES[name.rpartition(".")[2]])


def healthz(request: Request) -> Response:
    """200 while the collector can ingest, 503 with the reasons otherwise."""
    health = _context(request).healthy()
    return json_response(health.status, health.body)


def metrics(request: Request) -> Response:
    """Every counter, in the format the scraper asked for."""
    body, content_type = exposition(_context(request).registry, request.headers.get("accept"))
    return Response(body, 200, media_type=content_type)


def openapi(request: Request) -> Response:
    """The OpenAPI document of this API."""
    return Response(openapi_document(), 200, media_type="application/json")


def products(request: Request) -> Response:
    """Every product with its runs and points (in a period, or all time), and the UDP port."""
    context = _context(request)
    since = SINCE.read(request.query_params)
    until = UNTIL.read(request.query_params)
    include_ci = CI.read(request.query_params) == "include"
    with context.reader() as store:
        if since is None and until is None:
            found = store.products(include_ci=include_ci)
        else:
            today = datetime.datetime.now(datetime.UTC).date()
            try:
                period = Period(since or EARLIEST, until or max(today, since or today))
            except ValueError as exc:
                raise BadParameterError(str(exc)) from None
            found = store.view(period_products, period, include_ci)
    body = {"products": [p.to_json() for p in found], "udp_port": context.udp_port}
    return json_response(200, body)


def _product(store: Store, request: Request, include_ci: bool) -> str:
    product = PRODUCT.read(request.query_params)
    if product is None:
        known = store.products(include_ci=include_ci)
        product = known[0].product if known else ""
    return product


def _period(store: Store, request: Request, product: str, include_ci: bool) -> tuple[Period, bool]:
    """The period asked for, and whether it is all time (neither end given)."""
    since = SINCE.read(request.query_params)
    until = UNTIL.read(request.query_params)
    if since is not None and until is not None and until < since:
        raise BadParameterError(f"until ({until}) is before since ({since})")
    try:
        period = store.view(resolve_period, product, since, until, None, include_ci)
    except ValueError as exc:  # since after the default until (today)
        raise BadParameterError(str(exc)) from None
    return period, since is None and until is None


def _covering(product: str, period: Period) -> dict[str, Any]:
    return {
        "product": product,
        "since": period.since.isoformat(),
        "until": period.until.isoformat(),
    }


def leaderboard(request: Request) -> Response:
    """The ranked projects of one product, in a period (all time without one)."""
    limit = LIMIT.read(request.query_params)
    include_ci = CI.read(request.query_params) == "include"
    with _context(request).reader() as store:
        product = _product(store, request, include_ci)
        period, all_time = _period(store, request, product, include_ci)
        # All time reads the all-time rollup; a period sums its days.
        if all_time:
            rows = store.leaderboard(product, limit, include_ci=include_ci)
        else:
            rows = store.view(period_leaderboard, product, period, limit, include_ci)
    return json_response(
        200, {**_covering(product, period), "leaderboard": [r.to_json() for r in rows]}
    )


def stats(request: Request) -> Response:
    """The charts of one product, in a period (all time without one)."""
    include_ci = CI.read(request.query_params) == "include"
    with _context(request).reader() as store:
        product = _product(store, request, include_ci)
        period, all_time = _period(store, request, product, include_ci)
        if all_time:
            found = store.stats(product, include_ci=include_ci)
        else:
            found = store.view(period_stats, product, period, include_ci)
    return json_response(200, {**found.to_json(), **_covering(product, period)})


def answer_endpoint(answer: Answer) -> Callable[[Request], Response]:
    """The endpoint serving one period answer (``_period_api.ANSWERS``)."""

    def endpoint(request: Request) -> Response:
        include_ci = CI.read(request.query_params) == "include"
        with _context(request).reader() as store:
            product = _product(store, request, include_ci)
            period, _ = _period(store, request, product, include_ci)
            return json_response(200, answer(store, product, period, include_ci))

    endpoint.__doc__ = answer.__doc__
    return endpoint


#: Path -> endpoint of every period answer.
ANSWER_ENDPOINTS = {path: answer_endpoint(answer) for path, answer in ANSWERS.items()}


def get_run(request: Request) -> Response:
    """Everything held about one run."""
    key = correlator(request.path_params["correlator"])
    with _context(request).reader() as store:
        run = store.get_run(key)
    return error(404, "no such run") if run is None else json_response(200, run.to_json())


def delete_run(request: Request) -> Response:
    """Delete one run from every view; needs ``Authorization: Bearer <admin token>``."""
    context = _context(request)
    if context.admin_token is None:
        return error(
            403,
            "deletion over HTTP is off: start the collector with --admin-token-file, "
            "or use 'telemetry-sdk collector delete'",
        )
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    # Compared in constant time, as bytes (compare_digest refuses non-ASCII text).
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        value.strip().encode(), context.admin_token.encode()
    ):
        return error(401, "a valid admin token is needed", {"WWW-Authenticate": "Bearer"})
    key = correlator(request.path_params["correlator"])
    deleted = context.writable().delete_run(key)
    logger.info("deleted run %s on request (%d records)", key, deleted)
    return json_response(200 if deleted else 404, {"correlator": key, "deleted": deleted})
