"""The ids of stored component lists, cached per store, only once their transaction commits.

Component lists repeat from run to run: each distinct list (its JSON text) is stored once,
in ``component_sets``, and runs refer to it by id. A store looks ids up here first. An id
written by a transaction joins the cache only when that transaction commits: after a
rollback no run may point at a list that was never stored.
"""

from __future__ import annotations

from collections.abc import Callable

from attrs import define, field

__all__ = ["ComponentSetIds"]

#: Ids kept at most; beyond it the cache starts again (lists are few in practice).
_MAX = 50_000


@define
class ComponentSetIds:
    """JSON text of a component list -> its id in ``component_sets``."""

    #: Ids that are committed.
    _committed: dict[str, int] = field(factory=dict)
    #: Ids stored by the transaction in progress.
    _pending: dict[str, int] = field(factory=dict)

    def get(self, text: str | None, store: Callable[[str], int]) -> int | None:
        """The id of ``text``; ``store(text)`` writes it (in the open transaction) if new."""
        if text is None:
            return None
        found = self._committed.get(text)
        if found is None:
            found = self._pending.get(text)
            if found is None:
                found = self._pending[text] = store(text)
        return found

    def begin(self) -> None:
        """A transaction starts."""
        self._pending.clear()

    def rolled_back(self) -> None:
        """The transaction was rolled back: forget what it stored."""
        self._pending.clear()

    def committed(self) -> None:
        """The transaction committed: what it stored is now known for good."""
        if len(self._committed) + len(self._pending) > _MAX:
            self._committed.clear()
        self._committed.update(self._pending)
        self._pending.clear()

    def clear(self) -> None:
        """Forget everything (another process may have changed the table)."""
        self._committed.clear()
        self._pending.clear()
