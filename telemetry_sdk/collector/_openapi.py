"""The OpenAPI 3.1 document of the collector's HTTP API, served at ``/openapi.json``.

Parameters come from their declarations in ``_http_params``; the response shapes are those
the store's read views (``_store_views``) serve. ``tests/test_http_openapi.py`` fuzzes
the live API against this document.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson

from ._health import REASONS as HEALTH_REASONS
from ._http_params import (
    CI,
    CORRELATOR,
    LIMIT,
    PRODUCT,
    SINCE,
    UNTIL,
    UUID_PATTERN,
    ChoiceParam,
    DateParam,
    IntParam,
    TextParam,
)

__all__ = ["openapi_document"]

_VERSION = "1"


def _obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **(optional or {})},
    }


def _nullable(kind: str) -> dict[str, Any]:
    return {"type": [kind, "null"]}


_INT = {"type": "integer", "minimum": 0}
_COUNT_LIST = {
    "type": "array",
    "items": _obj({"name": {"type": "string"}, "runs": _INT}),
}
_ERROR = _obj({"error": {"type": "string"}})
_DATE = {"type": "string", "format": "date"}
#: What every period view repeats: the product and the days it covers.
_COVERING = {"product": {"type": "string"}, "since": _DATE, "until": _DATE}
_SHARE = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
_SERIES = _obj(
    {
        "kind": {"type": "string"},
        "bucket": {"type": "string", "enum": ["day", "week"]},
        "names": {"type": "array", "items": {"type": "string"}},
        "points": {
            "type": "array",
            "items": _obj(
                {
                    "start": _DATE,
                    "runs": _INT,
                    "counts": {"type": "object", "additionalProperties": _INT},
                    "other": _INT,
                }
            ),
        },
    }
)
_PROJECT_COUNTS = {"named": _INT, "new": _INT, "returning": _INT}
_CLOSE_FIELDS = {
    "project": _nullable("string"),
    "close_components": {},
    "end": _nullable("integer"),
    "execution_time": _nullable("number"),
    "app_count": _nullable("integer"),
    "app_fails": _nullable("integer"),
    "received_day": {"type": "string", "format": "date"},
}
_RUN_ROW = _obj(
    {
        **_CLOSE_FIELDS,
        "product": {"type": "string"},
        "version": _nullable("string"),
        "python_v": _nullable("string"),
        "platform": _nullable("string"),
        "level": _nullable("integer"),
        "components": {},
        "start": _nullable("integer"),
        "has_start": {"type": "boolean"},
        "has_close": {"type": "boolean"},
        "ci": _nullable("boolean"),
        "heartbeats": _nullable("integer"),
        "last_received": _nullable("integer"),
        "status": {"type": ["string", "null"], "enum": ["open", "closed", "never_closed", None]},
    }
)
_SCHEMAS: dict[str, Any] = {
    "Error": _ERROR,
    "Health": _obj(
        {
            "status": {"type": "string", "enum": ["ok", "unhealthy"]},
            "reasons": {
                "type": "array",
                "items": {"type": "string", "enum": list(HEALTH_REASONS)},
            },
            "writer": {"type": "string", "enum": ["up", "down"]},
            "queue": _obj({"waiting": _INT, "cap": _INT}),
            "last_write_success_age_seconds": _nullable("number"),
            "last_write_error_age_seconds": _nullable("number"),
            "held_closes": _INT,
            "lost": _INT,
        }
    ),
    "Products": _obj(
        {
            "products": {
                "type": "array",
                "items": _obj({"product": {"type": "string"}, "runs": _INT, "points": _INT}),
            },
            "udp_port": {"type": ["integer", "null"]},
        }
    ),
    "Leaderboard": _obj(
        {
            **_COVERING,
            "leaderboard": {
                "type": "array",
                "items": _obj(
                    {
                        "rank": {"type": "integer", "minimum": 1},
                        "project": {"type": "string"},
                        "points": _INT,
                        "runs": _INT,
                    }
                ),
            },
        }
    ),
    "Stats": _obj(
        {
            **_COVERING,
            "runs": _INT,
            "points": _INT,
            "levels": _obj({"1": _INT, "2": _INT, "3": _INT}),
            "runs_per_day": {
                "type": "array",
                "items": _obj({"day": {"type": "string", "format": "date"}, "runs": _INT}),
            },
            "versions": _COUNT_LIST,
            "python_versions": _COUNT_LIST,
            "platforms": _COUNT_LIST,
            "components": _COUNT_LIST,
            "apps": _obj(
                {
                    "runs": _INT,
                    "apps": _INT,
                    "failures": _INT,
                    "failure_rate": {"type": "number", "minimum": 0},
                }
            ),
            "execution_time": {
                "type": "array",
                "items": _obj({"bucket": {"type": "string"}, "runs": _INT}),
            },
        }
    ),
    "Run": _obj(
        {
            "correlator": {"type": "string", "format": "uuid"},
            "runs": {"type": "array", "items": _RUN_ROW},
            "pending_close": {"oneOf": [{"type": "null"}, _obj(_CLOSE_FIELDS)]},
        }
    ),
    "Deleted": _obj({"correlator": {"type": "string", "format": "uuid"}, "deleted": _INT}),
    "Adoption": _obj({**_COVERING, "series": _SERIES}),
    "Upgrades": _obj(
        {
            **_COVERING,
            "rule": {"type": "string"},
            "releases": {
                "type": "array",
                "items": _obj(
                    {
                        "version": {"type": "string"},
                        "first_day": _DATE,
                        "half_day": {"oneOf": [{"type": "null"}, _DATE]},
                        "days": {"type": ["integer", "null"], "minimum": 0},
                    }
                ),
            },
        }
    ),
    "Projects": _obj({**_COVERING, **_PROJECT_COUNTS, "previous": _obj(_PROJECT_COUNTS)}),
    "VersionHealth": _obj(
        {
            **_COVERING,
            "rule": {"type": "string"},
            "versions": {
                "type": "array",
                "items": _obj(
                    {
                        "version": {"type": "string"},
                        "runs": _INT,
                        "failed_runs": _INT,
                        "apps": _INT,
                        "failed_apps": _INT,
                        "app_failure_rate": _SHARE,
                        "run_failure_rate": _SHARE,
                        "previous": {"type": ["string", "null"]},
                        "p_value": _SHARE,
                        "flagged": {"type": "boolean"},
                    }
                ),
            },
        }
    ),
    "NeverClosed": _obj(
        {
            **_COVERING,
            "versions": {
                "type": "array",
                "items": _obj(
                    {
                        "version": {"type": "string"},
                        "starts": _INT,
                        "never_closed": _INT,
                        "share": _SHARE,
                    }
                ),
            },
        }
    ),
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _query(param: IntParam | TextParam | ChoiceParam | DateParam) -> dict[str, Any]:
    return {
        "name": param.name,
        "in": "query",
        "required": False,
        "description": param.description,
        "schema": param.schema(),
    }


_CORRELATOR_PARAM = {
    "name": CORRELATOR,
    "in": "path",
    "required": True,
    "description": "The run's correlator, a lower-case UUID.",
    "schema": {"type": "string", "pattern": UUID_PATTERN},
}
#: Every operation can answer these: a request with a body (400), a server fault (500) and,
#: beyond the connection cap, 503.
_ALWAYS = {
    "400": _json("Bad request: a malformed parameter, or a request body.", "Error"),
    "500": _json("Internal error (logged without the client's address).", "Error"),
    "503": _json("Too many connections; retry later.", "Error"),
}


#: Every view of a period takes the period and the CI switch (CI runs left out by default).
_PERIOD = (_query(SINCE), _query(UNTIL), _query(CI))
_PRODUCT_PERIOD = (_query(PRODUCT), *_PERIOD)


def _get(summary: str, ok: dict[str, Any], *params: dict[str, Any], **more: Any) -> Any:
    responses = {"200": ok, **_ALWAYS, **more}
    return {"get": {"summary": summary, "parameters": list(params), "responses": responses}}


def _document() -> dict[str, Any]:
    run_path = {
        **_get(
            "Everything held about one run.",
            _json("The run, per product, and a close waiting for its start.", "Run"),
            _CORRELATOR_PARAM,
            **{"404": _json("Nothing is held about this run.", "Error")},
        ),
        "delete": {
            "summary": "Delete one run from every view.",
            "security": [{"admin": []}],
            "parameters": [_CORRELATOR_PARAM],
            "responses": {
                "200": _json("Deleted.", "Deleted"),
                **_ALWAYS,
                "401": _json("No valid admin token.", "Error"),
                "403": _json("Deletion over HTTP is off (no admin token configured).", "Error"),
                "404": _json("Nothing was held about this run.", "Deleted"),
            },
        },
    }
    health = _json("The collector can receive and write.", "Health")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "telemetry-sdk collector",
            "version": _VERSION,
            "description": "Usage data received by a telemetry-sdk collector. Read-only, "
            "except deletion of a run with the admin token.",
        },
        "paths": {
            "/api/products": _get(
                "Every product with its runs and points in the period (all time without "
                "since and until), and the UDP port SDKs send to.",
                _json("Products.", "Products"),
                *_PERIOD,
            ),
            "/api/leaderboard": _get(
                "Projects of one product ranked by points earned in the period (all time "
                "without since and until); equal points share a rank.",
                _json("The leaderboard.", "Leaderboard"),
                _query(PRODUCT),
                _query(LIMIT),
                *_PERIOD,
            ),
            "/api/stats": _get(
                "Runs per day, versions, platforms, components, apps and run times, in the "
                "period (all time without since and until).",
                _json("The charts of one product.", "Stats"),
                _query(PRODUCT),
                *_PERIOD,
            ),
            "/api/adoption/versions": _get(
                "Runs per product version per day (periods up to 92 days) or week (from "
                "Monday): the largest 8 versions, the rest as 'other'.",
                _json("Version adoption.", "Adoption"),
                *_PRODUCT_PERIOD,
            ),
            "/api/adoption/python": _get(
                "Runs per Python version per day or week, as for product versions.",
                _json("Python version adoption.", "Adoption"),
                *_PRODUCT_PERIOD,
            ),
            "/api/components": _get(
                "Runs that used each component, per day or week: the largest 8, the rest "
                "as 'other'.",
                _json("Components over time.", "Adoption"),
                *_PRODUCT_PERIOD,
            ),
            "/api/upgrades": _get(
                "For each release that ran in the period: days from its first run until it "
                "carried half of the runs (null: not yet).",
                _json("Upgrade times.", "Upgrades"),
                *_PRODUCT_PERIOD,
            ),
            "/api/projects": _get(
                "Distinct named projects in the period, new versus returning, and the same "
                "for the previous period of the same length.",
                _json("Projects.", "Projects"),
                *_PRODUCT_PERIOD,
            ),
            "/api/health": _get(
                "App failures per version with the counts behind them, and a flag when a "
                "version fails clearly more often than the release before it.",
                _json("Health by version.", "VersionHealth"),
                *_PRODUCT_PERIOD,
            ),
            "/api/never-closed": _get(
                "Level-3 runs that never closed, per version, as a share of their starts.",
                _json("Runs that never closed.", "NeverClosed"),
                *_PRODUCT_PERIOD,
            ),
            "/api/runs/{correlator}": run_path,
            "/healthz": _get(
                "Whether the collector can receive and write.",
                health,
                **{"503": _json("The collector cannot ingest now.", "Health")},
            ),
            "/metrics": _get(
                "Counters in the Prometheus text format.",
                {
                    "description": "Prometheus exposition.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
            ),
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"admin": {"type": "http", "scheme": "bearer"}},
        },
    }


@functools.cache
def openapi_document() -> bytes:
    """The document as JSON bytes (built once)."""
    return orjson.dumps(_document())
