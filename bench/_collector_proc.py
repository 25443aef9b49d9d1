"""Run the collector as its own process for the benchmarks, and read its figures."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from _common import clean_env


class CollectorProcess:
    """``python -m telemetry_sdk collector`` on free loopback ports, with a given database."""

    def __init__(self, db: Path | str, workdir: Path, *extra: str, name: str = "collector") -> None:
        self.db = db
        self.ready = workdir / f"ready-{name}.json"
        self.log = workdir / f"{name}.log"
        self.ready.unlink(missing_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "telemetry_sdk",
            "collector",
            "--udp",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--db",
            str(db),
            "--ready-file",
            str(self.ready),
            # One loadgen process sends everything: measure ingest, not the rate limits.
            "--rate",
            "0",
            "--global-rate",
            "0",
            "--log-level",
            "WARNING",
            *extra,
        ]
        self._log_file = self.log.open("ab")
        self.proc = subprocess.Popen(
            cmd, env=clean_env(), stdout=self._log_file, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while not self.ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                msg = (
                    f"the collector did not start; see {self.log}:\n{self.log.read_text()[-2000:]}"
                )
                raise RuntimeError(msg)
            time.sleep(0.05)
        info = json.loads(self.ready.read_text())
        self.udp_port: int = info["udp"][1]
        self.http = f"http://127.0.0.1:{info['http'][1]}"
        self.pid: int = info["pid"]

    def get(self, path: str, timeout: float = 30.0) -> bytes:
        with urllib.request.urlopen(self.http + path, timeout=timeout) as response:
            return response.read()

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for line in self.get("/metrics").decode().splitlines():
            if line.startswith("telemetry_collector_") and "{" not in line:
                name, _, value = line.partition(" ")
                out[name.removeprefix("telemetry_collector_")] = float(value)
            elif line.startswith(
                ("telemetry_collector_rejected_total{", "telemetry_collector_rate_limited_total{")
            ):
                name = line.removeprefix("telemetry_collector_").partition("{")[0]
                out[name] = out.get(name, 0.0) + float(line.rpartition(" ")[2])
        return out

    def drain(self, stall: float = 30.0) -> dict[str, float]:
        """Wait until nothing more arrives and everything accepted is written.

        Gives up when neither ``received_total`` nor ``written_total`` moved for ``stall`` s.
        """
        last: dict[str, float] = {}
        moved = time.monotonic()
        while True:
            now = self.metrics()
            progress = (now.get("received_total"), now.get("written_total"))
            if progress != (last.get("received_total"), last.get("written_total")):
                moved = time.monotonic()
            settled = (
                now.get("queue_depth", 0) == 0
                and now.get("written_total") == now.get("accepted_total")
                and last.get("received_total") == now.get("received_total")
            )
            if settled or time.monotonic() - moved > stall:
                return now
            last = now
            time.sleep(0.5)

    def udp_drops(self) -> int | None:
        """Datagrams the kernel dropped at the collector's socket (its buffer was full)."""
        port = f":{self.udp_port:04X}"
        for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(port):
                return int(fields[-1])
        return None

    def memory_kib(self) -> dict[str, int]:
        """VmRSS and VmHWM in KiB: the collector, its child processes, and their sum.

        Keys ``VmRSS``/``VmHWM`` are the sums over the process tree (the collector may run its
        database writer as a child process); ``main.VmRSS``, ``children.VmRSS`` etc. the parts.
        """
        main = _status(self.pid)
        kids = [_status(pid) for pid in _descendants(self.pid)]
        out = {f"main.{k}": v for k, v in main.items()}
        for key in ("VmRSS", "VmHWM"):
            out[f"children.{key}"] = sum(k.get(key, 0) for k in kids)
            out[key] = main.get(key, 0) + out[f"children.{key}"]
        out["processes"] = 1 + len(kids)
        return out

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()
        return self.proc.returncode

    def __enter__(self) -> CollectorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def _descendants(pid: int) -> list[int]:
    """Every process whose ancestry leads to ``pid`` (from /proc/*/stat)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def is_postgres(db: Path | str) -> bool:
    return str(db).startswith("postgresql://")


def postgres_schema(base: str, name: str) -> str:
    """A fresh schema ``name`` in the database at ``base`` (dropped first); its URL."""
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        conn.execute(f"CREATE SCHEMA {name}")
    return f"{base}?options=-csearch_path%3D{name}"


def drop_postgres_schema(base: str, name: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def db_counts(db: Path | str) -> dict[str, int]:
    """Rows in the store: runs, runs with a close, pending closes."""
    if is_postgres(db):
        import psycopg

        with psycopg.connect(str(db)) as pg:
            runs, closed = pg.execute(
                "SELECT count(*), count(*) FILTER (WHERE has_close) FROM runs"
            ).fetchone()
            pending = pg.execute("SELECT count(*) FROM pending_closes").fetchone()[0]
        return {"runs": runs, "closed": closed, "pending": pending}
    db = Path(db)
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        runs, closed = conn.execute(
            "SELECT count(*), coalesce(sum(has_close), 0) FROM runs"
        ).fetchone()
        pending = conn.execute("SELECT count(*) FROM pending_closes").fetchone()[0]
    finally:
        conn.close()
    return {"runs": runs, "closed": closed, "pending": pending}


def file_mib(path: Path | str) -> float:
    """The database's size on disk (SQLite: the file and its -wal, -shm; PostgreSQL: the
    tables and indexes of its schema)."""
    if is_postgres(path):
        import psycopg

        with psycopg.connect(str(path)) as pg:
            size = pg.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class AS c "
                "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            ).fetchone()[0]
        return float(size) / (1 << 20)
    total = 0
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(path) + suffix)
        if p.exists():
            total += os.path.getsize(p)
    return total / (1 << 20)
