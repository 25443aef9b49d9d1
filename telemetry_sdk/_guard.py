"""The one guard that keeps tracking errors out of the host application."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

#: Tests set this to True (see ``tests/conftest.py``) so that bugs are not hidden.
reraise = False
_warned = False


@contextmanager
def capture_internal_exceptions() -> Iterator[None]:
    """Run tracking work; log any exception on the ``telemetry_sdk`` logger and swallow it.

    The first failure in a process is a WARNING (without traceback, so a host's users are
    told once); every failure is logged at DEBUG with its traceback.
    """
    global _warned
    try:
        yield
    except Exception as exc:
        if reraise:
            raise
        import logging  # only on failure: keep it off the host's import path

        logger = logging.getLogger("telemetry_sdk")
        if not _warned:
            _warned = True
            logger.warning(
                "usage tracking failed and was skipped; the application is not affected (%s: %s)",
                type(exc).__name__,
                exc,
            )
        logger.debug("usage tracking error", exc_info=True)
