"""Shared fixtures: a clean environment for every test, and a guard that re-raises."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from telemetry_sdk import _guard

_PREFIXES = ("DO_NOT_TRACK", "XDG_STATE_HOME", "XDG_CONFIG_HOME")


@pytest.fixture(autouse=True)
def _clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Every test starts with no tracking variables and private state and config folders."""
    for name in list(os.environ):
        if name.startswith(_PREFIXES) or "_USAGE_TRACKING" in name:
            monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    return home


@pytest.fixture(autouse=True)
def _guard_reraises(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bugs inside tracking fail the test instead of being swallowed."""
    monkeypatch.setattr(_guard, "reraise", True)


@pytest.fixture
def swallowing_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard as users get it: errors are logged and swallowed."""
    monkeypatch.setattr(_guard, "reraise", False)
    monkeypatch.setattr(_guard, "_warned", False)


# Stores on every engine (SQLite, PostgreSQL) for the store contract tests.
from _store_engines import postgres_url, store, store_url  # noqa: E402, F401
