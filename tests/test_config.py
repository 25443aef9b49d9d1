"""Config and Product: bad values raise a clear ConfigurationError at construction."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from telemetry_sdk import Config, ConfigurationError, Endpoint, Level, Product, TelemetryError
from telemetry_sdk._config import parse_endpoint


class TestUsageTracking:
    def test_default_is_off(self):
        """A Config built with no arguments tracks nothing."""
        assert Config().usage_tracking is Level.OFF

    @pytest.mark.parametrize("value", [0, 1, 2, 3, Level.OFF, Level.EXECUTION])
    def test_accepts_ints_and_levels(self, value):
        """Every level 0-3 is accepted as an int or a Level and stored as a Level."""
        config = Config(usage_tracking=value)
        assert config.usage_tracking == int(value)
        assert isinstance(config.usage_tracking, Level)

    @pytest.mark.parametrize("value", [True, False, 1.0, "1", "3", None, -1, 4, 10**9, [1]])
    def test_rejects_everything_else(self, value):
        """Bools, floats, strings, None and out-of-range ints raise ConfigurationError."""
        with pytest.raises(ConfigurationError, match=r"usage_tracking must be an int 0-3"):
            Config(usage_tracking=value)

    def test_error_is_a_value_error_under_the_root(self):
        """ConfigurationError is both the package's root exception and a ValueError."""
        with pytest.raises(ConfigurationError) as info:
            Config(usage_tracking=True)
        assert isinstance(info.value, ValueError)
        assert isinstance(info.value, TelemetryError)

    def test_is_frozen(self):
        """A Config cannot be changed after construction, so the level cannot drift."""
        config = Config(usage_tracking=1)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            config.usage_tracking = 3  # type: ignore[misc]


class TestProjectName:
    def test_stripped(self):
        """Surrounding white space is removed."""
        assert Config(project_name="  my-project \n").project_name == "my-project"

    def test_none_allowed(self):
        """No project name means an anonymous run."""
        assert Config(usage_tracking=1).project_name is None

    @pytest.mark.parametrize("value", ["", "   ", "x" * 65, "a\x00b", "a\nb", "tab\there", 5, b"x"])
    def test_rejects_bad_names(self, value):
        """Empty, over-long, control characters and non-strings are rejected."""
        with pytest.raises(ConfigurationError, match="project_name"):
            Config(project_name=value)

    @pytest.mark.parametrize("value", ["x" * 64, "Équipe Ω", "team/alpha 2"])
    def test_accepts_printable_names(self, value):
        """Up to 64 printable characters, Unicode included."""
        assert Config(project_name=value).project_name == value


class TestComponentsAndPaths:
    def test_components_become_a_tuple(self):
        """A list of components is copied into a tuple, so later changes to it do not leak in."""
        items = [object(), object()]
        config = Config(components=items)
        items.append(object())
        assert len(config.components) == 2

    @pytest.mark.parametrize("value", ["executor", 5, b"x"])
    def test_components_must_be_a_collection(self, value):
        """A string or a number is not a list of components."""
        with pytest.raises(ConfigurationError, match="components"):
            Config(components=value)

    def test_log_path_expands_user(self):
        """``~`` in log_path means the user's home."""
        assert Config(log_path="~/x.jsonl").log_path == Path.home() / "x.jsonl"

    def test_empty_log_path_rejected(self):
        """An empty log path is an error, not the current directory."""
        with pytest.raises(ConfigurationError, match="log_path"):
            Config(log_path="")


class TestEndpoint:
    @pytest.mark.parametrize(
        ("text", "host", "port"),
        [
            ("udp://tracking.example.org:50077", "tracking.example.org", 50077),
            ("udp://127.0.0.1:9", "127.0.0.1", 9),
            ("udp://[::1]:50077", "::1", 50077),
            (" udp://localhost:1/ ", "localhost", 1),
        ],
    )
    def test_parses(self, text, host, port):
        """udp://host:port is parsed, IPv6 literals in brackets."""
        assert parse_endpoint(text) == Endpoint(host, port)

    @pytest.mark.parametrize(
        "text",
        [
            "tracking.example.org:50077",
            "http://x:1",
            "udp://x",
            "udp://x:0",
            "udp://x:65536",
            "udp://:50077",
            "udp://[::1:5",
            "udp://a b:5",
            "udp://x:-1",
        ],
    )
    def test_rejects(self, text):
        """Anything but udp://host:port with a port 1-65535 raises ConfigurationError."""
        with pytest.raises(ConfigurationError, match="endpoint"):
            parse_endpoint(text)

    def test_round_trips_as_text(self):
        """str(Endpoint) gives back the udp:// form, brackets included for IPv6."""
        for text in ("udp://example.org:1", "udp://[::1]:2"):
            assert str(parse_endpoint(text)) == text

    def test_config_override(self):
        """Config.endpoint is parsed at construction."""
        assert Config(endpoint="udp://127.0.0.1:5").endpoint == Endpoint("127.0.0.1", 5)
        with pytest.raises(ConfigurationError):
            Config(endpoint="127.0.0.1:5")


class TestProduct:
    def test_valid(self):
        """A product declares name, version and a default endpoint."""
        product = Product(name="minflow", version="1.4.0", endpoint="udp://127.0.0.1:50077")
        assert product.endpoint == Endpoint("127.0.0.1", 50077)

    @pytest.mark.parametrize("name", ["", "1flow", "min flow", "x" * 41, "a.b", None])
    def test_bad_names(self, name):
        """Product names are short identifiers: they become a JSON key and an env var."""
        with pytest.raises(ConfigurationError, match="Product name"):
            Product(name=name, version="1", endpoint="udp://127.0.0.1:1")

    @pytest.mark.parametrize("version", ["", "1 0", "x" * 65, None, 1])
    def test_bad_versions(self, version):
        """Versions are 1-64 printable characters without spaces."""
        with pytest.raises(ConfigurationError, match="version"):
            Product(name="p", version=version, endpoint="udp://127.0.0.1:1")

    @pytest.mark.parametrize(
        ("name", "prefix"),
        [("minflow", "MINFLOW_USAGE_TRACKING"), ("my-tool_2", "MY_TOOL_2_USAGE_TRACKING")],
    )
    def test_env_prefix(self, name, prefix):
        """The env var name is the product name upper-cased, non-alphanumerics as '_'."""
        assert Product(name=name, version="1", endpoint="udp://h:1").env_prefix == prefix
