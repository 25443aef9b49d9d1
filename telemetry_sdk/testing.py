"""Helpers for testing code that embeds telemetry-sdk: a UDP listener on the loopback.

>>> from telemetry_sdk import Config, UsageTracker
>>> from telemetry_sdk.testing import capture_datagrams
>>> with capture_datagrams() as listener:
...     config = Config(usage_tracking=3, endpoint=listener.endpoint)
...     with UsageTracker(config, PRODUCT):
...         pass
...     datagrams = listener.wait_for(2, timeout=2.0)
>>> [type(m).__name__ for m in listener.messages()]
['StartMessage', 'CloseMessage']

Nothing here sends anything anywhere but 127.0.0.1.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

from ._wire import Message, decode

__all__ = ["UDPListener", "capture_datagrams"]


class UDPListener:
    """Collects every datagram sent to ``127.0.0.1:<port>`` on a background thread.

    Use it as a context manager: entering binds a fresh port, leaving closes the socket
    and joins the thread, even if the body raised.
    """

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._received = threading.Condition()
        self._datagrams: list[bytes] = []
        self.port = 0

    @property
    def endpoint(self) -> str:
        """The ``udp://127.0.0.1:PORT`` to put in ``Config(endpoint=...)``."""
        return f"udp://127.0.0.1:{self.port}"

    @property
    def datagrams(self) -> list[bytes]:
        """The datagrams received so far, in arrival order (a copy)."""
        with self._received:
            return list(self._datagrams)

    def messages(self) -> list[Message]:
        """The datagrams received so far, decoded (raises ``DecodeError`` on a bad one)."""
        return [decode(datagram) for datagram in self.datagrams]

    def wait_for(self, count: int, timeout: float = 2.0) -> list[bytes]:
        """Wait until ``count`` datagrams arrived or ``timeout`` passed; return what arrived."""
        deadline = time.monotonic() + timeout
        with self._received:
            while len(self._datagrams) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._received.wait(remaining)
            return list(self._datagrams)

    def start(self) -> UDPListener:
        """Bind the port and start collecting."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(0.05)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(
            target=self._collect, name="telemetry-sdk-test-listener", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop collecting and release the port; the datagrams stay available."""
        self._stop.set()
        try:
            if self._thread is not None:
                self._thread.join(timeout=5.0)
        finally:
            if self._sock is not None:
                self._sock.close()

    def _collect(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._received:
                self._datagrams.append(data)
                self._received.notify_all()

    def __enter__(self) -> UDPListener:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextmanager
def capture_datagrams() -> Iterator[UDPListener]:
    """A started :class:`UDPListener`, stopped when the block ends."""
    listener = UDPListener().start()
    try:
        yield listener
    finally:
        listener.stop()
