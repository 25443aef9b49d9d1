"""The one rule for the effective level: the application opts in, everything else can lower it.

PLACEHOLDER: issue #3 completes this module (DO_NOT_TRACK, <PRODUCT>_USAGE_TRACKING,
saved settings, endpoint override, preview mode). The signature of ``decide`` is fixed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from attrs import frozen

from ._config import Config, Endpoint, Level, Product


@frozen
class Decision:
    """What a run will do, and why."""

    #: The effective level: the minimum of every source.
    level: Level
    #: One human-readable line per source that was consulted, e.g. ``"config: 3"``.
    sources: tuple[str, ...]
    #: Which source set the effective level (``"config"``, ``"DO_NOT_TRACK"``, ...).
    decided_by: str
    endpoint: Endpoint
    #: Preview mode: print and log each message instead of sending it.
    debug: bool
    log_path: Path


def default_log_path(product: Product, environ: Mapping[str, str]) -> Path:
    """``$XDG_STATE_HOME/<product>/usage.jsonl``, else ``~/.local/state/<product>/usage.jsonl``."""
    state = environ.get("XDG_STATE_HOME", "")
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / product.name / "usage.jsonl"


def decide(config: Config, product: Product, environ: Mapping[str, str] | None = None) -> Decision:
    """Resolve the effective level, destination, preview mode and log path of a run."""
    env = os.environ if environ is None else environ
    return Decision(
        level=config.usage_tracking,
        sources=(f"config: {int(config.usage_tracking)}",),
        decided_by="config",
        endpoint=config.endpoint or product.endpoint,
        debug=False,
        log_path=config.log_path or default_log_path(product, env),
    )
