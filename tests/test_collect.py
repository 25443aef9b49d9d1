"""What each level contributes, and the component walk that can never hurt the host."""

from __future__ import annotations

import dataclasses
import platform
import uuid
from typing import Any

import attrs
import pytest

from telemetry_sdk import Config, Level, Product
from telemetry_sdk._collect import (
    MAX_COMPONENTS,
    build_close,
    build_start,
    describe,
    walk_components,
)
from telemetry_sdk._wire import MAX_DATAGRAM, Component, decode, encode

PRODUCT = Product(name="minflow", version="1.4.0", endpoint="udp://127.0.0.1:50077")
M = __name__


def names(components: tuple[Component, ...]) -> list[str]:
    return [c.name.removeprefix(M + ".") for c in components]


@attrs.define
class Launcher:
    cores: int = 4


@attrs.define
class Provider:
    launcher: Launcher = attrs.Factory(Launcher)
    label: str = "p"

    def usage_information(self) -> dict[str, Any]:
        return {"blocks": 3, "exclusive": True}


@dataclasses.dataclass
class Executor:
    provider: Provider = dataclasses.field(default_factory=Provider)
    extra: list[object] = dataclasses.field(default_factory=list)


class Plain:
    """A plain class: named when it is a root, never descended into."""

    def __init__(self) -> None:
        self.provider = Provider()


class RaisingInfo:
    def usage_information(self) -> dict[str, Any]:
        raise RuntimeError("cannot describe myself")


class BadInfo:
    def usage_information(self) -> Any:
        return {"path": ["/home/alice"], "ok": 1}


class NotAMapping:
    def usage_information(self) -> Any:
        return ["a", "b"]


class NonFiniteInfo:
    def usage_information(self) -> Any:
        return {"ratio": float("nan")}


class ParslCrash:
    """Parsl's crash: an __init__ parameter that is not stored as an attribute."""

    def __init__(self, address: str = "x") -> None:
        self._address = address

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name}")


@attrs.define
class Node:
    child: object = None


@attrs.define(slots=True)
class Unset:
    value: int = attrs.field(init=False)


class TestWalk:
    def test_depth_first_flat_list_of_qualified_names(self):
        """Components are listed depth first with module-qualified class names."""
        found, truncated = walk_components((Executor(),))
        assert names(found) == ["Executor", "Provider", "Launcher"]
        assert found[0].name == f"{M}.Executor"
        assert found[1].info == {"blocks": 3, "exclusive": True}
        assert not truncated

    def test_lists_are_walked_and_scalars_skipped(self):
        """Lists inside records are walked; strings, numbers and plain objects are not named."""
        executor = Executor(extra=[Launcher(), "text", 3, Plain()])
        found, _ = walk_components([executor])
        assert names(found) == ["Executor", "Provider", "Launcher", "Launcher"]

    def test_plain_root_is_named_but_not_entered(self):
        """A root of any type is named; its attributes are never read."""
        found, _ = walk_components([Plain(), ParslCrash()])
        assert names(found) == ["Plain", "ParslCrash"]

    def test_self_reference_is_named_once(self):
        """A cycle ends the walk instead of recursing."""
        node = Node()
        node.child = node
        other = Node(child=[node, node])
        found, truncated = walk_components([node, other])
        assert names(found) == ["Node", "Node"]
        assert not truncated

    def test_depth_is_limited(self):
        """A deep chain is cut at the depth limit."""
        chain = Node()
        for _ in range(50):
            chain = Node(child=chain)
        found, _ = walk_components([chain], max_depth=4)
        assert len(found) == 5

    def test_component_count_is_capped(self):
        """More than the cap of components sets truncated."""
        found, truncated = walk_components([Launcher() for _ in range(MAX_COMPONENTS + 10)])
        assert len(found) == MAX_COMPONENTS
        assert truncated

    def test_unset_slot_is_skipped(self):
        """An attrs field that was never set does not break the walk."""
        found, _ = walk_components([Unset()])
        assert names(found) == ["Unset"]

    def test_roots_that_are_not_a_list_are_ignored(self):
        """Anything but a list or tuple of roots gives no components."""
        assert walk_components(None) == ((), False)
        assert walk_components(42) == ((), False)


class TestDescribe:
    @pytest.mark.parametrize("obj", [RaisingInfo(), BadInfo(), NotAMapping(), NonFiniteInfo()])
    def test_invalid_usage_information_gives_the_name_only(self, obj):
        """A component whose details raise or are not scalars is reported by name only."""
        component = describe(obj)
        assert component.info == {}
        assert component.name == f"{M}.{type(obj).__qualname__}"

    def test_details_that_look_like_a_path_are_refused(self):
        """A detail value that is not a short scalar string is never sent."""
        assert describe(BadInfo()).info == {}

    def test_reserved_key_c_is_refused(self):
        """A detail named 'c' would clash with the wire's name key: name only."""

        class UsesC:
            def usage_information(self) -> dict[str, int]:
                return {"c": 1}

        assert describe(UsesC()).info == {}

    def test_local_class_names_are_kept(self):
        """Classes defined in functions keep their qualified name."""

        class Local:
            pass

        assert describe(Local()).name.endswith("test_local_class_names_are_kept.<locals>.Local")


class TestLevels:
    def config(self, level: int) -> Config:
        return Config(usage_tracking=level, project_name="proj", components=[Executor()])

    def test_level_1_has_versions_and_no_components(self):
        """Level 1 carries product, Python and platform versions only."""
        message = build_start(PRODUCT, self.config(1), Level.BASIC, str(uuid.uuid4()), 1.7e9)
        assert message.version == "1.4.0"
        assert message.python_v == platform.python_version()
        assert message.platform_system == platform.system()
        assert message.components is None
        assert message.start is None

    def test_level_2_adds_components(self):
        """Level 2 adds the component walk but no start time."""
        message = build_start(PRODUCT, self.config(2), Level.COMPONENTS, str(uuid.uuid4()), 1.7e9)
        assert names(message.components or ()) == ["Executor", "Provider", "Launcher"]
        assert message.start is None

    def test_level_3_adds_start_time(self):
        """Level 3 adds whole epoch seconds."""
        message = build_start(PRODUCT, self.config(3), Level.EXECUTION, str(uuid.uuid4()), 1.7e9)
        assert message.start == 1_700_000_000

    def test_close_puts_app_counts_first(self):
        """The close message starts its components with the product's app counts."""
        message = build_close(
            PRODUCT,
            self.config(3),
            str(uuid.uuid4()),
            end=1.7e9,
            execution_time=1.23456,
            app_count=7,
            app_fails=2,
        )
        assert message.components[0] == Component("minflow", {"app_count": 7, "app_fails": 2})
        assert names(message.components[1:]) == ["Executor", "Provider", "Launcher"]
        assert message.execution_time == 1.235
        assert (message.tracking_level, message.version) == (3, "1.4.0")

    def test_oversized_component_list_is_truncated_to_one_datagram(self):
        """Many long component names are cut to fit 1,232 bytes and say so."""
        many = [type("C" * 150 + str(i), (), {})() for i in range(40)]
        config = Config(usage_tracking=3, project_name="p" * 64, components=many)
        correlator = str(uuid.uuid4())
        start, _ = encode(build_start(PRODUCT, config, Level.EXECUTION, correlator, 1.7e9))
        close, _ = encode(
            build_close(
                PRODUCT, config, correlator, end=1.7e9, execution_time=1, app_count=1, app_fails=0
            )
        )
        for datagram in (start, close):
            assert len(datagram) <= MAX_DATAGRAM
            message = decode(datagram)
            assert message.components_truncated
        closed = decode(close)
        assert closed.components[0].info == {"app_count": 1, "app_fails": 0}
