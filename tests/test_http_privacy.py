"""No client address in any collector output, whatever the clients do."""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import time
from pathlib import Path

import pytest
from _collector_support import CollectorProcess, datagram, start_message, wait_for
from _http_support import connect, exchange, read_all

pytestmark = pytest.mark.slow

#: Each kind of abuse comes from its own loopback address, so finding one in the log means a leak.
RESET, MALFORMED, SLOW, BOMB, FLOOD, PLAIN = (f"127.0.0.{n}" for n in range(23, 29))


def reset(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0) instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class TestNoClientAddressInOutput:
    def test_abusive_clients_leave_no_address_in_the_log(self, tmp_path: Path) -> None:
        """Resets, malformed requests, slowloris, header bombs and a UDP flood log no address."""
        collector = CollectorProcess(
            tmp_path, "--log-level", "DEBUG", "--rate", "5", "--burst", "10",
            "--http-header-timeout", "1",
        ).start()  # fmt: skip
        ports: set[int] = set()

        def opened(source: str) -> socket.socket:
            sock = connect(collector.http, source)
            ports.add(sock.getsockname()[1])
            return sock

        try:
            # Resets: before a request, mid-request, and while the response is being written.
            for partial in (b"", b"GET /api/st", b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"):
                for _ in range(5):
                    sock = opened(RESET)
                    sock.sendall(partial)
                    reset(sock)
            # Malformed requests of several kinds.
            for request in (
                b"\x00\x01\x02garbage\r\n\r\n",
                b"GET / HTTP/9.9\r\n\r\n",
                b"GET /api/products HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
                b"GET /api/leaderboard?limit=%C2%B2 HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"GET /api/runs/%ZZ HTTP/1.1\r\nHost: x\r\n\r\n",
            ):
                with opened(MALFORMED) as sock:
                    sock.sendall(request)
                    read_all(sock, 3)
            # Slowloris: trickled headers until the deadline closes them.
            slow = [opened(SLOW) for _ in range(10)]
            for _ in range(6):
                for sock in slow:
                    with contextlib.suppress(OSError):
                        sock.send(b"X")
                time.sleep(0.3)
            for sock in slow:
                read_all(sock, 3)
                sock.close()
            # A header bomb, reset after sending.
            with opened(BOMB) as sock, contextlib.suppress(OSError):
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: " + b"a" * 200_000)
            # A rate-limited UDP flood with malformed datagrams mixed in.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind((FLOOD, 0))
                ports.add(udp.getsockname()[1])
                good = datagram(start_message())
                for i in range(2000):
                    udp.sendto(good if i % 2 else b"\xff not json", collector.udp)
            wait_for(
                lambda: (
                    sum(
                        value
                        for name, value in collector.metrics().items()
                        if name.startswith("telemetry_collector_rate_limited_total")
                    )
                    > 0
                ),
                what="the flood to be rate limited",
            )
            # And one ordinary client, for comparison.
            request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            assert exchange(collector.http, request, PLAIN)[0].status == 200
        finally:
            code = collector.stop()
        log = collector.log()
        assert code == 0
        for address in (RESET, MALFORMED, SLOW, BOMB, FLOOD, PLAIN):
            assert address not in log, address
        for port in ports:
            assert re.search(rf"(?<![=\d]){port}(?!\d)", log) is None, port
        assert "Traceback" not in log
        assert len(ports) >= 30  # the search above covered every connection's own port
