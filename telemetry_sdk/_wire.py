"""Protocol-1 messages: the one schema, the one cattrs converter, encode and decode.

The SDK encodes with this module and the collector decodes with it: one definition serves
both sides. A datagram is the byte ``1`` followed by compact JSON (Parsl protocol 1); the
collector also accepts the older bare-JSON form that starts with ``{``. Every rule and limit
the models check lives in ``_wire_rules``; this module says how messages map to JSON.

``cattrs`` is imported the first time a converter is needed, not when this module is
imported, so that ``import telemetry_sdk`` stays cheap for the host.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from attrs import field, frozen

from . import _wire_rules as rules
from ._errors import DecodeError
from ._wire_rules import MAX_DATAGRAM, RuleError
from .typing import Scalar

if TYPE_CHECKING:
    import cattrs

__all__ = [
    "MAX_DATAGRAM",
    "CloseMessage",
    "Component",
    "Message",
    "ProgressMessage",
    "StartMessage",
    "converter",
    "decode",
    "encode",
    "to_wire",
]

PROTOCOL_1 = b"1"


# -- field validators (run on construction, so on both the sending and the receiving side) --
# Each asks ``_wire_rules`` and raises its ``RuleError``: the reason becomes the collector's
# metric label, the message the detail of ``DecodeError``.


def _check_correlator(_: object, __: object, value: Any) -> None:
    if not rules.is_uuid4(value):
        msg = f"correlator must be a lower-case UUID version 4, got {value!r}"
        raise RuleError("correlator", msg)


def _check_product(_: object, __: object, value: Any) -> None:
    if value is not None and not rules.is_product_name(value):
        msg = f"product name must be 1-40 letters, digits, '_' or '-' (not 'python'), got {value!r}"
        raise RuleError("schema", msg)


def _check_named(instance: Any, _: Any, value: Any) -> None:
    """Product and version travel as one key, ``<product>_v``: both are set or neither."""
    if (value is None) != (instance.product is None):
        msg = "product and version are sent as one '<product>_v' key: set both or neither"
        raise RuleError("schema", msg)


def _check_token(_: object, attribute: Any, value: Any) -> None:
    if value is not None and not rules.is_token(value):
        msg = f"{attribute.name} must be 1-64 printable characters without spaces, got {value!r}"
        raise RuleError("schema", msg)


def _check_level(_: object, __: object, value: Any) -> None:
    if value is not None and not rules.is_level(value):
        msg = f"tracking_level must be 1, 2 or 3, got {value!r}"
        raise RuleError("schema", msg)


def _check_project_name(_: object, __: object, value: Any) -> None:
    if value is not None and not rules.is_project_name(value):
        msg = f"project_name must be 1-{rules.PROJECT_NAME_MAX} printable characters, got {value!r}"
        raise RuleError("schema", msg)


def _check_epoch(_: object, attribute: Any, value: Any) -> None:
    if value is not None and not rules.is_epoch(value):
        msg = f"{attribute.name} must be whole epoch seconds from 2020 to 2099, got {value!r}"
        raise RuleError("timestamp", msg)


def _check_duration(_: object, __: object, value: Any) -> None:
    if not rules.is_duration(value):
        msg = f"execution_time must be 0 to {rules.DURATION_MAX:.0f} seconds, got {value!r}"
        raise RuleError("duration", msg)


def _check_execution_level(_: object, __: object, value: Any) -> None:
    if not rules.is_level(value) or value != 3:
        msg = f"a progress message is sent at tracking_level 3 only, got {value!r}"
        raise RuleError("schema", msg)


def _check_count(_: object, attribute: Any, value: Any) -> None:
    if not rules.is_count(value):
        msg = f"{attribute.name} must be a whole number 0 to {rules.COUNT_MAX}, got {value!r}"
        raise RuleError("count", msg)


def _check_sequence(_: object, __: object, value: Any) -> None:
    if not rules.is_count(value) or value < 1:
        msg = f"heartbeat must be a whole number 1 to {rules.COUNT_MAX}, got {value!r}"
        raise RuleError("count", msg)


def _check_fails(instance: Any, attribute: Any, value: Any) -> None:
    _check_count(instance, attribute, value)
    if value > instance.app_count:
        msg = f"app_fails ({value}) is more than app_count ({instance.app_count})"
        raise RuleError("fails_over_count", msg)


def _check_bool(_: object, attribute: Any, value: Any) -> None:
    if not isinstance(value, bool):
        msg = f"{attribute.name} must be true or false, got {value!r}"
        raise RuleError("schema", msg)


def _check_components(_: object, __: object, value: Any) -> None:
    if value is None:
        return
    if not all(isinstance(item, Component) for item in value):
        msg = "components must be Component instances"
        raise TypeError(msg)
    if len(value) > rules.COMPONENTS_MAX:
        msg = f"a message lists at most {rules.COMPONENTS_MAX} components, got {len(value)}"
        raise RuleError("schema", msg)


def _check_component_name(_: object, __: object, value: Any) -> None:
    if not rules.is_component_name(value):
        msg = f"component name must be 1-{rules.COMPONENT_NAME_MAX} printable characters"
        raise RuleError("schema", msg)


def _check_info(_: object, __: object, value: Mapping[str, Scalar]) -> None:
    problem = rules.info_problem(value)
    if problem is not None:
        raise problem


def _freeze_info(value: Mapping[str, Scalar] | None) -> dict[str, Scalar]:
    return dict(value or {})


def _to_components(value: Any) -> tuple[Component, ...] | None:
    return None if value is None else tuple(value)


def _to_component_tuple(value: Any) -> tuple[Component, ...]:
    # A Python function, not the builtin ``tuple``: attrs inspects a converter's signature,
    # and for a builtin that means compiling the tokenizer's regex (about 4 ms at import).
    return tuple(value)


# -- the models --


@frozen
class Component:
    """One configured component: its qualified class name and optional safe details.

    On the wire: the bare name, or ``{"c": name, **info}`` when there are details.
    """

    name: str = field(validator=_check_component_name)
    info: Mapping[str, Scalar] = field(factory=dict, converter=_freeze_info, validator=_check_info)


@frozen(kw_only=True)
class StartMessage:
    """Sent when a run starts, at levels 1-3."""

    correlator: str = field(validator=_check_correlator)
    product: str = field(validator=_check_product)
    version: str = field(validator=_check_token)
    python_v: str = field(validator=_check_token)
    platform_system: str = field(validator=_check_token)
    tracking_level: int = field(validator=_check_level)
    project_name: str | None = field(default=None, validator=_check_project_name)
    #: ``None`` at level 1 (the key is absent); a tuple from level 2 on.
    components: tuple[Component, ...] | None = field(
        default=None, converter=_to_components, validator=_check_components
    )
    components_truncated: bool = field(default=False, validator=_check_bool)
    #: Whole epoch seconds; level 3 only.
    start: int | None = field(default=None, validator=_check_epoch)


@frozen(kw_only=True)
class CloseMessage:
    """Sent when a run ends, at level 3.

    Unlike Parsl's, it repeats product, version and level, so it is useful on its own;
    the collector still accepts Parsl's close, which carries none of them.
    """

    correlator: str = field(validator=_check_correlator)
    product: str | None = field(default=None, validator=_check_product)
    version: str | None = field(default=None, validator=[_check_token, _check_named])
    tracking_level: int | None = field(default=None, validator=_check_level)
    project_name: str | None = field(default=None, validator=_check_project_name)
    #: Whole epoch seconds.
    end: int = field(validator=_check_epoch)
    #: Seconds, from a monotonic clock, rounded to milliseconds.
    execution_time: float = field(converter=rules.as_duration, validator=_check_duration)
    #: The first entry is ``{"c": product, "app_count": N, "app_fails": M}``.
    components: tuple[Component, ...] = field(
        default=(), converter=_to_component_tuple, validator=_check_components
    )
    components_truncated: bool = field(default=False, validator=_check_bool)


@frozen(kw_only=True)
class ProgressMessage:
    """Sent by a level-3 run still open after each ``Config.heartbeat_interval`` (a heartbeat).

    It repeats product, version and level, so it is useful on its own: a run killed before
    its close (a batch job at its wall-time limit) still reports its counts up to its last
    heartbeat. Not part of Parsl's protocol; the ``heartbeat`` key tells it apart.
    """

    correlator: str = field(validator=_check_correlator)
    product: str = field(validator=_check_product)
    version: str = field(validator=[_check_token, _check_named])
    tracking_level: int = field(validator=_check_execution_level)
    project_name: str | None = field(default=None, validator=_check_project_name)
    #: The heartbeat's number in its run: 1, 2, 3 ...
    heartbeat: int = field(validator=_check_sequence)
    #: Seconds since the run started, from a monotonic clock, rounded to milliseconds.
    execution_time: float = field(converter=rules.as_duration, validator=_check_duration)
    #: Apps run so far, and how many of them failed.
    app_count: int = field(validator=_check_count)
    app_fails: int = field(validator=_check_fails)


Message: TypeAlias = StartMessage | ProgressMessage | CloseMessage


# -- the converter --


def _passthrough(value: Any, _: Any) -> Any:
    return value


def _structure_component(value: Any, _: Any) -> Component:
    if isinstance(value, str):
        return Component(value)
    if isinstance(value, dict) and isinstance(value.get("c"), str):
        info = {k: v for k, v in value.items() if k != "c"}
        return Component(value["c"], info)
    msg = "a component is a class name or an object with a 'c' name"
    raise TypeError(msg)


def _structure_component_list(
    each: Callable[[Any, Any], tuple[Component, ...]], value: Any, type_: Any
) -> tuple[Component, ...]:
    if not isinstance(value, list):
        msg = f"components must be a list, got {type(value).__name__}"
        raise TypeError(msg)
    return each(value, type_)


def _unstructure_component(component: Component) -> str | dict[str, Scalar]:
    if not component.info:
        return component.name
    return {"c": component.name, **component.info}


def _split_product_key(data: Any) -> Any:
    """Turn the ``<name>_v`` key into ``product`` and ``version`` fields."""
    if not isinstance(data, dict):
        msg = f"a message is a JSON object, got {type(data).__name__}"
        raise TypeError(msg)
    if "product" in data or "version" in data:
        msg = "'product' and 'version' are not wire keys; use '<name>_v'"
        raise ValueError(msg)
    keys = [k for k in data if k.endswith("_v") and k != "python_v"]
    if not keys:
        return data
    if len(keys) > 1:
        msg = f"a message names one product version, got {sorted(keys)}"
        raise ValueError(msg)
    out = dict(data)
    out["version"] = out.pop(keys[0])
    out["product"] = keys[0][:-2]
    return out


def _make_converter(*, detailed_validation: bool = True) -> cattrs.Converter:
    import cattrs
    from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=detailed_validation)
    # Primitive fields pass through as parsed: every field's attrs validator checks its type
    # (a bool is never taken for an int, a string never for a number), so the check runs once,
    # the same way when the SDK builds a message and when the collector receives one.
    for primitive in (str, int, float, bool):
        conv.register_structure_hook(primitive, _passthrough)
    conv.register_structure_hook(Component, _structure_component)
    # A component list is a JSON list: a string or an object is not iterated into names.
    each_component = conv.get_structure_hook(tuple[Component, ...])
    conv.register_structure_hook_func(
        lambda type_: type_ == tuple[Component, ...],
        functools.partial(_structure_component_list, each_component),
    )
    conv.register_unstructure_hook(Component, _unstructure_component)

    for cls in (StartMessage, ProgressMessage, CloseMessage):
        renames: dict[str, Any] = {}
        if cls is not ProgressMessage:
            renames["components_truncated"] = override(omit_if_default=True)
        if cls is StartMessage:
            renames["platform_system"] = override(rename="platform.system")
        generated_structure = make_dict_structure_fn(
            cls, conv, _cattrs_forbid_extra_keys=True, **renames
        )
        generated_unstructure = make_dict_unstructure_fn(
            cls, conv, _cattrs_omit_if_default=False, **_omit_none(cls, renames)
        )
        conv.register_structure_hook(cls, _with_product_split(generated_structure))
        conv.register_unstructure_hook(cls, _with_product_key(generated_unstructure))
    return conv


def _omit_none(cls: type, renames: dict[str, Any]) -> dict[str, Any]:
    """Optional fields are left out of the JSON when unset, as Parsl does."""
    import attrs
    from cattrs.gen import override

    out = dict(renames)
    names = {a.name for a in attrs.fields(cls)}
    for name in ("project_name", "components", "start", "product", "version", "tracking_level"):
        if name in names:
            out[name] = override(
                omit_if_default=True, rename=getattr(out.get(name), "rename", None)
            )
    return out


def _with_product_split(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def structure(data: Any, cls: Any) -> Any:
        return fn(_split_product_key(data), cls)

    return structure


def _with_product_key(fn: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    def unstructure(message: Any) -> dict[str, Any]:
        data = fn(message)
        out: dict[str, Any] = {"correlator": data.pop("correlator")}
        product = data.pop("product", None)
        version = data.pop("version", None)
        if product is not None:
            out[f"{product}_v"] = version
        out.update(data)
        return out

    return unstructure


@functools.cache
def converter() -> cattrs.Converter:
    """The one converter shared by the SDK (unstructure) and the collector (structure)."""
    return _make_converter()


# -- encode / decode --


def _dumps(data: dict[str, Any]) -> bytes:
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return PROTOCOL_1 + text.encode("utf-8")


def to_wire(message: Message) -> dict[str, Any]:
    """The JSON object of ``message``, in the documented key order.

    The sending side uses this instead of ``converter().unstructure``: it gives the same
    object (a Hypothesis test holds the two to it) without importing cattrs or building the
    converter, which would cost the host's process about 15 ms on its first message. The
    schema itself, the attrs classes and their validators, stays the one definition.
    """
    data: dict[str, Any] = {"correlator": message.correlator}
    if message.product is not None:
        data[f"{message.product}_v"] = message.version
    if isinstance(message, StartMessage):
        data["python_v"] = message.python_v
        data["platform.system"] = message.platform_system
    if message.tracking_level is not None:
        data["tracking_level"] = message.tracking_level
    if message.project_name is not None:
        data["project_name"] = message.project_name
    if isinstance(message, ProgressMessage):
        data["heartbeat"] = message.heartbeat
        data["execution_time"] = message.execution_time
        data["app_count"] = message.app_count
        data["app_fails"] = message.app_fails
        return data
    if isinstance(message, CloseMessage):
        data["end"] = message.end
        data["execution_time"] = message.execution_time
    if message.components is not None and (message.components or isinstance(message, StartMessage)):
        data["components"] = [_unstructure_component(c) for c in message.components]
    if message.components_truncated:
        data["components_truncated"] = True
    if isinstance(message, StartMessage) and message.start is not None:
        data["start"] = message.start
    return data


def encode(message: Message) -> tuple[bytes, Message]:
    """Encode ``message`` as one protocol-1 datagram of at most ``MAX_DATAGRAM`` bytes.

    If the components would push it over, trailing components are dropped and
    ``components_truncated`` is set. Returns the datagram and the message it encodes
    (the same object unless something was dropped).
    """
    payload = _dumps(to_wire(message))
    if len(payload) <= MAX_DATAGRAM:
        return payload, message
    if isinstance(message, ProgressMessage):  # every field is bounded: well under the limit
        msg = f"progress message is {len(payload)} bytes"
        raise ValueError(msg)
    components = list(message.components or ())
    while components:
        components.pop()
        trimmed = _evolve(message, components=tuple(components), components_truncated=True)
        payload = _dumps(to_wire(trimmed))
        if len(payload) <= MAX_DATAGRAM:
            return payload, trimmed
    msg = f"message is {len(payload)} bytes even without components"
    raise ValueError(msg)


def _evolve(message: Message, **changes: Any) -> Message:
    import attrs

    return attrs.evolve(message, **changes)


def _reject_constant(name: str) -> Any:
    msg = f"{name} is not valid JSON"
    raise ValueError(msg)


def decode(datagram: bytes, *, received: int | None = None) -> Message:
    """Decode and validate one datagram; raise ``DecodeError`` with a reason and detail.

    ``received`` is the receiver's clock (epoch seconds; default: now): a ``start`` or ``end``
    more than a day after it is refused.
    """
    if not datagram:
        raise DecodeError("size", "empty datagram")
    if len(datagram) > MAX_DATAGRAM:
        raise DecodeError("size", f"{len(datagram)} bytes, more than {MAX_DATAGRAM}")
    first = datagram[:1]
    if first == PROTOCOL_1:
        body = datagram[1:]
    elif first == b"{":
        body = datagram
    else:
        raise DecodeError("protocol", f"unknown protocol byte {first!r}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("encoding", f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise DecodeError("json", f"not JSON: {exc}") from None
    if rules.may_have_duplicate_keys(body, rules.key_total(data)):
        repeated = rules.duplicate_key(text)
        if repeated is not None:
            raise DecodeError("duplicate_key", f"key {repeated!r} appears twice in one object")
    if not isinstance(data, dict):
        raise DecodeError("schema", f"a message is a JSON object, got {type(data).__name__}")
    cls: type[Message] = _message_class(data)
    conv = converter()
    try:
        result: Message = conv.structure(data, cls)
    except Exception as exc:
        raise _decode_error(exc) from None
    when = int(time.time()) if received is None else received
    for name in ("start", "end"):
        value = getattr(result, name, None)
        if value is not None and not rules.not_after_receipt(value, when):
            detail = f"{name} {value} is more than a day after the receipt time {when}"
            raise DecodeError("timestamp", detail)
    return result


def _message_class(data: Mapping[str, Any]) -> type[Message]:
    """Which message a JSON object claims to be: ``end`` marks a close, ``heartbeat`` progress."""
    if "end" in data:
        return CloseMessage
    if "heartbeat" in data:
        return ProgressMessage
    return StartMessage


def _decode_error(exc: BaseException) -> DecodeError:
    import cattrs

    if isinstance(exc, cattrs.ClassValidationError | cattrs.ForbiddenExtraKeysError):
        extra = _forbidden_keys(exc)
        if extra:
            return DecodeError("unknown_field", f"unknown keys {sorted(extra)}")
        detail = "; ".join(cattrs.transform_error(exc, format_exception=_say))
        return DecodeError(_rule_reason(exc), detail)
    return DecodeError(_rule_reason(exc), str(exc) or type(exc).__name__)


def _rule_reason(exc: BaseException) -> str:
    """The reason of the first ``RuleError`` in ``exc`` (depth first), else ``schema``."""
    if isinstance(exc, RuleError):
        return exc.reason
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            reason = _rule_reason(sub)
            if reason != "schema":
                return reason
    return "schema"


def _say(exc: BaseException, type_: Any) -> str:
    """Say what a validator said; fall back to cattrs' wording for everything else."""
    from cattrs.v import format_exception

    if isinstance(exc, ValueError) and str(exc):
        return str(exc)
    return format_exception(exc, type_)


def _forbidden_keys(exc: BaseException) -> set[str]:
    import cattrs

    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return set(exc.extra_fields)
    if isinstance(exc, BaseExceptionGroup):
        found: set[str] = set()
        for sub in exc.exceptions:
            found |= _forbidden_keys(sub)
        return found
    return set()
