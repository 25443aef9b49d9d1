"""Helpers for the collector tests: a real collector process and a few HTTP calls."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from email.message import Message
from pathlib import Path
from typing import Any

from telemetry_sdk._wire import CloseMessage, Component, StartMessage, encode

READY_TIMEOUT = 15.0


def start_message(**changes: Any) -> StartMessage:
    """A valid start message; keyword arguments replace fields."""
    fields: dict[str, Any] = {
        "correlator": str(uuid.uuid4()),
        "product": "minflow",
        "version": "1.4.0",
        "python_v": "3.11.7",
        "platform_system": "Linux",
        "tracking_level": 1,
    }
    fields.update(changes)
    return StartMessage(**fields)


def close_message(correlator: str, **changes: Any) -> CloseMessage:
    """A valid level-3 close for ``correlator``; keyword arguments replace fields."""
    fields: dict[str, Any] = {
        "correlator": correlator,
        "product": "minflow",
        "version": "1.4.0",
        "tracking_level": 3,
        "end": 1_795_305_802,
        "execution_time": 2.5,
        "components": (Component("minflow", {"app_count": 3, "app_fails": 1}),),
    }
    fields.update(changes)
    return CloseMessage(**fields)


def datagram(message: StartMessage | CloseMessage) -> bytes:
    """The protocol-1 datagram of ``message``."""
    return encode(message)[0]


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            msg = f"timed out waiting for {what}"
            raise AssertionError(msg)
        time.sleep(0.05)


class Response:
    """An HTTP response: status, headers (names in any case) and body."""

    def __init__(self, status: int, headers: Message, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


class CollectorProcess:
    """``python -m telemetry_sdk collector`` on free loopback ports, with its own database."""

    def __init__(self, directory: Path, *extra: str, db: Path | str | None = None) -> None:
        self.directory = directory
        self.db = db or directory / "collector.db"
        self.ready_file = directory / f"ready-{uuid.uuid4().hex}.json"
        self.log_file = directory / f"collector-{uuid.uuid4().hex}.log"
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        self.udp: tuple[str, int] = ("127.0.0.1", 0)
        self.http: tuple[str, int] = ("127.0.0.1", 0)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def start(self) -> CollectorProcess:
        command = [
            sys.executable, "-m", "telemetry_sdk", "collector",
            "--udp", "127.0.0.1:0", "--http", "127.0.0.1:0",
            "--db", str(self.db), "--ready-file", str(self.ready_file),
            # These tests send thousands of datagrams from one socket: no per-source limit,
            # unless a test asks for one (a later --rate wins).
            "--rate", "0", *self.extra,
        ]  # fmt: skip
        with open(self.log_file, "wb") as log:
            self.process = subprocess.Popen(command, stderr=log, stdout=log)
        try:
            wait_for(self._ready, READY_TIMEOUT, "the collector's ready file")
        except BaseException:
            self.kill()  # and close the socket: nothing is left open by a failed start
            raise
        info = json.loads(self.ready_file.read_text())
        self.udp = (info["udp"][0], info["udp"][1])
        self.http = (info["http"][0], info["http"][1])
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            msg = f"collector exited early:\n{self.log()}"
            raise AssertionError(msg)
        return self.ready_file.exists()

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def send(self, *datagrams: bytes) -> None:
        for data in datagrams:
            self._sock.sendto(data, self.udp)

    def request(self, method: str, path: str, headers: dict[str, str] | None = None) -> Response:
        url = f"http://{self.http[0]}:{self.http[1]}{path}"
        request = urllib.request.Request(url, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return Response(reply.status, reply.headers, reply.read())
        except urllib.error.HTTPError as error:
            with error:
                return Response(error.code, error.headers, error.read())

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def metrics(self) -> dict[str, float]:
        """The /metrics samples by name (with labels), as numbers."""
        samples: dict[str, float] = {}
        for line in self.get("/metrics").body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def wait_processed(self, received: int, timeout: float = 15.0) -> dict[str, float]:
        """Wait until ``received`` datagrams were received, decoded and written (or dropped
        because their run was deleted)."""

        def done() -> dict[str, float] | None:
            m = self.metrics()
            deleted = m.get("telemetry_collector_deleted_run_dropped_total", 0)
            handled = (
                m["telemetry_collector_accepted_total"]
                + deleted
                + sum(v for k, v in m.items() if k.startswith("telemetry_collector_rejected_total"))
            )
            ok = (
                m["telemetry_collector_received_total"] >= received
                and handled >= received
                and m["telemetry_collector_written_total"]
                == m["telemetry_collector_accepted_total"]
            )
            return m if ok else None

        return wait_for(done, timeout, f"{received} datagrams to be processed")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            os.kill(self.process.pid, signum)
        code = self.process.wait(timeout)
        self._sock.close()
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._sock.close()


def run_json(store: Any, correlator: str) -> dict[str, Any] | None:
    """``store.get_run`` as the API serves it (``None`` when nothing is held)."""
    run = store.get_run(correlator)
    return None if run is None else run.to_json()
