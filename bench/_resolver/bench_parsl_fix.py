"""Simulate the obvious fix of Parsl issue #4038 at run time, without editing Parsl.

Parsl 2026.10.26 wraps ``udp_messenger`` in a decorator that starts a ``spawn`` process with
the undecorated function as its target; pickling that target fails (the module attribute of
the same name is the wrapper), so no datagram is ever sent. Here the target is a module-level
function of this module, which pickles; in the child it calls Parsl's own undecorated sender.
The child still boots a fresh interpreter and imports Parsl, as a fixed Parsl would.
"""

from __future__ import annotations

from typing import Any


def _undecorated() -> Any:
    from parsl.usage_tracking import usage

    for cell in usage.udp_messenger.__closure__ or ():
        if getattr(cell.cell_contents, "__name__", "") == "udp_messenger":
            return cell.cell_contents
    msg = "Parsl's udp_messenger no longer has the expected shape"
    raise RuntimeError(msg)


def send(*args: Any) -> None:
    """The spawned process' target: Parsl's own sender, unchanged."""
    _undecorated()(*args)


def install() -> None:
    """Make Parsl start its sender processes with a target that pickles."""
    from parsl.multiprocessing import SpawnProcess
    from parsl.usage_tracking import usage

    _undecorated()  # fail early if Parsl changed

    def udp_messenger(*args: Any) -> Any:
        proc = SpawnProcess(target=send, args=args, name="Usage-Tracking")
        proc.start()
        return proc

    usage.udp_messenger = udp_messenger
