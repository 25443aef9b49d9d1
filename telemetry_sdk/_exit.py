"""Runs left open when the process ends: the open-run registry and the exit hooks.

Runs that started and have not closed are closed by an ``atexit`` hook and, in
``multiprocessing`` children (which end with ``os._exit``), by a ``multiprocessing.util.Finalize``
that runs in the child's own shutdown. Both are registered by the first run a process starts.
The hook starts no thread (Python 3.12+ forbids it at exit) and is bounded.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING

from . import _transport
from ._guard import capture_internal_exceptions

if TYPE_CHECKING:
    from ._run import ActiveRun

__all__ = ["FINALIZE_PRIORITY", "close_at_exit", "register", "unregister"]

#: Runs that started and have not closed: the exit hook closes them. Strong references, so a
#: run whose tracker the host dropped without ``close()`` still sends its close at exit.
_open: set[ActiveRun] = set()
_registry_lock = threading.Lock()
_atexit_registered = False
#: The process that checked whether it is a multiprocessing child (and then registered the
#: shutdown hook); 0: none yet. A forked child checks again.
_finalizer_pid = 0
#: Runs after the host's own ``Finalize`` callbacks of priority 0-9 and before those above.
FINALIZE_PRIORITY = 10


def register(run: ActiveRun) -> None:
    """``run`` started: close it at exit unless it closes first."""
    global _atexit_registered
    _open.add(run)
    if not _atexit_registered:
        import atexit  # here, not at the top: ``import telemetry_sdk`` adds no stdlib module

        with _registry_lock:
            if not _atexit_registered:
                atexit.register(close_at_exit)
                _atexit_registered = True
    if _finalizer_pid != os.getpid():
        _register_multiprocessing_exit()


def unregister(run: ActiveRun) -> None:
    """``run`` closed."""
    _open.discard(run)


def _register_multiprocessing_exit() -> None:
    """In a multiprocessing child, close open runs in multiprocessing's own shutdown.

    Fork and forkserver children end with ``os._exit``, so ``atexit`` never runs there; a
    ``Finalize`` with an exit priority runs in ``multiprocessing.util._exit_function``, which
    every start method calls when the child's work ends normally (a ``Process`` returning, a
    pool worker leaving after ``close()``/``join()``). Nothing is imported for this: a host
    that uses multiprocessing has already loaded it.
    """
    global _finalizer_pid
    with _registry_lock:
        if _finalizer_pid == os.getpid():
            return
        _finalizer_pid = os.getpid()  # checked once per process
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is None or multiprocessing.parent_process() is None:
        return
    from multiprocessing import util

    util.Finalize(None, close_at_exit, exitpriority=FINALIZE_PRIORITY)


def close_at_exit() -> None:
    """Close every run the host left open, without starting a thread; write the log out.

    Bounded: at most ``DRAIN_TIMEOUT`` for delivery, then at most ``LOG_DRAIN_TIMEOUT`` for the
    local log's last lines (a hung filesystem costs that much, never more).
    """
    with capture_internal_exceptions():
        runs = list(_open)
        alive = _transport.worker_alive()
        for run in runs:
            with capture_internal_exceptions():
                facts = run.end()
                job = None if facts is None else run.close_job(facts)
                if job is None:
                    continue
                if alive:
                    _transport.submit(job)
                else:
                    _transport.send_inline(job)
        if alive:
            _transport.hurry()
            if not _transport.flush(_transport.DRAIN_TIMEOUT):
                _transport.take_over()  # the worker is stuck: settle its messages here
        _transport.flush_log()


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
