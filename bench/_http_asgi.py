"""The collector's ASGI app over the database in ``$HTTP_BENCH_DB``, for ``http_bench --servers``.

Served read-only by each server under comparison from its own command line.
"""

from __future__ import annotations

import os

from telemetry_sdk.collector import Metrics, Store
from telemetry_sdk.collector._http_app import build_app
from telemetry_sdk.collector._http_views import HTTPContext
from telemetry_sdk.collector._prometheus import registry_for

_DB = os.environ["HTTP_BENCH_DB"]
_METRICS = Metrics()


def _no_writes() -> Store:
    msg = "read-only benchmark"
    raise RuntimeError(msg)


app = build_app(
    HTTPContext(
        db=_DB,
        registry=registry_for(_METRICS),
        admin_token=None,
        writable=_no_writes,
        healthy=lambda: True,
    ),
    _METRICS.http,
)
