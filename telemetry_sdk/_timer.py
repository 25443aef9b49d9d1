"""The worker's one timer: when each open run's next heartbeat is due.

Every level-3 run with a heartbeat interval is scheduled here by the worker when it has sent
the run's start message, and cancelled when it handles the run's close. The worker waits on
its queue for at most :meth:`Timer.wait` seconds, then asks :meth:`Timer.due` which runs to
beat: one timer for any number of runs, no thread per run and nothing on the calling thread.

Cancelling drops the timer's reference to the run at once (the heap keeps an empty entry, and
is rebuilt when empty entries outnumber live ones), so a closed run's objects are never held
until its next due time.
"""

from __future__ import annotations

import heapq
from typing import Generic, TypeVar

from attrs import define, field

__all__ = ["Timer"]

T = TypeVar("T")

#: Empty heap entries tolerated beyond the number of live ones before the heap is rebuilt.
_SLACK = 64


@define(eq=False)
class _Entry(Generic[T]):
    due: float
    order: int
    interval: float
    #: None once cancelled.
    item: T | None

    def __lt__(self, other: _Entry[T]) -> bool:
        return (self.due, self.order) < (other.due, other.order)


@define
class Timer(Generic[T]):
    """Items due at fixed intervals (monotonic seconds); each item is scheduled at most once."""

    _heap: list[_Entry[T]] = field(factory=list)
    _live: dict[int, _Entry[T]] = field(factory=dict)
    _order: int = 0

    def __len__(self) -> int:
        return len(self._live)

    def add(self, item: T, due: float, interval: float) -> None:
        """Make ``item`` due at ``due``, then every ``interval`` seconds (a new schedule)."""
        self.cancel(item)
        self._order += 1
        entry = _Entry(due, self._order, interval, item)
        self._live[id(item)] = entry
        heapq.heappush(self._heap, entry)

    def cancel(self, item: T) -> None:
        """Stop ``item``'s schedule (nothing if it has none)."""
        entry = self._live.pop(id(item), None)
        if entry is None:
            return
        entry.item = None
        if len(self._heap) > 2 * len(self._live) + _SLACK:
            self._heap = [e for e in self._heap if e.item is not None]
            heapq.heapify(self._heap)

    def wait(self, now: float) -> float | None:
        """Seconds until the next item is due (0 if one is); None when nothing is scheduled."""
        self._drop_cancelled()
        if not self._heap:
            return None
        return max(0.0, self._heap[0].due - now)

    def due(self, now: float) -> list[T]:
        """The items due at ``now``, each rescheduled one interval later.

        An item that fell more than one interval behind (the worker was busy) is due once,
        then next on its own schedule after ``now``: missed beats are skipped, not repeated.
        """
        found: list[T] = []
        self._drop_cancelled()
        while self._heap and self._heap[0].due <= now:
            entry = heapq.heappop(self._heap)
            item = entry.item
            if item is None:
                continue
            found.append(item)
            missed = int((now - entry.due) // entry.interval)
            entry.due += entry.interval * (missed + 1)
            self._order += 1
            entry.order = self._order
            heapq.heappush(self._heap, entry)
            self._drop_cancelled()
        return found

    def _drop_cancelled(self) -> None:
        while self._heap and self._heap[0].item is None:
            heapq.heappop(self._heap)
