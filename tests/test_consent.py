"""decide(): the application opts in, every outside source can only lower the level."""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry_sdk import Config, Endpoint, Level, Product, UsageTracker, _consent, _settings
from telemetry_sdk._consent import decide
from telemetry_sdk._errors import TrackingSettingWarning

PRODUCT = Product(name="minflow", version="1.4.0", endpoint="udp://127.0.0.1:50077")
DASHED = Product(name="Min-Flow", version="1.4.0", endpoint="udp://127.0.0.1:50077")

#: <PRODUCT>_USAGE_TRACKING spellings and the ceiling each one means (None: no ceiling).
LEVEL_SPELLINGS: list[tuple[str, Level | None]] = [
    ("0", Level.OFF),
    ("1", Level.BASIC),
    ("2", Level.COMPONENTS),
    ("3", Level.EXECUTION),
    (" 2 ", Level.COMPONENTS),
    ("off", Level.OFF),
    ("OFF", Level.OFF),
    (" Off\n", Level.OFF),
    ("false", Level.OFF),
    ("False", Level.OFF),
    ("no", Level.OFF),
    ("NO", Level.OFF),
    ("on", None),
    ("true", None),
    ("TRUE", None),
    ("yes", None),
    (" Yes ", None),
    ("", None),
    ("   ", None),
]
#: Values nobody can read: each means 0 and one warning.
LEVEL_GARBAGE = [
    "4",
    "-1",
    "3.0",
    "1e0",
    "maybe",
    "enabled",
    "1 2",
    "\uff10",
    "\u0663",
    "y",
    "nope",
]

DNT_OFF = ["1", "true", "TRUE", "yes", "on", "anything", "2", " 1 ", "-1", "no"]
DNT_NO_CEILING = ["", "   ", "0", " 0 ", "false", "False", "FALSE", " false\t"]

DEBUG_ON = ["1", "true", "True", "yes", "YES", "on", " on "]
DEBUG_OFF = ["", "0", "false", "no", "off", "OFF"]


@pytest.fixture(autouse=True)
def _fresh_warnings() -> Iterator[None]:
    """Each test sees the once-per-process warnings afresh."""
    _consent._reset_warnings()
    yield
    _consent._reset_warnings()


def env(**values: str) -> dict[str, str]:
    """The test's clean environment (private XDG folders) plus ``values``."""
    return {**os.environ, **values}


def settings_file(environ: Mapping[str, str]) -> Path:
    return _settings.settings_path(environ)


def save(environ: Mapping[str, str], ceilings: dict[str, Level]) -> None:
    _settings.save(settings_file(environ), _settings.Settings(ceilings))


def decide_quietly(config: Config, product: Product, environ: Mapping[str, str]):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrackingSettingWarning)
        return decide(config, product, environ)


class _RecordingEnviron(Mapping[str, str]):
    """An environment that remembers which names were looked up."""

    def __init__(self, data: Mapping[str, str]) -> None:
        self._data = dict(data)
        self.seen: list[str] = []

    def __getitem__(self, key: str) -> str:
        self.seen.append(key)
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        self.seen.append("<iterated>")
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


class TestConfigAlone:
    @pytest.mark.parametrize("level", list(Level))
    def test_config_level_is_used_when_nothing_else_is_set(self, level):
        """With no outside setting, the run uses exactly the configured level."""
        decision = decide(Config(usage_tracking=level), PRODUCT, env())
        assert decision.level == level
        assert decision.decided_by == "config"
        assert not decision.debug

    def test_default_environment_is_os_environ(self, monkeypatch):
        """Without an explicit mapping, decide() reads the process environment."""
        monkeypatch.setenv("DO_NOT_TRACK", "1")
        assert decide(Config(usage_tracking=3), PRODUCT).level == Level.OFF

    def test_sources_list_every_source_consulted(self):
        """The decision names every source it looked at, one line each."""
        decision = decide(Config(usage_tracking=2), PRODUCT, env())
        names = [line.split(":", 1)[0] for line in decision.sources]
        assert names == [
            "config",
            "DO_NOT_TRACK",
            "MINFLOW_USAGE_TRACKING",
            "MINFLOW_USAGE_TRACKING_ENDPOINT",
            "saved setting for minflow",
            "saved setting for all products",
            "MINFLOW_USAGE_TRACKING_DEBUG",
            "MINFLOW_USAGE_TRACKING_OTEL",
        ]
        assert decision.sources[0] == "config: 2 (components)"


class TestOffConsultsNothing:
    def test_level_zero_reads_no_consent_variable(self):
        """At level 0 no tracking variable is looked up; only the log folder is computed."""
        environ = _RecordingEnviron(env(DO_NOT_TRACK="garbage", MINFLOW_USAGE_TRACKING="garbage"))
        decision = decide(Config(), PRODUCT, environ)
        assert decision.level == Level.OFF
        assert set(environ.seen) <= {"XDG_STATE_HOME"}

    def test_level_zero_with_a_log_path_reads_nothing_at_all(self, tmp_path):
        """With Config.log_path set, a level-0 decision touches no environment variable."""
        environ = _RecordingEnviron(env())
        decide(Config(log_path=tmp_path / "log.jsonl"), PRODUCT, environ)
        assert environ.seen == []

    def test_level_zero_does_not_open_the_settings_file(self):
        """An unreadable settings file is not even opened at level 0: no warning, no error."""
        environ = env()
        settings_file(environ).parent.mkdir(parents=True)
        settings_file(environ).write_text("{corrupt")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            decision = decide(Config(usage_tracking=0), PRODUCT, environ)
        assert caught == []
        assert decision.sources == ("config: 0 (off) -> nothing else consulted",)

    def test_off_by_env_does_not_open_the_settings_file(self):
        """Once DO_NOT_TRACK says off, the settings file is not read (no warning for it)."""
        environ = env(DO_NOT_TRACK="1")
        settings_file(environ).parent.mkdir(parents=True)
        settings_file(environ).write_text("{corrupt")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            decision = decide(Config(usage_tracking=3), PRODUCT, environ)
        assert caught == []
        assert "saved settings: not read (already off)" in decision.sources


class TestDoNotTrack:
    @pytest.mark.parametrize("value", DNT_OFF)
    def test_set_means_off(self, value):
        """DO_NOT_TRACK set to anything but empty, 0 or false turns a level-3 run off."""
        decision = decide(Config(usage_tracking=3), PRODUCT, env(DO_NOT_TRACK=value))
        assert decision.level == Level.OFF
        assert decision.decided_by == "DO_NOT_TRACK"
        assert f"DO_NOT_TRACK: {value!r} -> 0 (off)" in decision.sources

    @pytest.mark.parametrize("value", DNT_NO_CEILING)
    def test_empty_zero_or_false_leave_the_level(self, value):
        """DO_NOT_TRACK empty, 0 or false (any case, any spaces) sets no ceiling."""
        decision = decide(Config(usage_tracking=3), PRODUCT, env(DO_NOT_TRACK=value))
        assert decision.level == Level.EXECUTION
        assert decision.decided_by == "config"


class TestProductVariable:
    @pytest.mark.parametrize(("value", "ceiling"), LEVEL_SPELLINGS)
    @pytest.mark.parametrize("configured", [Level.BASIC, Level.EXECUTION])
    def test_every_spelling(self, value, ceiling, configured):
        """Each accepted spelling gives its ceiling; the run uses the lower of it and config."""
        decision = decide(
            Config(usage_tracking=configured), PRODUCT, env(MINFLOW_USAGE_TRACKING=value)
        )
        expected = configured if ceiling is None else min(configured, ceiling)
        assert decision.level == expected
        lowered = ceiling is not None and ceiling < configured
        assert decision.decided_by == ("MINFLOW_USAGE_TRACKING" if lowered else "config")

    @pytest.mark.parametrize("value", LEVEL_GARBAGE)
    def test_garbage_means_off_with_one_warning(self, value):
        """An unreadable value turns tracking off and warns, naming the variable and choices."""
        with pytest.warns(TrackingSettingWarning) as caught:
            decision = decide(Config(usage_tracking=3), PRODUCT, env(MINFLOW_USAGE_TRACKING=value))
        assert decision.level == Level.OFF
        assert decision.decided_by == "MINFLOW_USAGE_TRACKING"
        assert len(caught) == 1
        message = str(caught[0].message)
        assert f"MINFLOW_USAGE_TRACKING={value!r}" in message
        assert "0-3, off/false/no, on/true/yes" in message

    def test_warning_is_given_once_per_value(self):
        """The same unreadable value warns once per process; a different one warns again."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                decide(Config(usage_tracking=1), PRODUCT, env(MINFLOW_USAGE_TRACKING="maybe"))
            decide(Config(usage_tracking=1), PRODUCT, env(MINFLOW_USAGE_TRACKING="perhaps"))
        assert [type(w.message) for w in caught] == [TrackingSettingWarning] * 2

    def test_never_raises_when_warnings_are_errors(self, caplog):
        """A host running with -W error gets no exception; the warning goes to the logger."""
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            decision = decide(Config(usage_tracking=3), PRODUCT, env(MINFLOW_USAGE_TRACKING="x"))
        assert decision.level == Level.OFF
        assert [r.levelno for r in caplog.records if r.name == "telemetry_sdk"] == [logging.WARNING]

    def test_name_is_derived_from_the_product(self):
        """Upper-cased, non-alphanumerics as '_': Min-Flow reads MIN_FLOW_USAGE_TRACKING."""
        decision = decide(Config(usage_tracking=3), DASHED, env(MIN_FLOW_USAGE_TRACKING="1"))
        assert decision.level == Level.BASIC
        other = decide(Config(usage_tracking=3), DASHED, env(MINFLOW_USAGE_TRACKING="0"))
        assert other.level == Level.EXECUTION

    def test_another_products_variable_does_not_apply(self):
        """OTHER_USAGE_TRACKING=0 does not touch minflow."""
        decision = decide(Config(usage_tracking=3), PRODUCT, env(OTHER_USAGE_TRACKING="0"))
        assert decision.level == Level.EXECUTION


class TestEndpoint:
    def test_env_override_beats_config_and_product(self):
        """<PRODUCT>_USAGE_TRACKING_ENDPOINT replaces Config.endpoint and Product.endpoint."""
        config = Config(usage_tracking=1, endpoint="udp://127.0.0.1:1111")
        environ = env(MINFLOW_USAGE_TRACKING_ENDPOINT=" udp://127.0.0.1:2222 ")
        decision = decide(config, PRODUCT, environ)
        assert decision.endpoint == Endpoint("127.0.0.1", 2222)
        assert decision.endpoint_source == "MINFLOW_USAGE_TRACKING_ENDPOINT"
        assert decision.level == Level.BASIC

    def test_config_beats_product(self):
        """Without the variable, Config.endpoint replaces Product.endpoint."""
        config = Config(usage_tracking=1, endpoint="udp://127.0.0.1:1111")
        decision = decide(config, PRODUCT, env())
        assert (decision.endpoint, decision.endpoint_source) == (
            Endpoint("127.0.0.1", 1111),
            "config",
        )

    def test_product_endpoint_by_default(self):
        """With no override anywhere, messages go to the product's endpoint."""
        decision = decide(
            Config(usage_tracking=1), PRODUCT, env(MINFLOW_USAGE_TRACKING_ENDPOINT="")
        )
        assert (decision.endpoint, decision.endpoint_source) == (PRODUCT.endpoint, "product")

    @pytest.mark.parametrize(
        "value", ["tracking.example.org:1", "udp://host", "udp://host:0", "http://h:1", "udp://:5"]
    )
    def test_invalid_override_turns_tracking_off(self, value):
        """An invalid endpoint variable means off for the run, with a warning: never misroute."""
        config = Config(usage_tracking=3, endpoint="udp://127.0.0.1:1111")
        with pytest.warns(TrackingSettingWarning, match="MINFLOW_USAGE_TRACKING_ENDPOINT"):
            decision = decide(config, PRODUCT, env(MINFLOW_USAGE_TRACKING_ENDPOINT=value))
        assert decision.level == Level.OFF
        assert decision.decided_by == "MINFLOW_USAGE_TRACKING_ENDPOINT"
        assert decision.endpoint == Endpoint("127.0.0.1", 1111)


class TestPreviewMode:
    @pytest.mark.parametrize("value", DEBUG_ON)
    def test_on_spellings(self, value):
        """1/true/yes/on (any case) turn preview mode on without changing the level."""
        decision = decide(
            Config(usage_tracking=2), PRODUCT, env(MINFLOW_USAGE_TRACKING_DEBUG=value)
        )
        assert decision.debug
        assert decision.level == Level.COMPONENTS

    @pytest.mark.parametrize("value", DEBUG_OFF)
    def test_off_spellings(self, value):
        """Empty, 0/false/no/off leave preview mode off."""
        decision = decide(
            Config(usage_tracking=2), PRODUCT, env(MINFLOW_USAGE_TRACKING_DEBUG=value)
        )
        assert not decision.debug

    def test_garbage_means_preview_with_a_warning(self):
        """An unreadable switch errs on the side that sends nothing: preview mode."""
        with pytest.warns(TrackingSettingWarning, match="MINFLOW_USAGE_TRACKING_DEBUG"):
            decision = decide(
                Config(usage_tracking=2), PRODUCT, env(MINFLOW_USAGE_TRACKING_DEBUG="verbose")
            )
        assert decision.debug


class TestSavedSettings:
    def test_product_ceiling(self):
        """A saved ceiling for the product lowers its level."""
        environ = env()
        save(environ, {"minflow": Level.BASIC})
        decision = decide(Config(usage_tracking=3), PRODUCT, environ)
        assert (decision.level, decision.decided_by) == (Level.BASIC, "saved setting for minflow")

    def test_all_products_ceiling(self):
        """A saved ceiling for all products lowers every product."""
        environ = env()
        save(environ, {"*": Level.OFF})
        decision = decide(Config(usage_tracking=3), PRODUCT, environ)
        assert decision.level == Level.OFF
        assert decision.decided_by == "saved setting for all products"

    def test_other_products_setting_does_not_apply(self):
        """Disabling another product leaves this one alone."""
        environ = env()
        save(environ, {"otherflow": Level.OFF})
        assert decide(Config(usage_tracking=3), PRODUCT, environ).level == Level.EXECUTION

    @pytest.mark.parametrize("key", ["min-flow", "min_flow"])
    def test_names_match_like_environment_variables(self, key):
        """Case, '-' and '_' do not matter, as for MIN_FLOW_USAGE_TRACKING."""
        environ = env()
        save(environ, {key: Level.OFF})
        assert decide(Config(usage_tracking=3), DASHED, environ).level == Level.OFF

    @pytest.mark.parametrize(
        "content",
        [
            b"{corrupt",
            b"[]",
            b'{"version": 2, "ceilings": {}}',
            b'{"version": 1, "ceilings": 0}',
            b'{"version": 1, "ceilings": {"minflow": 7}}',
            b"\xff\xfe",
            b"",
        ],
    )
    def test_unreadable_file_means_off_with_a_warning(self, content):
        """A corrupt settings file is treated as disabled, with a warning naming the file."""
        environ = env()
        path = settings_file(environ)
        path.parent.mkdir(parents=True)
        path.write_bytes(content)
        with pytest.warns(TrackingSettingWarning, match="settings file") as caught:
            decision = decide(Config(usage_tracking=3), PRODUCT, environ)
        assert str(path) in str(caught[0].message)
        assert (decision.level, decision.decided_by) == (Level.OFF, "saved settings")

    def test_settings_file_that_is_a_folder_means_off(self):
        """A settings path that cannot be read as a file is treated as disabled."""
        environ = env()
        settings_file(environ).mkdir(parents=True)
        with pytest.warns(TrackingSettingWarning, match="cannot be read"):
            decision = decide(Config(usage_tracking=3), PRODUCT, environ)
        assert decision.level == Level.OFF

    def test_relative_xdg_config_home_is_ignored(self, tmp_path, monkeypatch):
        """A relative XDG_CONFIG_HOME is not used (XDG spec); ~/.config is read instead."""
        monkeypatch.setenv("HOME", str(tmp_path))
        monkeypatch.chdir(tmp_path)
        relative = tmp_path / "rel" / "telemetry-sdk"
        relative.mkdir(parents=True)
        (relative / "settings.json").write_text('{"version": 1, "ceilings": {"*": 0}}')
        environ = env(XDG_CONFIG_HOME="rel")
        assert decide(Config(usage_tracking=3), PRODUCT, environ).level == Level.EXECUTION
        save(env(XDG_CONFIG_HOME=str(tmp_path / ".config")), {"*": Level.OFF})
        assert decide(Config(usage_tracking=3), PRODUCT, environ).level == Level.OFF


#: Values each outside source may take in the property test (None: unset).
_DNT_VALUES = st.sampled_from([None, *DNT_OFF, *DNT_NO_CEILING])
_LEVEL_VALUES = st.sampled_from([None, *(v for v, _ in LEVEL_SPELLINGS), *LEVEL_GARBAGE])
_SAVED = st.sampled_from([None, *Level])


def _expected_dnt(value: str | None) -> Level | None:
    return None if value is None or value in DNT_NO_CEILING else Level.OFF


def _expected_level_var(value: str | None) -> Level | None:
    if value is None:
        return None
    return dict(LEVEL_SPELLINGS).get(value, Level.OFF)


class TestMinimumWins:
    @pytest.mark.parametrize(
        ("configured", "extra", "saved", "level", "decided_by"),
        [
            (3, {"MINFLOW_USAGE_TRACKING": "2"}, {"*": 1}, 1, "saved setting for all products"),
            (3, {"MINFLOW_USAGE_TRACKING": "1"}, {"*": 2}, 1, "MINFLOW_USAGE_TRACKING"),
            (2, {"MINFLOW_USAGE_TRACKING": "3"}, {"minflow": 3}, 2, "config"),
            (
                3,
                {"MINFLOW_USAGE_TRACKING": "on"},
                {"minflow": 2, "*": 3},
                2,
                "saved setting for minflow",
            ),
            (3, {"DO_NOT_TRACK": "1", "MINFLOW_USAGE_TRACKING": "3"}, {}, 0, "DO_NOT_TRACK"),
            (1, {"DO_NOT_TRACK": "0", "MINFLOW_USAGE_TRACKING": "yes"}, {"*": 3}, 1, "config"),
            (3, {"MINFLOW_USAGE_TRACKING": "0"}, {"*": 0}, 0, "MINFLOW_USAGE_TRACKING"),
        ],
    )
    def test_combinations(self, configured, extra, saved, level, decided_by):
        """The lowest source wins and is named; ties go to the earlier source."""
        environ = env(**extra)
        if saved:
            save(environ, {k: Level(v) for k, v in saved.items()})
        decision = decide(Config(usage_tracking=configured), PRODUCT, environ)
        assert (decision.level, decision.decided_by) == (level, decided_by)

    @settings(max_examples=150, deadline=None)
    @given(
        configured=st.sampled_from(list(Level)),
        dnt=_DNT_VALUES,
        level_var=_LEVEL_VALUES,
        saved_product=_SAVED,
        saved_all=_SAVED,
    )
    def test_nothing_outside_the_code_raises_the_level(
        self, configured, dnt, level_var, saved_product, saved_all
    ):
        """For any mix of outside settings, the level is exactly the minimum of all sources."""
        with tempfile.TemporaryDirectory() as home:
            environ = {"XDG_CONFIG_HOME": home, "XDG_STATE_HOME": home}
            if dnt is not None:
                environ["DO_NOT_TRACK"] = dnt
            if level_var is not None:
                environ["MINFLOW_USAGE_TRACKING"] = level_var
            ceilings = {}
            if saved_product is not None:
                ceilings["minflow"] = saved_product
            if saved_all is not None:
                ceilings["*"] = saved_all
            save(environ, ceilings)
            decision = decide_quietly(Config(usage_tracking=configured), PRODUCT, environ)
        outside = [_expected_dnt(dnt), _expected_level_var(level_var), saved_product, saved_all]
        expected = min([configured, *(c for c in outside if c is not None)])
        if configured == Level.OFF:
            expected = Level.OFF
        assert decision.level == expected
        assert decision.level <= configured


class TestTrackerExposesTheDecision:
    def test_level_and_reason(self, monkeypatch):
        """A tracker reports its effective level and which source set it."""
        monkeypatch.setenv("MINFLOW_USAGE_TRACKING", "1")
        tracker = UsageTracker(Config(usage_tracking=3), PRODUCT)
        assert tracker.level == Level.BASIC
        assert tracker.decision is not None
        assert tracker.decision.decided_by == "MINFLOW_USAGE_TRACKING"
        assert "MINFLOW_USAGE_TRACKING: '1' -> 1 (basic)" in tracker.decision.sources

    def test_do_not_track(self, monkeypatch):
        """With DO_NOT_TRACK set, a level-3 tracker is at level 0 and says why."""
        monkeypatch.setenv("DO_NOT_TRACK", "1")
        tracker = UsageTracker(Config(usage_tracking=3), PRODUCT)
        assert tracker.level == Level.OFF
        assert tracker.decision is not None
        assert tracker.decision.decided_by == "DO_NOT_TRACK"
