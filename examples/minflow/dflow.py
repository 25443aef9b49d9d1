"""The workflow kernel: runs apps on the executors and reports usage (when opted in)."""

from __future__ import annotations

import concurrent.futures
import itertools
from collections.abc import Callable
from types import TracebackType
from typing import Any

from telemetry_sdk import UsageTracker

from .config import PRODUCT, Config


class DataFlowKernel:
    """Starts the executors and the usage tracker; ``cleanup()`` stops both."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        # Builds and validates the tracking config: a bad level raises here, at once.
        self.tracker = UsageTracker(self.config.tracking_config(), PRODUCT)
        self._next = itertools.cycle(self.config.executors)
        for executor in self.config.executors:
            executor.start()
        self.tracker.start()  # queues the start message; returns in microseconds

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        """Run ``fn(*args)`` as an app; its success or failure is counted at level 3."""
        future = next(self._next).submit(fn, *args)
        future.add_done_callback(self._count)
        return future

    def _count(self, future: concurrent.futures.Future[Any]) -> None:
        self.tracker.record_app(failed=future.exception() is not None)

    def cleanup(self) -> None:
        """Wait for the apps, stop the executors, send the close message (bounded)."""
        for executor in self.config.executors:
            executor.shutdown()
        self.tracker.close()

    def __enter__(self) -> DataFlowKernel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
