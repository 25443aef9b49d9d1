"""How minflow runs apps: executors that own a thread pool."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any

from attrs import Factory, define, field

from .providers import LocalProvider, SlurmProvider


@define
class Executor:
    """Runs apps on a thread pool; subclasses only differ in what they describe."""

    max_workers: int = 2
    provider: LocalProvider | SlurmProvider = Factory(LocalProvider)
    _pool: concurrent.futures.ThreadPoolExecutor | None = field(default=None, init=False)

    def start(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(self.max_workers)

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        assert self._pool is not None, "start() the executor first"
        return self._pool.submit(fn, *args)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def usage_information(self) -> dict[str, int]:
        """Safe details: the pool size."""
        return {"max_workers": self.max_workers}


@define
class ThreadPoolExecutor(Executor):
    """Apps run in threads of this process."""


@define
class HighThroughputExecutor(Executor):
    """Apps run by workers from a provider (threads here, to keep the toy small)."""

    provider: LocalProvider | SlurmProvider = Factory(SlurmProvider)
