"""The JSON answers of the period views, one per API path.

Each answer is ``function(store, product, period, include_ci) -> dict``; the HTTP side only
reads the parameters (``product``, ``since``, ``until``, ``ci``) and serves what the function
returns. CI runs are left out unless ``include_ci``. Every
answer repeats the product and the period it covers (``since``/``until``, UTC dates; a run
counts on the day it started).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _period_views as views
from ._period import Period
from ._statistics import FLAG_MIN_RUNS, FLAG_P_VALUE, UPGRADE_WINDOW_DAYS
from ._store import Store
from ._summaries import to_json

__all__ = ["ANSWERS", "UPGRADE_RULE", "VERSION_FLAG_RULE", "Answer"]

Answer = Callable[[Store, str, Period, bool], dict[str, Any]]

UPGRADE_RULE = (
    "days from a release's first run to the first day on which it carried at least half of "
    f"the runs of the trailing {UPGRADE_WINDOW_DAYS} days; null: not yet"
)
VERSION_FLAG_RULE = (
    "flagged when the share of its runs with a failed app is higher than the previous "
    f"release's by a one-sided two-proportion z-test at p < {FLAG_P_VALUE}, with at least "
    f"{FLAG_MIN_RUNS} runs reporting apps on each side"
)


def _head(product: str, period: Period) -> dict[str, Any]:
    return {
        "product": product,
        "since": period.since.isoformat(),
        "until": period.until.isoformat(),
    }


def _adoption(kind: str) -> Answer:
    def answer(
        store: Store, product: str, period: Period, include_ci: bool = False
    ) -> dict[str, Any]:
        series = store.view(views.series, product, kind, period, include_ci)
        return {**_head(product, period), "series": to_json(series)}

    answer.__doc__ = f"Runs per {kind} per day or week (the largest few, the rest as other)."
    return answer


def upgrades(
    store: Store, product: str, period: Period, include_ci: bool = False
) -> dict[str, Any]:
    """How fast each release that ran in the period took over."""
    releases = store.view(views.releases, product, period, include_ci)
    return {**_head(product, period), "rule": UPGRADE_RULE, "releases": to_json(releases)}


def projects(
    store: Store, product: str, period: Period, include_ci: bool = False
) -> dict[str, Any]:
    """Distinct named projects, new and returning, in the period and the one before."""
    now = store.view(views.projects, product, period, include_ci)
    before = store.view(views.projects, product, period.previous(), include_ci)
    return {**_head(product, period), **to_json(now), "previous": to_json(before)}


def health(store: Store, product: str, period: Period, include_ci: bool = False) -> dict[str, Any]:
    """App failures per version, each compared with the release before it."""
    rows = store.view(views.health, product, period, include_ci)
    return {**_head(product, period), "rule": VERSION_FLAG_RULE, "versions": to_json(rows)}


def never_closed(
    store: Store, product: str, period: Period, include_ci: bool = False
) -> dict[str, Any]:
    """Level-3 runs whose close never arrived, per version, as a share of their starts."""
    rows = store.view(views.never_closed, product, period, include_ci)
    return {**_head(product, period), "versions": to_json(rows)}


#: API path -> answer.
ANSWERS: dict[str, Answer] = {
    "/api/adoption/versions": _adoption("version"),
    "/api/adoption/python": _adoption("python"),
    "/api/components": _adoption("component"),
    "/api/upgrades": upgrades,
    "/api/projects": projects,
    "/api/health": health,
    "/api/never-closed": never_closed,
}
