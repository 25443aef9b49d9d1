"""``UsageTracker``: the host's handle on one run (start, apps, close).

The tracker decides the effective level once (``_consent``) and, above level 0, holds one
``_run.ActiveRun`` with everything the run needs; at level 0 it holds nothing and nothing is
built: no route, no lock, no thread, no socket, no file, no log line. The calling thread never
does more than take a time stamp, bump a counter or queue a job; building, logging and sending
happen on the worker (``_transport``). Runs left open are closed at exit (``_exit``).

``import telemetry_sdk`` loads only this module's own needs: ``_consent`` and ``_run`` (with
``_transport``) are imported by the first tracker above level 0, ``_collect`` and ``_wire`` only
on the worker.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from attrs import define, field

from ._config import Config, Level, Product
from ._errors import ConfigurationError
from ._guard import capture_internal_exceptions

if TYPE_CHECKING:
    from types import TracebackType

    from ._consent import Decision
    from ._run import ActiveRun

__all__ = ["UsageTracker"]


def _new_correlator() -> str:
    """A random (version 4) UUID string, made without importing ``uuid``."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@define(eq=False)
class UsageTracker:
    """Tracks one run of the host library at the level its user opted into.

    >>> with UsageTracker(config, PRODUCT) as tracker:   # the start message
    ...     tracker.record_app()                          # an app that succeeded
    ...     tracker.record_app(failed=True)               # an app that failed
    ... # the close message (level 3), then a bounded wait for delivery

    Only a wrong ``config`` or ``product`` type raises; nothing else here ever does.
    """

    config: Config
    product: Product
    #: The run's UUID, shared by all its messages.
    correlator: str = field(init=False, factory=_new_correlator)
    _decision: Decision | None = field(init=False, default=None)
    #: The run's state; None at level 0 (or if deciding failed).
    _run: ActiveRun | None = field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.config, Config):
            msg = f"config must be a telemetry_sdk.Config, got {type(self.config).__name__}"
            raise ConfigurationError(msg)
        if not isinstance(self.product, Product):
            msg = f"product must be a telemetry_sdk.Product, got {type(self.product).__name__}"
            raise ConfigurationError(msg)
        if self.config.usage_tracking == Level.OFF:
            return  # off is decided by the application alone; nothing else is consulted
        with capture_internal_exceptions():
            from ._consent import decide
            from ._run import open_run

            self._decision = decide(self.config, self.product)
            self._run = open_run(self.config, self.product, self.correlator, self._decision)

    @property
    def level(self) -> Level:
        """The effective level: the lowest of the config and every outside setting."""
        run = self._run
        return Level.OFF if run is None else run.level

    @property
    def decision(self) -> Decision | None:
        """The effective level and which source set it.

        When the config says 0 it is worked out on request (reading nothing outside the
        configuration); ``None`` only if deciding failed, in which case tracking is off.
        """
        if self._decision is None and self.config.usage_tracking == Level.OFF:
            with capture_internal_exceptions():
                from ._consent import decide

                self._decision = decide(self.config, self.product)
        return self._decision

    def __enter__(self) -> UsageTracker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Queue the start message (levels 1-3). Costs microseconds; sends nothing itself."""
        run = self._run
        if run is not None:
            with capture_internal_exceptions():
                run.start()

    def record_app(self, *, failed: bool = False) -> None:
        """Count one app run (level 3); ``failed=True`` also counts it as a failure."""
        run = self._run
        if run is not None:
            run.record_app(failed=failed)

    def close(self, *, timeout: float | None = None) -> None:
        """Queue the close message (level 3) and wait at most ``timeout`` seconds for delivery.

        The default wait is ``DRAIN_TIMEOUT`` (0.5 s). Safe to call twice; never raises.
        A tracker started in another process (before ``os.fork()``) does nothing here.
        """
        run = self._run
        if run is None:
            return
        with capture_internal_exceptions():
            run.close(timeout)
