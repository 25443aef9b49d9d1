"""Retention: remove run rows older than a number of days, a small batch at a time.

The writer calls a ``Retention`` after every batch it commits and on every idle tick. At
most every ``SWEEP_EVERY`` seconds a sweep starts; each call then removes one batch of at
most ``BATCH`` runs (one short transaction) until a batch comes back short. Ingest goes on
between the batches, so retention never holds it up for more than one small transaction.
The rollups (the leaderboard, the stats, the runs per day) keep what the removed runs
counted for: only the per-run rows go.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from attrs import define

from ._run_merge import DAY

if TYPE_CHECKING:
    from ._metrics import IngestStats
    from ._store import Store

__all__ = ["BATCH", "SWEEP_EVERY", "Retention"]

logger = logging.getLogger("telemetry_sdk.collector")

#: Runs removed per transaction at most.
BATCH = 1000
#: Seconds between the starts of two sweeps.
SWEEP_EVERY = 600.0


@define
class Retention:
    """Removes runs first received more than ``days`` days ago (0: keeps everything)."""

    days: float
    _next_sweep: float = float("-inf")
    _sweeping: bool = False
    _removed: int = 0

    def __call__(self, store: Store, stats: IngestStats) -> None:
        if self.days <= 0:
            return
        now = time.monotonic()
        if not self._sweeping:
            if now < self._next_sweep:
                return
            self._sweeping = True
            self._removed = 0
            self._next_sweep = now + SWEEP_EVERY
        cutoff = int(time.time() - self.days * DAY)
        try:
            removed = store.remove_old_runs(cutoff, BATCH)
        except Exception:
            stats.failed_attempt()
            logger.warning("removing old runs (retention) failed", exc_info=True)
            self._sweeping = False
            return
        stats.write_ok()
        self._removed += removed
        if removed < BATCH:
            self._sweeping = False
            if self._removed:
                logger.info(
                    "retention: removed %d runs first received over %g days ago "
                    "(their counts stay in the rollups)",
                    self._removed,
                    self.days,
                )
