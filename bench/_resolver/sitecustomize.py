"""Benchmark-only resolver, loaded in every Python process started with this folder on PYTHONPATH.

The benchmarks point trackers at host names that this module answers itself, so that no
benchmark ever asks a real resolver or sends a datagram off this machine:

- ``BENCH_RESOLVER=loopback``: the tracking names resolve to 127.0.0.1 at once.
- ``BENCH_RESOLVER=hang``: looking up a tracking name never returns (a resolver that never answers).
- ``BENCH_RESOLVER=nxdomain``: looking up a tracking name fails at once.

IP literals and ``localhost`` resolve normally (no network is involved); every other name fails
with ``socket.gaierror``, so a mistake cannot reach a real DNS server. Child processes inherit
the environment, so Parsl's spawned sender processes get the same resolver.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading

TRACKING_NAMES = frozenset(
    name for name in os.environ.get("BENCH_NAMES", "tracking.parsl-project.org").split(",") if name
)
MODE = os.environ.get("BENCH_RESOLVER", "")

_real_getaddrinfo = socket.getaddrinfo
_real_gethostbyname = socket.gethostbyname
_real_gethostbyname_ex = socket.gethostbyname_ex
_never = threading.Event()


def _is_local(host: object) -> bool:
    if host is None or host == "localhost":
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False
    return True


def _answer(host: object) -> str:
    """The address a tracking name resolves to, or raise / block as the mode says."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host not in TRACKING_NAMES:
        raise socket.gaierror(socket.EAI_NONAME, f"benchmark resolver: {host!r} is not allowed")
    if MODE == "hang":
        _never.wait()  # a resolver that never answers
    if MODE == "nxdomain":
        raise socket.gaierror(socket.EAI_NONAME, "benchmark resolver: NXDOMAIN")
    return "127.0.0.1"


def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    if _is_local(host):
        return _real_getaddrinfo(host, port, family, type, proto, flags)
    return _real_getaddrinfo(_answer(host), port, family, type, proto, flags)


def gethostbyname(name):
    return _real_gethostbyname(name if _is_local(name) else _answer(name))


def gethostbyname_ex(name):
    return _real_gethostbyname_ex(name if _is_local(name) else _answer(name))


if MODE:
    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex
    socket.bench_resolver = MODE  # lets a workflow script check that the patch is active
