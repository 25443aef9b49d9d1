"""The wire models: Hypothesis round-trips, the 1,232-byte limit, and Parsl's own datagrams."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry_sdk import DecodeError, Product
from telemetry_sdk import _wire_rules as rules
from telemetry_sdk._wire import (
    MAX_DATAGRAM,
    CloseMessage,
    Component,
    ProgressMessage,
    StartMessage,
    converter,
    decode,
    encode,
    to_wire,
)

#: The receipt time the decoding tests pass: 2026-11-20, well inside the accepted years.
RECEIVED = 1_795_305_900

correlators = st.uuids(version=4).map(str)
product_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,39}", fullmatch=True)
tokens = st.from_regex(r"[\x21-\x7e]{1,64}", fullmatch=True)


def printable(max_size: int) -> st.SearchStrategy[str]:
    return st.text(min_size=1, max_size=max_size).filter(str.isprintable)


project_names = printable(64).map(str.strip).filter(lambda s: bool(s))
info_keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}", fullmatch=True).filter(
    lambda k: k not in ("c", "app_count", "app_fails")
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=200).filter(str.isprintable),
)
counts = st.integers(0, rules.COUNT_MAX).flatmap(
    lambda n: st.fixed_dictionaries({"app_count": st.just(n), "app_fails": st.integers(0, n)})
)
components = st.builds(
    lambda name, info, reported: Component(name, {**info, **reported}),
    name=printable(200),
    info=st.dictionaries(info_keys, scalars, max_size=6),
    reported=st.just({}) | counts,
)
epochs = st.integers(rules.EPOCH_MIN, RECEIVED + rules.FUTURE_SLACK)


@st.composite
def start_messages(draw: st.DrawFn) -> StartMessage:
    return StartMessage(
        correlator=draw(correlators),
        product=draw(product_names),
        version=draw(tokens),
        python_v=draw(tokens),
        platform_system=draw(tokens),
        tracking_level=draw(st.integers(1, 3)),
        project_name=draw(st.none() | project_names),
        components=draw(st.none() | st.lists(components, max_size=8).map(tuple)),
        components_truncated=draw(st.booleans()),
        start=draw(st.none() | epochs),
    )


@st.composite
def close_messages(draw: st.DrawFn) -> CloseMessage:
    # Product and version travel as one key, "<product>_v": both or neither.
    named = draw(st.booleans())
    return CloseMessage(
        correlator=draw(correlators),
        product=draw(product_names) if named else None,
        version=draw(tokens) if named else None,
        tracking_level=draw(st.none() | st.integers(1, 3)),
        project_name=draw(st.none() | project_names),
        end=draw(epochs),
        execution_time=draw(st.floats(0.0, rules.DURATION_MAX)),
        components=draw(st.lists(components, max_size=8).map(tuple)),
        components_truncated=draw(st.booleans()),
    )


@st.composite
def progress_messages(draw: st.DrawFn) -> ProgressMessage:
    apps = draw(st.integers(0, rules.COUNT_MAX))
    return ProgressMessage(
        correlator=draw(correlators),
        product=draw(product_names),
        version=draw(tokens),
        tracking_level=3,
        project_name=draw(st.none() | project_names),
        heartbeat=draw(st.integers(1, rules.COUNT_MAX)),
        execution_time=draw(st.floats(0.0, rules.DURATION_MAX)),
        app_count=apps,
        app_fails=draw(st.integers(0, apps)),
    )


messages = st.one_of(start_messages(), close_messages(), progress_messages())


# No per-example deadline: the first example imports cattrs, and CI machines are noisy.
class TestRoundTrip:
    @given(components)
    @settings(deadline=None)
    def test_component_structure_unstructure(self, component):
        """A component survives the converter unchanged."""
        conv = converter()
        assert conv.structure(conv.unstructure(component), Component) == component

    @given(messages)
    @settings(deadline=None)
    def test_message_structure_unstructure(self, message):
        """Every message survives structure(unstructure(x)) unchanged."""
        conv = converter()
        assert conv.structure(conv.unstructure(message), type(message)) == message

    @given(messages)
    @settings(max_examples=300, deadline=None)
    def test_sender_object_is_the_converters(self, message):
        """The sender's cattrs-free to_wire() gives exactly what the one converter gives."""
        assert to_wire(message) == converter().unstructure(message)

    def test_keys_are_sent_in_the_documented_order(self):
        """Start and close keys go out in the order the README documents."""
        correlator = "7c886a00-1111-4222-8333-123456789abc"
        start = StartMessage(
            correlator=correlator, product="minflow", version="1", python_v="3.11",
            platform_system="Linux", tracking_level=3, project_name="p",
            components=(Component("a.B"),), components_truncated=True, start=1795305801,
        )  # fmt: skip
        close = CloseMessage(
            correlator=correlator, product="minflow", version="1", tracking_level=3,
            project_name="p", end=1795305802, execution_time=1.5,
            components=(Component("minflow", {"app_count": 1, "app_fails": 0}),),
        )  # fmt: skip
        assert list(to_wire(start)) == [
            "correlator", "minflow_v", "python_v", "platform.system", "tracking_level",
            "project_name", "components", "components_truncated", "start",
        ]  # fmt: skip
        assert list(to_wire(close)) == [
            "correlator", "minflow_v", "tracking_level", "project_name", "end",
            "execution_time", "components",
        ]  # fmt: skip

    @given(messages)
    @settings(max_examples=200, deadline=None)
    def test_message_encode_decode(self, message):
        """decode(encode(x)) gives back the message that was encoded, within 1,232 bytes."""
        datagram, sent = encode(message)
        assert len(datagram) <= MAX_DATAGRAM
        assert datagram[:1] == b"1"
        assert decode(datagram, received=RECEIVED) == sent
        if sent != message:
            assert sent.components_truncated
            assert sent.components == (message.components or ())[: len(sent.components or ())]

    @given(messages)
    @settings(deadline=None)
    def test_optional_keys_are_absent_when_unset(self, message):
        """Unset optional fields are left out of the JSON, as Parsl does."""
        data = converter().unstructure(message)
        assert ("project_name" in data) == (message.project_name is not None)
        truncated = getattr(message, "components_truncated", False)
        assert ("components_truncated" in data) == truncated
        if isinstance(message, StartMessage):
            assert ("start" in data) == (message.start is not None)
            assert ("components" in data) == (message.components is not None)
        assert next(iter(data)) == "correlator"


class TestModelChecks:
    def test_a_product_named_python_is_refused(self):
        """'python_v' is the Python version's key, so no product may be named 'python'."""
        with pytest.raises(ValueError, match="python"):
            StartMessage(
                correlator="7c886a00-1111-4222-8333-444455556666",
                product="python",
                version="1.0",
                python_v="3.11.7",
                platform_system="Linux",
                tracking_level=1,
            )
        with pytest.raises(ValueError, match="python"):
            Product(name="python", version="1.0", endpoint="udp://127.0.0.1:50077")

    def test_close_needs_product_and_version_together(self):
        """A close with a version but no product could not be encoded, so it is refused."""
        with pytest.raises(ValueError, match="both"):
            CloseMessage(
                correlator="7c886a00-1111-4222-8333-444455556666",
                version="1.0",
                end=1_795_305_802,
                execution_time=1.0,
            )


class TestTruncation:
    def test_components_are_dropped_from_the_end_to_fit(self):
        """An oversized component list is cut from the end and flagged, never fragmented."""
        many = tuple(Component(f"pkg.module.Class{i:03d}" + "x" * 60) for i in range(60))
        message = StartMessage(
            correlator="7c886a00-1111-4222-8333-444455556666",
            product="minflow",
            version="1.4.0",
            python_v="3.11.7",
            platform_system="Linux",
            tracking_level=2,
            components=many,
        )
        datagram, sent = encode(message)
        assert len(datagram) <= MAX_DATAGRAM
        assert sent.components_truncated
        assert json.loads(datagram[1:])["components_truncated"] is True
        kept = sent.components or ()
        assert 0 < len(kept) < len(many)
        assert kept == many[: len(kept)]
        assert decode(datagram) == sent

    def test_a_message_that_fits_is_sent_whole(self):
        """A small message is encoded as it is."""
        message = CloseMessage(
            correlator="7c886a00-1111-4222-8333-444455556666",
            end=1_795_305_802,
            execution_time=1.5,
            components=(Component("minflow", {"app_count": 1, "app_fails": 0}),),
        )
        datagram, sent = encode(message)
        assert sent is message
        assert "components_truncated" not in json.loads(datagram[1:])

    def test_oversized_datagrams_are_rejected_on_receipt(self):
        """The receiving side refuses anything over 1,232 bytes."""
        with pytest.raises(ValueError, match="size"):
            decode(b"1" + b" " * MAX_DATAGRAM)


# Datagrams exactly as Parsl sends them (Python's default json separators), from the reference.
PARSL_START = (
    b'1{"correlator": "7c886a00-1111-4222-8333-444455556666", "parsl_v": "2025.03.17", '
    b'"python_v": "3.11.7", "platform.system": "Linux", "tracking_level": 3, '
    b'"project_name": "probe-level-3", "components": [{"c": "parsl.config.Config", '
    b'"executors_len": 1, "dependency_resolver": false}, '
    b'"parsl.executors.threads.ThreadPoolExecutor"], "start": 1795305801}'
)
PARSL_CLOSE = (
    b'1{"correlator": "7c886a00-1111-4222-8333-444455556666", "end": 1795305802, '
    b'"execution_time": 1, "components": [{"c": "parsl.dataflow.dflow.DataFlowKernel", '
    b'"app_count": 4, "app_fails": 2}, {"c": "parsl.config.Config", "executors_len": 1, '
    b'"dependency_resolver": false}, "parsl.executors.threads.ThreadPoolExecutor"], '
    b'"project_name": "probe-level-3"}'
)


class TestParslDatagrams:
    def test_parsl_start_decodes(self):
        """A real Parsl level-3 start datagram decodes to the same facts."""
        message = decode(PARSL_START)
        assert isinstance(message, StartMessage)
        assert (message.product, message.version, message.tracking_level) == (
            "parsl",
            "2025.03.17",
            3,
        )
        assert message.project_name == "probe-level-3"
        assert message.start == 1_795_305_801
        assert message.components == (
            Component("parsl.config.Config", {"executors_len": 1, "dependency_resolver": False}),
            Component("parsl.executors.threads.ThreadPoolExecutor"),
        )

    def test_parsl_close_decodes_without_version_or_level(self):
        """Parsl's close carries no version or level; it still decodes, with whole seconds."""
        message = decode(PARSL_CLOSE)
        assert isinstance(message, CloseMessage)
        assert (message.product, message.version, message.tracking_level) == (None, None, None)
        assert message.execution_time == 1.0
        assert message.components[0].info == {"app_count": 4, "app_fails": 2}

    def test_pre_2024_bare_json_decodes(self):
        """The older form without the leading protocol byte is accepted."""
        assert decode(PARSL_START[1:]) == decode(PARSL_START)

    def test_reencoding_a_parsl_message_round_trips(self):
        """A decoded Parsl message re-encodes to an equivalent compact datagram."""
        message = decode(PARSL_START)
        datagram, _ = encode(message)
        assert decode(datagram) == message
        assert json.loads(datagram[1:]) == json.loads(PARSL_START[1:])


VALID_START = {
    "correlator": "7c886a00-1111-4222-8333-123456789abc",
    "minflow_v": "1.4.0",
    "python_v": "3.11.7",
    "platform.system": "Linux",
    "tracking_level": 2,
}


def datagram(**changes: object) -> bytes:
    return b"1" + json.dumps({**VALID_START, **changes}).encode()


class TestRejections:
    @pytest.mark.parametrize("components", ["abc", {"x": 1}, 5, [5], [["a"]], [{"n": 1}]])
    def test_components_must_be_a_list_of_names_or_objects(self, components):
        """A string or an object is not taken for a list of component names."""
        with pytest.raises(DecodeError) as info:
            decode(datagram(components=components))
        assert info.value.reason == "schema"
        assert "$.components" in info.value.detail

    @pytest.mark.parametrize(
        ("changes", "field", "reason"),
        [
            ({"tracking_level": True}, "tracking_level", "schema"),
            ({"tracking_level": "3"}, "tracking_level", "schema"),
            ({"tracking_level": 4}, "tracking_level", "schema"),
            ({"correlator": "not-a-uuid"}, "correlator", "correlator"),
            ({"project_name": " padded "}, "project_name", "schema"),
            ({"project_name": "a\u0000b"}, "project_name", "schema"),
            ({"start": -5}, "start", "timestamp"),
            ({"start": 1.5}, "start", "timestamp"),
            ({"python_v": 3.11}, "python_v", "schema"),
        ],
    )
    def test_bad_values_name_the_field(self, changes, field, reason):
        """Each rejection says which field was wrong, so a sender can fix it."""
        with pytest.raises(DecodeError) as info:
            decode(datagram(**changes))
        assert info.value.reason == reason
        assert field in info.value.detail

    def test_unknown_keys_are_their_own_reason(self):
        """A key the schema does not know is rejected as unknown_field, naming the key."""
        with pytest.raises(DecodeError) as info:
            decode(datagram(hostname="build-7"))
        assert info.value.reason == "unknown_field"
        assert "hostname" in info.value.detail

    @pytest.mark.parametrize(
        ("raw", "reason"),
        [
            (b"", "size"),
            (b"2{}", "protocol"),
            (b"1\xff\xfe", "encoding"),
            (b"1{", "json"),
            (b'1{"end": NaN}', "json"),
            (b"1[1, 2]", "schema"),
        ],
    )
    def test_framing_errors(self, raw, reason):
        """Empty, wrong protocol, non-UTF-8, non-JSON and non-object datagrams each get a reason."""
        with pytest.raises(DecodeError) as info:
            decode(raw)
        assert info.value.reason == reason


def close_datagram(*, counts: object = None, raw: bytes | None = None, **changes: object) -> bytes:
    """A close datagram; ``counts`` replaces the first component's details."""
    data: dict[str, object] = {
        "correlator": "7c886a00-1111-4222-8333-123456789abc",
        "minflow_v": "1.4.0",
        "tracking_level": 3,
        "end": RECEIVED - 10,
        "execution_time": 2.5,
        "components": [{"c": "minflow", "app_count": 3, "app_fails": 1}],
    }
    if counts is not None:
        data["components"] = [{"c": "minflow", **counts}]  # type: ignore[dict-item]
    data.update(changes)
    return raw if raw is not None else b"1" + json.dumps(data).encode()


UUID1 = "2f1e5a40-af61-11ef-9cd2-0242ac120002"


class TestValueBounds:
    @pytest.mark.parametrize(
        ("payload", "reason"),
        [
            (close_datagram(counts={"app_count": -5, "app_fails": 0}), "count"),
            (close_datagram(counts={"app_count": 2**64, "app_fails": 0}), "count"),
            (close_datagram(counts={"app_count": 2**31, "app_fails": 0}), "count"),
            (close_datagram(counts={"app_count": 2**53, "app_fails": 2**53}), "count"),
            (close_datagram(counts={"app_count": True, "app_fails": 0}), "count"),
            (close_datagram(counts={"app_count": 3.0, "app_fails": 0}), "count"),
            (close_datagram(counts={"app_count": 3, "app_fails": False}), "count"),
            (close_datagram(counts={"app_count": 3, "app_fails": 4}), "fails_over_count"),
            (close_datagram(correlator=UUID1), "correlator"),
            (close_datagram(correlator="00000000-0000-0000-0000-000000000000"), "correlator"),
            (close_datagram(correlator="7c886a00-1111-4222-c333-123456789abc"), "correlator"),
            (close_datagram(correlator="7C886A00-1111-4222-8333-123456789ABC"), "correlator"),
            (close_datagram(end=86_400), "timestamp"),
            (close_datagram(end=1_577_836_799), "timestamp"),
            (close_datagram(end=4_070_908_800), "timestamp"),
            (close_datagram(end=RECEIVED + 86_401), "timestamp"),
            (close_datagram(end=True), "timestamp"),
            (datagram(start=0), "timestamp"),
            (datagram(start=4_070_908_800), "timestamp"),
            (datagram(start=RECEIVED + 86_401), "timestamp"),
            (close_datagram(execution_time=-0.5), "duration"),
            (close_datagram(execution_time=31_536_000.5), "duration"),
            (close_datagram(execution_time=10**30), "duration"),
            (close_datagram(execution_time=True), "duration"),
            (
                close_datagram(raw=b'1{"correlator": "7c886a00-1111-4222-8333-123456789abc", '
                               b'"end": 1795305802, "end": 1795305803, "execution_time": 1}'),
                "duplicate_key",
            ),
            (
                close_datagram(raw=b'1{"correlator":"7c886a00-1111-4222-8333-123456789abc",'
                               b'"end":1795305802,"execution_time":1,"components":'
                               b'[{"c":"minflow","app_count":1,"app_fails":0,"app_fails":5}]}'),
                "duplicate_key",
            ),
            (datagram(components=[f"c{i}" for i in range(65)]), "schema"),
        ],
    )  # fmt: skip
    def test_out_of_bounds_values_are_rejected_with_their_reason(self, payload, reason):
        """Each value outside the schema's bounds is refused with its own reason."""
        with pytest.raises(DecodeError) as info:
            decode(payload, received=RECEIVED)
        assert info.value.reason == reason
        assert info.value.reason in rules.REASONS

    @pytest.mark.parametrize(
        "payload",
        [
            close_datagram(counts={"app_count": 0, "app_fails": 0}),
            close_datagram(counts={"app_count": 2**31 - 1, "app_fails": 2**31 - 1}),
            close_datagram(end=rules.EPOCH_MIN),
            close_datagram(end=RECEIVED + 86_400),
            close_datagram(execution_time=31_536_000),
            close_datagram(execution_time=0),
            datagram(start=RECEIVED + 86_400),
            datagram(components=[f"c{i}" for i in range(64)]),
            datagram(project_name="a: b", components=[{"c": "x.Y", "k": "1:2"}]),
        ],
    )
    def test_values_at_the_bounds_are_accepted(self, payload):
        """The bounds themselves are valid values."""
        assert decode(payload, received=RECEIVED).correlator

    def test_the_receipt_time_defaults_to_now(self):
        """Without a receipt time, a time more than a day ahead of the clock is refused."""
        import time

        ahead = int(time.time()) + 2 * 86_400
        with pytest.raises(DecodeError, match="timestamp"):
            decode(datagram(start=ahead))
        assert decode(datagram(start=int(time.time()))).start is not None

    def test_bounds_apply_when_building_a_message(self):
        """The SDK cannot even build a message whose counts break the schema."""
        with pytest.raises(ValueError, match="app_fails"):
            Component("minflow", {"app_count": 1, "app_fails": 2})
        with pytest.raises(ValueError, match="app_count"):
            Component("minflow", {"app_count": 2**31, "app_fails": 0})


class TestRules:
    @given(st.uuids())
    def test_uuid4_is_version_4_with_the_rfc_4122_variant(self, value):
        """Exactly the canonical text of version-4 RFC 4122 UUIDs is a correlator."""
        import uuid

        expected = value.version == 4 and value.variant == uuid.RFC_4122
        assert rules.is_uuid4(str(value)) == expected
        assert not rules.is_uuid4(str(value).upper()) or str(value) == str(value).upper()
        assert not rules.is_uuid4(value.hex)

    @given(st.text(max_size=40) | st.from_regex(r"[0-9a-f-]{36}", fullmatch=True))
    def test_uuid4_refuses_other_text(self, text):
        """Any text is a correlator only if it is the canonical form of a UUID4."""
        import uuid

        try:
            parsed = uuid.UUID(text)
        except ValueError:
            parsed = None
        expected = (
            parsed is not None
            and str(parsed) == text
            and parsed.version == 4
            and parsed.variant == uuid.RFC_4122
        )
        assert rules.is_uuid4(text) == expected

    @given(st.text(max_size=70) | product_names | tokens | info_keys)
    def test_name_rules_match_their_patterns(self, text):
        """The regex-free name rules accept exactly what their documented patterns describe."""
        import re

        assert rules.is_product_name(text) == (
            re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,39}", text, re.ASCII) is not None
            and text != "python"
        )
        assert rules.is_token(text) == (re.fullmatch(r"[\x21-\x7e]{1,64}", text) is not None)
        assert rules.is_info_key(text) == (
            re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}", text, re.ASCII) is not None
            and text != "c"
        )

    @given(st.recursive(
        st.none() | st.integers() | st.text(alphabet=":ab\"{}", max_size=4),
        lambda inner: st.lists(inner, max_size=3)
        | st.lists(st.tuples(st.sampled_from(["a", "b", "a:b", ":"]), inner), max_size=4),
        max_leaves=8,
    ))  # fmt: skip
    def test_the_colon_count_never_misses_a_duplicate_key(self, tree):
        """When the cheap check says 'no duplicate keys', the exact check agrees."""

        def dump(node: object) -> str:
            if isinstance(node, list) and node and isinstance(node[0], tuple):
                return "{" + ",".join(f"{json.dumps(k)}:{dump(v)}" for k, v in node) + "}"
            if isinstance(node, list):
                return "[" + ",".join(dump(v) for v in node) + "]"
            return json.dumps(node)

        text = dump(tree)
        data = json.loads(text)
        if not rules.may_have_duplicate_keys(text.encode(), rules.key_total(data)):
            assert rules.duplicate_key(text) is None

    def test_an_exact_check_names_the_repeated_key(self):
        """The exact check names the key that appears twice, at any depth."""
        assert rules.duplicate_key('{"a": [{"b": 1, "b": 2}]}') == "b"
        assert rules.duplicate_key('{"a": 1, "b": {"a": 2}}') is None

    def test_clamps_give_values_the_wire_takes(self):
        """The sender's clamps map any number into the schema's bounds."""
        assert [rules.clamp_count(n) for n in (-3, 0, 7, 2**53)] == [0, 0, 7, 2**31 - 1]
        assert rules.clamp_duration(-1.0) == 0.0
        assert rules.clamp_duration(1e12) == rules.DURATION_MAX
        assert rules.clamp_duration(float("nan")) == 0.0
        assert rules.clamp_duration(1.23456) == 1.235
