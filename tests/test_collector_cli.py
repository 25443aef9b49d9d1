"""The collector's command line: options made from ``CollectorSettings``, and the operator's
errors (token file, address in use) from the real command."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
from _collector_support import CollectorProcess, datagram, start_message

from telemetry_sdk import ConfigurationError, cli
from telemetry_sdk.collector import CollectorSettings
from telemetry_sdk.collector._cli import build_parser, settings_from_args
from telemetry_sdk.collector._options import OPTION, Option

TOKEN = "s3cret-token-for-tests-0123456789"


def run_collector(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m telemetry_sdk collector ARGS`` with a wide terminal, to completion."""
    return subprocess.run(
        [sys.executable, "-m", "telemetry_sdk", "collector", *args],
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def setting_options() -> list[tuple[attrs.Attribute, Option]]:
    return [
        (a, a.metadata[OPTION]) for a in attrs.fields(CollectorSettings) if OPTION in a.metadata
    ]


def token_file(directory: Path, content: str = TOKEN + "\n", mode: int = 0o600) -> Path:
    path = directory / "admin-token"
    path.write_text(content)
    path.chmod(mode)
    return path


def assert_refused(done: subprocess.CompletedProcess[str], status: int, *phrases: str) -> str:
    """The command exited ``status`` with one line on stderr holding every phrase; return it."""
    assert done.returncode == status, done.stderr
    assert "Traceback" not in done.stderr
    assert "[Errno" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for phrase in phrases:
        assert phrase in lines[0]
    return lines[0]


class TestOptionsFromSettings:
    def test_no_options_give_the_settings_defaults(self) -> None:
        """`collector` with no options runs exactly CollectorSettings(): loopback, rate limited."""
        settings = settings_from_args(build_parser().parse_args(["collector"]))
        assert settings == CollectorSettings()
        assert settings.udp == ("127.0.0.1", 50077)
        assert settings.http == ("127.0.0.1", 8000)
        assert (settings.rate, settings.burst) == (20, 200)
        assert settings.admin_token is None

    def test_every_option_reaches_its_setting(self, tmp_path: Path) -> None:
        """Each option sets its field, IPv6 brackets and `--http off` included."""
        path = token_file(tmp_path)
        args = build_parser().parse_args(
            ["collector", "--udp", "[::1]:0", "--http", "off", "--db", str(tmp_path / "u.db"),
             "--admin-token-file", str(path), "--rate", "2.5", "--burst", "7"]
        )  # fmt: skip
        assert settings_from_args(args) == CollectorSettings(
            udp=("::1", 0),
            http=None,
            db=tmp_path / "u.db",
            admin_token=TOKEN,
            rate=2.5,
            burst=7,
        )

    @pytest.mark.slow
    def test_help_shows_every_setting_with_its_default(self) -> None:
        """`collector --help` lists each option-bearing setting and the field's own default."""
        done = run_collector("--help")
        assert done.returncode == 0, done.stderr
        text = " ".join(done.stdout.split())
        options = setting_options()
        assert {a.name for a, _ in options} >= {"udp", "http", "db", "admin_token", "rate"}
        for attribute, found in options:
            assert found.flag(attribute.name) in text
            assert f"(default: {found.show(attribute.default)})" in text

    @pytest.mark.parametrize(
        ("args", "phrase"),
        [
            (["--rate", "-1"], "rate must be a number >= 0"),
            (["--rate", "nan"], "expected a number"),
            (["--rate", "inf"], "expected a number"),
            (["--burst", "0"], "burst must be a whole number >= 1"),
            (["--burst", "\uff15"], "expected a whole number"),
            (["--burst", "+5"], "expected a whole number"),
            (["--udp", "localhost"], "HOST:PORT"),
            (["--udp", "127.0.0.1:70000"], "port in 0-65535"),
            (["--http", "127.0.0.1:"], "HOST:PORT"),
        ],
    )
    def test_bad_values_are_usage_errors_naming_the_option(
        self, args: list[str], phrase: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A bad option value exits 2 with one line naming the option and what is wrong."""
        assert cli.main(["collector", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert f"argument {args[0]}:" in err
        assert phrase in err

    def test_embedded_settings_are_checked_by_the_same_rules(self) -> None:
        """CollectorSettings refuses what the command line refuses, with ConfigurationError."""
        for bad in (
            {"rate": -1.0},
            {"rate": math.inf},
            {"burst": 0},
            {"udp": ("127.0.0.1", 65536)},
            {"http": ("", 80)},
            {"udp": None},
            {"udp": ("127.0.0.1", "50077")},
            {"admin_token": "short"},
            {"admin_token": "has spaces in the middle"},
        ):
            with pytest.raises(ConfigurationError):
                CollectorSettings(**bad)

    def test_the_token_never_shows_in_the_settings_repr(self) -> None:
        """repr(CollectorSettings) leaves the admin token out, so logging settings is safe."""
        assert TOKEN not in repr(CollectorSettings(admin_token=TOKEN))


class TestCoreCommandHandsOver:
    def test_core_parser_passes_collector_arguments_through(self) -> None:
        """The core parser keeps every argument after `collector` untouched, options included."""
        args = cli.build_parser().parse_args(
            ["collector", "--udp", "127.0.0.1:0", "leaderboard", "--db", "x.db", "-h"]
        )
        assert args.collector_command == "collector"
        assert args.arguments == ["--udp", "127.0.0.1:0", "leaderboard", "--db", "x.db", "-h"]

    @pytest.mark.slow
    @pytest.mark.parametrize("command", ["collector", "demo"])
    def test_missing_extra_gives_the_install_hint(self, command: str) -> None:
        """Without orjson, `collector --help` and `demo` print the pip hint, status 1."""
        code = (
            "import sys; sys.modules['orjson'] = None; "
            "from telemetry_sdk.cli import main; "
            f"sys.exit(main([{command!r}, '--help']))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 1
        assert done.stderr.strip() == (
            "telemetry-sdk: the collector needs the server extra: "
            "pip install 'telemetry-sdk[server]'"
        )


@pytest.mark.slow
class TestAdminTokenFile:
    @pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o620])
    def test_file_open_to_group_or_others_is_refused(self, tmp_path: Path, mode: int) -> None:
        """A token file other users can read or change is refused, saying `chmod 600 FILE`."""
        path = token_file(tmp_path, mode=mode)
        done = run_collector("--admin-token-file", str(path), "--db", str(tmp_path / "x.db"))
        assert_refused(done, 2, str(path), f"mode {mode:04o}", f"chmod 600 {path}")
        assert not (tmp_path / "x.db").exists()

    def test_owner_only_file_is_accepted_and_the_token_works(self, tmp_path: Path) -> None:
        """With a mode-600 token file the collector starts and DELETE accepts the token."""
        path = token_file(tmp_path)
        collector = CollectorProcess(tmp_path, "--admin-token-file", str(path)).start()
        try:
            wrong = collector.request(
                "DELETE", f"/api/runs/{'0' * 8}-0000-4000-8000-{'0' * 12}",
                {"Authorization": "Bearer not-the-token-at-all"},
            )  # fmt: skip
            right = collector.request(
                "DELETE", f"/api/runs/{'0' * 8}-0000-4000-8000-{'0' * 12}",
                {"Authorization": f"Bearer {TOKEN}"},
            )  # fmt: skip
        finally:
            assert collector.stop(signal.SIGTERM) == 0
        assert wrong.status == 401
        assert right.status in (200, 404)

    def test_missing_file_is_named_without_a_raw_errno(self, tmp_path: Path) -> None:
        """A missing token file is named, with how to create one; no `[Errno 2]`."""
        path = tmp_path / "no-such-token"
        done = run_collector("--admin-token-file", str(path), "--db", str(tmp_path / "x.db"))
        assert_refused(done, 2, str(path), "does not exist", "umask 077")

    def test_directory_or_fifo_is_not_a_token_file(self, tmp_path: Path) -> None:
        """A directory or a FIFO in the token file's place is refused at once (no hang)."""
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo, 0o600)
        for path in (tmp_path, fifo):
            done = run_collector("--admin-token-file", str(path), "--db", str(tmp_path / "x.db"))
            assert_refused(done, 2, str(path), "is not a regular file")

    @pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file"
    )
    def test_unreadable_file_is_named(self, tmp_path: Path) -> None:
        """A token file the collector's user cannot read is named, with the fix."""
        path = token_file(tmp_path, mode=0o000)
        done = run_collector("--admin-token-file", str(path), "--db", str(tmp_path / "x.db"))
        assert_refused(done, 2, str(path), "permission denied", "chmod 600")

    @pytest.mark.parametrize("content", ["", "\n", "   \n\t\n"])
    def test_empty_file_is_refused(self, tmp_path: Path, content: str) -> None:
        """An empty (or blank) token file is refused rather than allowing an empty token."""
        path = token_file(tmp_path, content=content)
        done = run_collector("--admin-token-file", str(path), "--db", str(tmp_path / "x.db"))
        assert_refused(done, 2, str(path), "is empty")

    @pytest.mark.parametrize("content", ["short\n", "two words but long enough\n", "x" * 5000])
    def test_weak_or_oversized_token_is_refused(self, tmp_path: Path, content: str) -> None:
        """A token under 16 characters, with spaces, or a file over 4 KiB is refused."""
        path = token_file(tmp_path, content=content)
        done = run_collector("--admin-token-file", str(path), "--db", str(tmp_path / "x.db"))
        assert_refused(done, 2, str(path))


@pytest.mark.slow
class TestAddressInUse:
    def test_udp_address_in_use_names_it_and_the_option(self, tmp_path: Path) -> None:
        """A taken UDP port: status 1, one line naming the address, what to do, `--udp`."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", 0))
            port = taken.getsockname()[1]
            done = run_collector(
                "--udp", f"127.0.0.1:{port}", "--http", "off", "--db", str(tmp_path / "x.db")
            )
        assert_refused(done, 1, f"UDP datagrams on 127.0.0.1:{port}", "already in use", "--udp")

    def test_http_address_in_use_names_it_and_the_option(self, tmp_path: Path) -> None:
        """A taken HTTP port: status 1, a line naming the address and `--http`, nothing lost."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            done = run_collector(
                "--udp", "127.0.0.1:0", "--http", f"127.0.0.1:{port}",
                "--db", str(tmp_path / "x.db"),
            )  # fmt: skip
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        error = [line for line in done.stderr.splitlines() if "cannot listen" in line]
        assert len(error) == 1, done.stderr
        assert f"HTTP on 127.0.0.1:{port}" in error[0]
        assert "already in use" in error[0]
        assert "--http" in error[0]

    def test_ipv6_address_is_shown_in_brackets(self, tmp_path: Path) -> None:
        """An IPv6 address in use is shown as [host]:port, as it is typed."""
        if not socket.has_ipv6:
            pytest.skip("no IPv6")
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as taken:
            try:
                taken.bind(("::1", 0))
            except OSError:
                pytest.skip("no IPv6 loopback")
            port = taken.getsockname()[1]
            done = run_collector(
                "--udp", f"[::1]:{port}", "--http", "off", "--db", str(tmp_path / "x.db")
            )
        assert_refused(done, 1, f"[::1]:{port}", "already in use")


@pytest.mark.slow
class TestDeletedRuns:
    def test_replayed_datagrams_of_a_deleted_run_have_their_own_counter(
        self, tmp_path: Path
    ) -> None:
        """After `collector delete`, replays of that run are counted as dropped, not accepted."""
        collector = CollectorProcess(tmp_path).start()
        try:
            message = start_message(project_name="forget-me")
            collector.send(datagram(message))
            collector.wait_processed(1)
            done = subprocess.run(
                [sys.executable, "-m", "telemetry_sdk", "collector", "delete",
                 "--db", str(collector.db), message.correlator],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            collector.send(datagram(message), datagram(message), datagram(start_message()))
            metrics = collector.wait_processed(4)
            # The two replays are neither accepted nor written: they have their own counter.
            assert metrics["telemetry_collector_accepted_total"] == 2
            assert metrics["telemetry_collector_deleted_run_dropped_total"] == 2
            assert metrics["telemetry_collector_written_total"] == 2
            assert collector.get(f"/api/runs/{message.correlator}").status == 404
        finally:
            assert collector.stop() == 0
        assert "deleted_run=2" in collector.log()
        assert "lost=0" in collector.log()
