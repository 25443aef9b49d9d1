"""The HTTP server's limits, against a real collector process over real sockets.

Slow clients, many connections, header bombs, request bodies and smuggling attempts.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _collector_support import CollectorProcess, wait_for
from _http_support import connect, exchange, parse_responses, read_all

pytestmark = pytest.mark.slow

HEADER_TIMEOUT = 2.0
PRODUCT_RULE = "product must be at most 200 characters, none of them control"


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    """A collector with a short header deadline and small header limits."""
    process = CollectorProcess(
        tmp_path_factory.mktemp("limits"),
        "--http-header-timeout", str(HEADER_TIMEOUT),
        "--http-max-header-bytes", "8192",
        "--http-max-headers", "20",
    ).start()  # fmt: skip
    yield process
    process.kill()


def refused(collector: CollectorProcess, reason: str) -> float:
    """How many connections or requests /metrics counts as refused for ``reason``."""
    return collector.metrics()[f'telemetry_collector_http_refused_total{{reason="{reason}"}}']


def rss_kib(pid: int) -> int:
    """The resident set size of process ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class TestHeaderDeadline:
    def test_trickling_client_is_cut_off(self, collector: CollectorProcess) -> None:
        """A client sending one header byte every 0.5 s gets a 408 and is closed at the deadline."""
        before = refused(collector, "header_timeout")
        request = b"GET /api/products HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        sent = 0
        started = time.monotonic()
        with connect(collector.http) as sock:
            sock.settimeout(0.5)
            reply = b""
            while sent < len(request):
                try:
                    sock.send(request[sent : sent + 1])
                    sent += 1
                    reply = sock.recv(4096)
                except TimeoutError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    break
                if reply:
                    reply += read_all(sock, 2)
                    break
        elapsed = time.monotonic() - started
        (response,) = parse_responses(reply)
        assert response.status == 408
        assert response.json() == {"error": "request headers not received in time"}
        assert sent < len(request)  # cut off mid-headers, although bytes kept coming
        assert elapsed < HEADER_TIMEOUT + 3
        assert refused(collector, "header_timeout") >= before + 1

    def test_silent_connections_do_not_delay_others_and_are_closed(
        self, collector: CollectorProcess
    ) -> None:
        """200 connections that send nothing leave others served, then are all closed."""
        silent = [connect(collector.http) for _ in range(200)]
        try:
            for _ in range(20):
                response = collector.get("/api/stats")
                assert response.status == 200
            # Those were served while all 200 were still held open (none answered or closed).
            for sock in silent:
                sock.setblocking(False)
                with pytest.raises(BlockingIOError):
                    sock.recv(1)
                sock.setblocking(True)
            for sock in silent:
                (response,) = parse_responses(read_all(sock, HEADER_TIMEOUT + 5))
                assert response.status == 408
        finally:
            for sock in silent:
                sock.close()

    def test_keep_alive_requests_each_get_the_full_deadline(
        self, collector: CollectorProcess
    ) -> None:
        """On one keep-alive connection, the deadline restarts after every response."""
        with connect(collector.http) as sock:
            for _ in range(3):
                time.sleep(HEADER_TIMEOUT * 0.6)
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                data = b""
                while b'"ok"' not in data:
                    chunk = sock.recv(4096)
                    assert chunk, "connection closed early"
                    data += chunk
                assert data.startswith(b"HTTP/1.1 200 ")


class TestConnectionCap:
    def test_connections_beyond_the_cap_get_a_json_503(self, tmp_path: Path) -> None:
        """Beyond --http-max-connections a request gets a JSON 503; freed slots serve again."""
        collector = CollectorProcess(tmp_path, "--http-max-connections", "20").start()
        held = [connect(collector.http) for _ in range(19)]
        try:
            # 19 held and the scrape itself; then the 20th fills the cap (accepted in order).
            wait_for(lambda: collector_connections(collector) >= 20, what="19 open connections")
            held.append(connect(collector.http))
            (response,) = exchange(collector.http, b"GET /api/stats HTTP/1.1\r\nHost: x\r\n\r\n")
            assert response.status == 503
            assert response.json() == {"error": "too many connections; retry later"}
            assert response.headers["retry-after"] == "1"
        finally:
            for sock in held:
                sock.close()
        try:
            wait_for(lambda: collector_connections(collector) < 5, what="connections to close")
            assert collector.get("/api/stats").status == 200
            assert refused(collector, "too_many_connections") >= 1
        finally:
            collector.stop()

    def test_a_burst_of_connections_is_queued_not_refused(
        self, collector: CollectorProcess
    ) -> None:
        """500 connections opened at once all connect and are served (backlog of thousands)."""
        socks = []
        try:
            for _ in range(500):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                sock.connect_ex(collector.http)
                socks.append(sock)
            for sock in socks:
                sock.setblocking(True)
                sock.settimeout(10)
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            statuses = [parse_responses(read_all(sock))[0].status for sock in socks]
        finally:
            for sock in socks:
                sock.close()
        assert statuses == [200] * 500


def collector_connections(collector: CollectorProcess) -> float:
    """Open HTTP connections, as /metrics reports them (the scrape itself included)."""
    return collector.metrics()["telemetry_collector_http_connections"]


class TestHeaderLimits:
    def test_header_block_over_the_limit_gets_431(self, collector: CollectorProcess) -> None:
        """Headers over --http-max-header-bytes get a JSON 431 and the connection closes."""
        request = b"GET /api/products HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
        (response,) = exchange(collector.http, request)
        assert response.status == 431
        assert response.json() == {"error": "request headers too large"}

    def test_too_many_header_lines_get_431(self, collector: CollectorProcess) -> None:
        """More than --http-max-headers header lines get a JSON 431, however small."""
        lines = b"".join(b"X-%d: 1\r\n" % i for i in range(25))
        (response,) = exchange(
            collector.http, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n"
        )
        assert response.status == 431
        assert response.json() == {"error": "at most 20 request headers"}
        fine = b"".join(b"X-%d: 1\r\n" % i for i in range(10))
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + fine + b"\r\n"
        (response,) = exchange(collector.http, request)
        assert response.status == 200

    def test_pipelined_requests_over_the_limit_together_are_served(
        self, collector: CollectorProcess
    ) -> None:
        """The header limit is per request: 12 pipelined 1 KB requests in one send all get 200."""
        one = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 1000 + b"\r\n\r\n"
        last = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        assert len(one * 11 + last) > 8192
        assert [r.status for r in exchange(collector.http, one * 11 + last)] == [200] * 12

    def test_header_bombs_leave_memory_bounded(self, collector: CollectorProcess) -> None:
        """20 concurrent requests of 96 x 65 KB headers grow the collector by under 20 MB."""
        assert collector.process is not None
        collector.get("/api/stats")
        before = rss_kib(collector.process.pid)
        header = b"X-Bomb-%d: " + b"b" * 65_000 + b"\r\n"
        request = b"GET /api/stats HTTP/1.1\r\nHost: x\r\n" + b"".join(
            header.replace(b"%d", str(i).encode()) for i in range(96)
        )
        statuses: list[int] = []

        def bomb() -> None:
            with connect(collector.http) as sock:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    sock.sendall(request)
                statuses.extend(r.status for r in parse_responses(read_all(sock)))

        threads = [threading.Thread(target=bomb) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        after = rss_kib(collector.process.pid)
        assert (after - before) < 20 * 1024, (before, after)
        assert set(statuses) <= {431}
        assert collector.get("/healthz").status == 200


class TestBodies:
    def test_a_body_is_never_parsed_as_the_next_request(self, collector: CollectorProcess) -> None:
        """A GET whose body holds a second request gets one 400; the inner request is ignored."""
        inner = b"DELETE /api/runs/00000000-0000-4000-8000-000000000000 HTTP/1.1\r\nHost: x\r\n\r\n"
        request = (
            b"GET /api/products HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(inner)
            + inner
        )
        responses = exchange(collector.http, request)
        assert [r.status for r in responses] == [400]
        assert responses[0].json() == {"error": "this API takes no request body"}
        assert responses[0].headers["connection"] == "close"

    def test_content_length_with_transfer_encoding_is_refused(
        self, collector: CollectorProcess
    ) -> None:
        """A request with both Content-Length and Transfer-Encoding gets a 400 and a close."""
        request = (
            b"GET /api/products HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        responses = exchange(collector.http, request)
        assert [r.status for r in responses] == [400]

    def test_pipelined_requests_without_bodies_are_all_answered(
        self, collector: CollectorProcess
    ) -> None:
        """Three pipelined GETs on one connection get three answers, in order."""
        request = (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /api/products HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert [r.status for r in exchange(collector.http, request)] == [200, 404, 200]

    def test_malformed_request_gets_a_json_400(self, collector: CollectorProcess) -> None:
        """A request line that is not HTTP gets a small JSON 400, no traceback."""
        (response,) = exchange(collector.http, b"\x16\x03\x01 hello there\r\n\r\n")
        assert response.status == 400
        assert response.json() == {"error": "malformed HTTP request"}
        assert "Traceback" not in collector.log()


class TestErrors:
    @pytest.mark.parametrize(
        ("query", "message"),
        [
            ("limit=%C2%B2", "limit must be a whole number from 1 to 1000"),
            ("limit=%D9%A3", "limit must be a whole number from 1 to 1000"),
            ("limit=-1", "limit must be a whole number from 1 to 1000"),
            ("limit=1001", "limit must be a whole number from 1 to 1000"),
            ("limit=", "limit must be a whole number from 1 to 1000"),
            ("product=" + "p" * 201, PRODUCT_RULE),
            ("product=%00", PRODUCT_RULE),
        ],
    )
    def test_bad_query_parameters_get_a_clear_400(
        self, collector: CollectorProcess, query: str, message: str
    ) -> None:
        """Numbers are ASCII digits in range (``?limit=²`` is a 400, not a 500)."""
        response = collector.get(f"/api/leaderboard?{query}")
        assert response.status == 400
        assert response.json() == {"error": message}

    def test_every_error_is_a_small_json_body(self, collector: CollectorProcess) -> None:
        """404, 405, 400 and 403 answer {"error": ...} as JSON, with the security headers."""
        cases = [
            ("GET", "/nope", 404),
            ("GET", "/static/../../etc/passwd", 404),
            ("POST", "/api/products", 405),
            ("PUT", "/api/runs/x", 405),
            ("GET", "/api/runs/NOT-A-UUID", 400),
            ("DELETE", "/api/runs/00000000-0000-4000-8000-000000000000", 403),
        ]
        for method, path, status in cases:
            response = collector.request(method, path)
            assert response.status == status, (method, path)
            assert response.headers["Content-Type"] == "application/json"
            assert set(response.json()) == {"error"}
            assert len(response.body) < 300
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "GET" in collector.request("POST", "/api/products").headers["Allow"]

    def test_head_is_answered_without_a_body(self, collector: CollectorProcess) -> None:
        """HEAD / answers 200 with headers only."""
        response = collector.request("HEAD", "/")
        assert response.status == 200
        assert response.body == b""
