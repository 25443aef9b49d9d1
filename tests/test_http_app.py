"""The HTTP side in-process: the ASGI app through httpx, and the embedded server's life cycle."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import httpx
import pytest

from telemetry_sdk.collector import Collector, CollectorSettings, HTTPLimits, Metrics, SQLiteStore
from telemetry_sdk.collector._cli import build_parser, settings_from_args
from telemetry_sdk.collector._health import Health, assess
from telemetry_sdk.collector._http_app import build_app
from telemetry_sdk.collector._http_views import HTTPContext
from telemetry_sdk.collector._prometheus import registry_for


def make_context(db: Path, metrics: Metrics, healthy: object = True) -> HTTPContext:
    SQLiteStore.open(db).close()

    def health() -> Health:
        if isinstance(healthy, Exception):
            raise healthy
        return assess(metrics, writer_alive=bool(healthy), max_queued=1000)

    return HTTPContext(
        db=str(db),
        registry=registry_for(metrics),
        admin_token=None,
        writable=lambda: SQLiteStore.open(db),
        healthy=health,
    )


def call(context: HTTPContext, metrics: Metrics, path: str, **headers: str) -> httpx.Response:
    """One GET through the ASGI app, in-process."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=build_app(context, metrics.http))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path, headers=headers)

    try:
        return asyncio.run(go())
    finally:
        context.close()


class TestApp:
    def test_an_unexpected_error_is_a_json_500_logged_without_origin(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An exception in an endpoint gives {"error": "internal error"}; the log has no client."""
        metrics = Metrics()
        context = make_context(tmp_path / "x.db", metrics, RuntimeError("boom"))
        with caplog.at_level(logging.ERROR, "telemetry_sdk.collector"):
            response = call(context, metrics, "/healthz")
        assert response.status_code == 500
        assert response.json() == {"error": "internal error"}
        assert "boom" not in response.text
        assert response.headers["x-content-type-options"] == "nosniff"
        assert metrics.http.refused["server_error"] == 1
        (record,) = caplog.records
        assert record.getMessage() == "error serving GET /healthz: RuntimeError"
        assert "127.0.0.1" not in caplog.text
        assert "testclient" not in caplog.text

    def test_unhealthy_is_a_503(self, tmp_path: Path) -> None:
        """/healthz answers 503 with a JSON status when the collector cannot ingest."""
        metrics = Metrics()
        response = call(make_context(tmp_path / "x.db", metrics, False), metrics, "/healthz")
        assert response.status_code == 503
        body = response.json()
        assert (body["status"], body["reasons"], body["writer"]) == (
            "unhealthy",
            ["writer_down"],
            "down",
        )

    def test_metrics_render_through_prometheus_client(self, tmp_path: Path) -> None:
        """/metrics shows the counters, the HTTP refusals by reason, and speaks OpenMetrics."""
        metrics = Metrics(received=7)
        metrics.http.refuse("header_timeout")
        context = make_context(tmp_path / "x.db", metrics)
        text = call(context, metrics, "/metrics").text
        assert "telemetry_collector_received_total 7.0" in text
        assert 'telemetry_collector_http_refused_total{reason="header_timeout"} 1.0' in text
        assert 'telemetry_collector_http_refused_total{reason="too_many_connections"} 0.0' in text
        assert "# TYPE telemetry_collector_write_batch_seconds histogram" in text
        open_metrics = call(
            context, metrics, "/metrics", accept="application/openmetrics-text; version=1.0.0"
        )
        assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
        assert open_metrics.text.endswith("# EOF\n")

    def test_two_collectors_in_one_process_have_their_own_registries(self) -> None:
        """Each collector's metrics are its own: no clash in the global registry."""
        first, second = Metrics(received=1), Metrics(received=2)
        from prometheus_client import generate_latest

        assert b"received_total 1.0" in generate_latest(registry_for(first))
        assert b"received_total 2.0" in generate_latest(registry_for(second))


class TestEmbedded:
    def test_start_returns_listening_and_stop_closes(self, tmp_path: Path) -> None:
        """Collector.start() returns with HTTP listening on the real port; stop() closes it."""
        settings = CollectorSettings(
            udp=("127.0.0.1", 0), http=("127.0.0.1", 0), db=tmp_path / "x.db"
        )
        with Collector(settings) as collector:
            address = collector.http_address
            assert address is not None
            assert address[1] != 0
            with socket.create_connection(address, timeout=5) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert sock.recv(100).startswith(b"HTTP/1.1 200 ")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address, timeout=5).close()

    def test_an_address_in_use_fails_start(self, tmp_path: Path) -> None:
        """A taken HTTP port makes start() raise OSError and leaves nothing running."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            settings = CollectorSettings(
                udp=("127.0.0.1", 0), http=taken.getsockname(), db=tmp_path / "x.db"
            )
            collector = Collector(settings)
            with pytest.raises(OSError, match="in use"):
                collector.start()
            collector.stop()


class TestLimitsSettings:
    def test_flags_set_the_limits_and_keep_the_other_defaults(self) -> None:
        """Each --http-* option sets its HTTPLimits field; limits not given keep their defaults."""
        parser = build_parser()
        args = parser.parse_args(
            ["collector", "--http-header-timeout", "2.5", "--http-max-connections", "7"]
        )
        limits = settings_from_args(args).http_limits
        assert limits == HTTPLimits(header_timeout=2.5, max_connections=7)
        assert settings_from_args(parser.parse_args(["collector"])).http_limits == HTTPLimits()
        for bad in (["--http-header-timeout", "0"], ["--http-max-header-bytes", "10"]):
            with pytest.raises(SystemExit):
                parser.parse_args(["collector", *bad])

    def test_help_states_each_limit_default(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`collector --help` names every --http-* option with its HTTPLimits default."""
        with pytest.raises(SystemExit):
            build_parser().parse_args(["collector", "--help"])
        text = " ".join(capsys.readouterr().out.split())
        defaults = HTTPLimits()
        for flag, name in (
            ("--http-header-timeout", "header_timeout"),
            ("--http-keepalive-timeout", "keepalive_timeout"),
            ("--http-max-connections", "max_connections"),
            ("--http-max-header-bytes", "max_header_bytes"),
            ("--http-max-headers", "max_headers"),
            ("--http-backlog", "backlog"),
        ):
            value = getattr(defaults, name)
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            assert flag in text
            assert f"(default: {shown})" in text.rsplit(flag, 1)[1].split("--", 1)[0], flag

    def test_limits_are_validated(self) -> None:
        """A zero timeout or a tiny header limit is refused with the field's name."""
        with pytest.raises(ValueError, match="header_timeout"):
            HTTPLimits(header_timeout=0)
        with pytest.raises(ValueError, match="max_header_bytes"):
            HTTPLimits(max_header_bytes=10)
