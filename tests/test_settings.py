"""The saved-settings file: where it lives, atomic private writes, corrupt files reported."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telemetry_sdk import Level
from telemetry_sdk._settings import (
    ALL,
    Settings,
    SettingsError,
    load,
    parse,
    save,
    settings_path,
)


class TestLocation:
    def test_absolute_xdg_config_home(self, tmp_path):
        """An absolute XDG_CONFIG_HOME holds telemetry-sdk/settings.json."""
        path = settings_path({"XDG_CONFIG_HOME": str(tmp_path)})
        assert path == tmp_path / "telemetry-sdk" / "settings.json"

    @pytest.mark.parametrize("value", [None, "", "relative/dir"])
    def test_otherwise_home_config(self, value, tmp_path, monkeypatch):
        """Unset, empty or relative XDG_CONFIG_HOME falls back to ~/.config."""
        monkeypatch.setenv("HOME", str(tmp_path))
        environ = {} if value is None else {"XDG_CONFIG_HOME": value}
        assert settings_path(environ) == tmp_path / ".config" / "telemetry-sdk" / "settings.json"


class TestSaveAndLoad:
    def test_missing_file_means_no_settings(self, tmp_path):
        """No file: nothing saved, not an error."""
        assert load(tmp_path / "settings.json") is None

    def test_round_trip(self, tmp_path):
        """What is saved is what is loaded, in the documented format."""
        path = tmp_path / "telemetry-sdk" / "settings.json"
        saved = Settings({ALL: Level.OFF, "minflow": Level.BASIC})
        save(path, saved)
        assert load(path) == saved
        assert json.loads(path.read_text()) == {
            "version": 1,
            "ceilings": {"*": 0, "minflow": 1},
        }

    @given(
        st.dictionaries(
            st.one_of(st.just(ALL), st.from_regex(r"[a-z][a-z0-9_-]{0,39}", fullmatch=True)),
            st.sampled_from(list(Level)),
            max_size=8,
        )
    )
    def test_parse_reads_what_to_json_writes(self, ceilings):
        """Any settings survive the trip through the file's text."""
        settings = Settings(ceilings)
        assert parse(settings.to_json()) == settings

    def test_file_is_private(self, tmp_path):
        """The file is created 0o600 and a new folder 0o700."""
        path = tmp_path / "new" / "settings.json"
        save(path, Settings({ALL: Level.OFF}))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    def test_replace_leaves_no_temporary_files(self, tmp_path):
        """Saving again replaces the file; only settings.json remains in the folder."""
        path = tmp_path / "settings.json"
        save(path, Settings({ALL: Level.OFF}))
        save(path, Settings({"minflow": Level.OFF}))
        assert load(path) == Settings({"minflow": Level.OFF})
        assert os.listdir(tmp_path) == ["settings.json"]

    def test_replace_is_atomic(self, tmp_path):
        """A reader holding the old file keeps reading the old content (a new inode replaces it)."""
        path = tmp_path / "settings.json"
        save(path, Settings({ALL: Level.OFF}))
        with path.open() as old:
            save(path, Settings())
            assert json.load(old)["ceilings"] == {"*": 0}
        assert load(path) == Settings()


class TestQueries:
    def test_for_product_and_all(self):
        """A product's own ceiling and the all-products ceiling are reported separately."""
        settings = Settings({ALL: Level.COMPONENTS, "minflow": Level.OFF})
        assert settings.for_product("minflow") == Level.OFF
        assert settings.for_product("other") is None
        assert settings.for_all() == Level.COMPONENTS

    def test_without_product_keeps_the_rest(self):
        """Clearing one product keeps the all-products ceiling and other products."""
        settings = Settings({ALL: Level.OFF, "min-flow": Level.OFF, "b": Level.OFF})
        assert settings.without("MIN_FLOW") == Settings({ALL: Level.OFF, "b": Level.OFF})
        assert settings.without(ALL) == Settings({"min-flow": Level.OFF, "b": Level.OFF})


class TestCorrupt:
    @pytest.mark.parametrize(
        ("content", "reason"),
        [
            (b"{not json", "not valid JSON"),
            (b"", "not valid JSON"),
            (b"[1, 2]", "expected a JSON object"),
            (b'{"ceilings": {}}', "unsupported version None"),
            (b'{"version": 2, "ceilings": {}}', "unsupported version 2"),
            (b'{"version": true, "ceilings": {}}', "unsupported version True"),
            (b'{"version": 1, "ceilings": []}', "'ceilings' must be an object"),
            (b'{"version": 1, "ceilings": {"Bad Name": 0}}', "invalid product name"),
            (b'{"version": 1, "ceilings": {"minflow": 4}}', "integer 0-3"),
            (b'{"version": 1, "ceilings": {"minflow": "0"}}', "integer 0-3"),
            (b'{"version": 1, "ceilings": {"minflow": false}}', "integer 0-3"),
            (b'{"version": 1, "ceilings": {"minflow": 0.0}}', "integer 0-3"),
            (b"\xff\xfe{}", "not UTF-8"),
            (b" " * (64 * 1024 + 1), "larger than"),
        ],
        ids=lambda value: repr(value)[:40],
    )
    def test_reported_with_the_reason(self, tmp_path, content, reason):
        """Every kind of damage raises SettingsError saying what is wrong."""
        path = tmp_path / "settings.json"
        path.write_bytes(content)
        with pytest.raises(SettingsError, match=reason):
            load(path)

    def test_folder_instead_of_file(self, tmp_path):
        """A folder where the file should be cannot be read: SettingsError, not OSError."""
        (tmp_path / "settings.json").mkdir()
        with pytest.raises(SettingsError, match="cannot be read"):
            load(tmp_path / "settings.json")


class TestUnwritable:
    def test_parent_is_a_file(self, tmp_path):
        """A config folder that is really a file gives SettingsError with the path."""
        blocker = tmp_path / "config"
        blocker.write_text("not a folder")
        with pytest.raises(SettingsError, match="cannot write"):
            save(blocker / "telemetry-sdk" / "settings.json", Settings({ALL: Level.OFF}))

    def test_target_is_a_folder(self, tmp_path):
        """A folder in the file's place: SettingsError, and no temporary file is left."""
        target = tmp_path / "settings.json"
        target.mkdir()
        with pytest.raises(SettingsError, match="cannot write"):
            save(target, Settings({ALL: Level.OFF}))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]
        assert Path(target).is_dir()
