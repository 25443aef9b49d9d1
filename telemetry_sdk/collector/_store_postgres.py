"""The PostgreSQL store (being written on this branch)."""

from __future__ import annotations

from ._store import Store, StoreError

__all__ = ["PostgresStore"]


class PostgresStore:
    """Not built yet."""

    @classmethod
    def open(
        cls, url: str, *, readonly: bool = False, migrate: bool = True, create: bool = True
    ) -> Store:
        """Refuse: not built yet."""
        msg = "PostgreSQL is not supported yet"
        raise StoreError(msg)
