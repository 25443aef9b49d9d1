"""What is known about a message when it is asked for; the worker builds the message from it.

``start()``, ``close()`` and the heartbeat timer only take times and counts and put them in one
of these records; ``_collect.build`` turns the record into a wire message on the worker, where
the component walk and the encoding happen. The records hold no behaviour: the worker calls
the message builders directly, never back into the tracker.

They are ``@define``, not ``@frozen``, for the calling thread's sake: attrs' frozen ``__init__``
costs 0.4 us against 0.17 us here (``bench/sdk_bench.py --only calls``). Nothing changes them
after they are made.
"""

from __future__ import annotations

from typing import ClassVar, TypeAlias

from attrs import define

from ._config import Config, Level, Product

__all__ = ["CloseFacts", "Facts", "ProgressFacts", "StartFacts"]


@define
class StartFacts:
    """A run began at epoch time ``wall``, at ``level`` (1-3)."""

    #: The local log's ``kind`` for this message.
    kind: ClassVar[str] = "start"
    product: Product
    config: Config
    correlator: str
    level: Level
    wall: float


@define
class ProgressFacts:
    """A level-3 run is still open: heartbeat number ``seq`` (1, 2, ...) and its counts so far."""

    kind: ClassVar[str] = "progress"
    product: Product
    config: Config
    correlator: str
    seq: int
    #: Seconds since ``start()``, from a monotonic clock.
    execution_time: float
    app_count: int
    app_fails: int


@define
class CloseFacts:
    """A level-3 run ended at epoch time ``end``, with its final counts."""

    kind: ClassVar[str] = "close"
    product: Product
    config: Config
    correlator: str
    end: float
    #: Seconds since ``start()``, from a monotonic clock.
    execution_time: float
    app_count: int
    app_fails: int


Facts: TypeAlias = StartFacts | ProgressFacts | CloseFacts
