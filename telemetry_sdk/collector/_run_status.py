"""Whether a run is open, closed or never closed: the one rule, a pure function.

Only a level-3 run has a life the collector can follow (a start, heartbeats while it is open,
a close); for levels 1 and 2 there is no status. A level-3 run is

- ``closed`` once its close message arrived;
- ``open`` while its last message is recent: no more than ``SILENT_INTERVALS`` heartbeat
  intervals old;
- ``never_closed`` when it has been silent for longer: the process was killed (a batch job at
  its wall-time limit, an out-of-memory kill) or lost its network before it could close.
  Its counts are those of its last heartbeat.

The interval is the run's own, as its heartbeats show it: heartbeat ``n`` is sent ``n``
intervals after the run started, so ``execution_time / heartbeat`` of the latest one. Before a
run's first heartbeat the SDK's default (one hour) is assumed. A run whose host turned
heartbeats off (``heartbeat_interval=None``) and that runs longer than three hours shows as
never closed until its close arrives, and then as closed.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

from .._config import HEARTBEAT_DEFAULT, Level

__all__ = ["SILENT_INTERVALS", "RunStatus", "heartbeat_interval", "run_status"]

#: A level-3 run silent for more than this many heartbeat intervals is never closed.
SILENT_INTERVALS = 3

RunStatus: TypeAlias = Literal["open", "closed", "never_closed"]


def heartbeat_interval(heartbeats: int | None, execution_time: float | None) -> float:
    """The run's heartbeat interval in seconds, as its latest heartbeat shows it."""
    if heartbeats and execution_time and execution_time > 0:
        return max(1.0, execution_time / heartbeats)
    return HEARTBEAT_DEFAULT


def run_status(
    *,
    level: int | None,
    has_close: bool,
    last_received: int,
    heartbeats: int | None,
    execution_time: float | None,
    now: int,
) -> RunStatus | None:
    """The status of a run at epoch time ``now``; None below level 3 (nothing to follow)."""
    if level != Level.EXECUTION:
        return None
    if has_close:
        return "closed"
    interval = heartbeat_interval(heartbeats, execution_time)
    if now - last_received > SILENT_INTERVALS * interval:
        return "never_closed"
    return "open"
