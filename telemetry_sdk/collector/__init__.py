"""The collector: receive usage datagrams, keep them, show the leaderboard and the dashboard.

Needs the ``server`` extra (``pip install 'telemetry-sdk[server]'``). The core package never
imports this subpackage.
"""

from __future__ import annotations

from .._errors import SERVER_EXTRA_HINT

try:
    import orjson  # noqa: F401
    import prometheus_client  # noqa: F401
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(SERVER_EXTRA_HINT) from exc

from ._http_limits import HTTPLimits
from ._ingest import Record, parse, record_from_message
from ._metrics import Metrics
from ._service import Collector, CollectorSettings, ListenError
from ._store import Store, StoreError, WriteResult, open_store
from ._store_sqlite import SQLiteStore
from ._store_views import LeaderboardRow, ProductStats, ProductTotals, RunDetail

__all__ = [
    "Collector",
    "CollectorSettings",
    "HTTPLimits",
    "LeaderboardRow",
    "ListenError",
    "Metrics",
    "ProductStats",
    "ProductTotals",
    "Record",
    "RunDetail",
    "SQLiteStore",
    "Store",
    "StoreError",
    "WriteResult",
    "open_store",
    "parse",
    "record_from_message",
]
