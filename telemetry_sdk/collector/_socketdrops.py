"""Datagrams the kernel dropped at one UDP socket because its receive buffer was full.

Linux lists every UDP socket in ``/proc/net/udp`` and ``/proc/net/udp6`` with its inode and,
in the last column, how many datagrams it dropped since it was created. Reading that file
once a second costs the receive loop nothing per datagram (``SO_RXQ_OVFL`` would need
``recvmsg`` and its ancillary data for every datagram, several times the cost of
``recvfrom``). Elsewhere the count is unknown: ``None``.
"""

from __future__ import annotations

import os
import socket

__all__ = ["socket_drops"]

_TABLES = ("/proc/net/udp", "/proc/net/udp6")
# Columns of a row: sl local rem st queues tr retrnsmt uid timeout inode ref pointer drops.
_INODE = 9


def socket_drops(sock: socket.socket) -> int | None:
    """How many datagrams the kernel dropped at ``sock``; ``None`` where that is unknown."""
    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
    except OSError:
        return None
    for table in _TABLES:
        try:
            with open(table, encoding="ascii") as rows:
                next(rows, None)  # the header
                for row in rows:
                    fields = row.split()
                    if len(fields) > _INODE + 1 and fields[_INODE] == inode:
                        return int(fields[-1])
        except (OSError, ValueError):
            continue
    return None
