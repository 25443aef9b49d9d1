"""OpenTelemetry: each tracked run as one span, for users who opt in (as Ray's tracing hook).

``<PRODUCT>_USAGE_TRACKING_OTEL`` turns it on (its values are read by ``_otelsetting``);
unset, empty, ``0``/``off``/``false``/``no`` leave it off:

- ``1`` (or ``on``/``true``/``yes``): spans go to the process's global ``TracerProvider``;
- ``module:function``: ``function()`` is called once per process, with no arguments, to set
  one up (as Ray's ``_tracing_startup_hook``); if it returns a ``TracerProvider`` that one is
  used, else the global one;
- ``file``: a built-in provider of telemetry-sdk's own writes each span as one JSON line to
  ``spans.jsonl`` beside the local log (the global provider is left alone).

A run is one span, ``<product>.run``, from ``start()`` to ``close()`` (or the exit hook). Its
attributes are the start message's fields at the effective level under ``usage.`` (the
correlator always; component details as ``usage.component.<name>.<key>``), and, at level 3,
the close message's counts when it ends; each heartbeat (progress message) adds a
``usage.heartbeat`` event with its number, time and counts so far. Where the effective level
is 0 there is no span, and in preview mode (``<PRODUCT>_USAGE_TRACKING_DEBUG``) there is none
either: preview sends nothing anywhere, and an exporter would.

The span is created on the SDK's worker, when it builds the start message, with the start
time and the parent context (the host's current span) captured by ``start()`` on the calling
thread; ``close()`` ends it (setting the end time and counts), or leaves that to the worker if
the worker has not created it yet. The calling thread therefore pays one context look-up in
``start()`` and, in ``close()``, the ``Span.end()`` of the host's span processor: nothing for
a batching processor, an export for a simple one (the ``file`` hook's is one append).

A missing package, a hook that cannot be imported or raises, or a bad value turns only the
spans off, with one ``TrackingSettingWarning``; the messages are unaffected and the host never
sees an exception. Nothing imports ``opentelemetry`` unless the variable asks for spans.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from attrs import define, field

from . import _consent
from ._config import Product
from ._otelsetting import SPANS_FILE, SUFFIX, SpanSetting, SpanSettingError, parse
from ._wire_rules import clamp_duration

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer
    from opentelemetry.util.types import AttributeValue

    from ._wire import Message, ProgressMessage

__all__ = ["SUFFIX", "RunSpan", "run_span", "span_attributes"]

_INSTALL = "pip install 'telemetry-sdk[otel]'"

#: One tracer (or None: spans off) per (product, setting, spans file); set up once.
_tracers: dict[tuple[str, str, str], Tracer | None] = {}
_setup_lock = threading.Lock()


class _SpansOffError(Exception):
    """Spans cannot be produced; the message says why and what to do."""


def run_span(product: Product, value: str, log_path: Path | None) -> RunSpan | None:
    """The span of one run, or None when ``value`` says off or spans cannot be set up."""
    word = value.strip()
    spans_file = None if log_path is None else log_path.parent / SPANS_FILE
    key = (product.name, word, str(spans_file) if word.lower() == "file" else "")
    with _setup_lock:
        if key not in _tracers:
            _tracers[key] = _set_up(product, word, spans_file)
        tracer = _tracers[key]
    return None if tracer is None else RunSpan(tracer, f"{product.name}.run")


def _set_up(product: Product, word: str, spans_file: Path | None) -> Tracer | None:
    name = f"{product.env_prefix}{SUFFIX}"
    try:
        setting = parse(word)
        if setting is None:
            return None
        return _tracer(setting, spans_file, product.name)
    except (_SpansOffError, SpanSettingError) as exc:
        problem = f"{name}={word!r}: {exc}; spans are off (usage tracking is not affected)"
    except Exception as exc:  # the OTel SDK or a hook failed in a way we did not foresee
        problem = (
            f"{name}={word!r}: setting up spans failed ({type(exc).__name__}: {exc}); "
            "spans are off (usage tracking is not affected)"
        )
    _consent._warn(problem, (name, problem))
    return None


def _tracer(setting: SpanSetting, spans_file: Path | None, service: str) -> Tracer:
    try:
        from opentelemetry import trace
    except ImportError:
        msg = f"the OpenTelemetry API is not installed ({_INSTALL})"
        raise _SpansOffError(msg) from None
    provider: Any
    if setting.kind == "file":
        if spans_file is None:
            msg = (
                "the spans file goes beside the local log, and no log path is known (no home "
                "directory); set XDG_STATE_HOME, HOME or Config(log_path=...)"
            )
            raise _SpansOffError(msg)
        try:
            from ._spanfile import file_provider
        except ImportError:
            msg = f"the OpenTelemetry SDK is not installed ({_INSTALL})"
            raise _SpansOffError(msg) from None
        provider = file_provider(spans_file, service)
    elif setting.kind == "hook":
        provider = _call_hook(setting.module, setting.function)
    else:
        provider = trace.get_tracer_provider()
    return provider.get_tracer("telemetry_sdk")  # type: ignore[no-any-return]


#: What each ``module:function`` hook gave: a provider, or why spans are off. Called once.
_hooks: dict[str, object] = {}


def _call_hook(module: str, function: str) -> Any:
    """Call ``module:function()`` once per process; the provider it set up (or returned)."""
    key = f"{module}:{function}"
    if key not in _hooks:
        try:
            _hooks[key] = _run_hook(module, function)
        except _SpansOffError as exc:
            _hooks[key] = exc
    found = _hooks[key]
    if isinstance(found, _SpansOffError):
        raise found
    return found


def _run_hook(module: str, function: str) -> Any:
    import importlib

    from opentelemetry import trace

    try:
        hook: Callable[[], object] = getattr(importlib.import_module(module), function)
    except Exception as exc:
        msg = f"the hook cannot be imported ({type(exc).__name__}: {exc})"
        raise _SpansOffError(msg) from None
    try:
        returned = hook()
    except Exception as exc:
        msg = f"the hook raised {type(exc).__name__}: {exc}"
        raise _SpansOffError(msg) from None
    if callable(getattr(returned, "get_tracer", None)):
        return returned
    return trace.get_tracer_provider()


# -- one run's span --


@attrs.frozen
class _End:
    """How a run ended, kept until its span exists."""

    time_ns: int
    attributes: Mapping[str, AttributeValue]


@define(eq=False)
class RunSpan:
    """One run's span: begun on the calling thread, created on the worker, ended by close()."""

    tracer: Tracer
    name: str
    _lock: threading.Lock = field(init=False, factory=threading.Lock)
    _start_ns: int = field(init=False, default=0)
    _parent: Context | None = field(init=False, default=None)
    _span: Span | None = field(init=False, default=None)
    _end: _End | None = field(init=False, default=None)

    def begin(self, wall: float) -> None:
        """``start()``: remember the start time and the host's current context (cheap)."""
        from opentelemetry import context

        self._start_ns = int(wall * 1e9)
        self._parent = context.get_current()

    def built(self, message: Message) -> None:
        """The worker built one of the run's messages: start the span, or add a heartbeat."""
        from ._wire import ProgressMessage, StartMessage  # loaded on the worker already

        if isinstance(message, StartMessage):
            self.started(message)
        elif isinstance(message, ProgressMessage):
            self.heartbeat(message)

    def started(self, message: Message) -> None:
        """The worker: create the span with the start message's fields as attributes."""
        span = self.tracer.start_span(
            self.name,
            context=self._parent,
            start_time=self._start_ns,
            attributes=span_attributes(message),
        )
        with self._lock:
            self._span = span
            end = self._end
        if end is not None:
            _end_span(span, end)

    def heartbeat(self, message: ProgressMessage) -> None:
        """One ``usage.heartbeat`` event with the progress message's number, time and counts."""
        import time

        with self._lock:
            span = self._span
            ended = self._end is not None
        if span is None or ended:
            return
        attributes: dict[str, AttributeValue] = {
            "usage.heartbeat": message.heartbeat,
            "usage.execution_time": message.execution_time,
            "usage.app_count": message.app_count,
            "usage.app_fails": message.app_fails,
        }
        span.add_event("usage.heartbeat", attributes, timestamp=time.time_ns())

    def reset_after_fork(self) -> None:
        """In a forked child: a lock held by a parent's thread at the fork is never released."""
        self._lock = threading.Lock()

    def finish(
        self,
        wall: float,
        *,
        execution_time: float | None = None,
        app_count: int | None = None,
        app_fails: int | None = None,
    ) -> None:
        """``close()`` or the exit hook: end the span now, or as soon as the worker made it.

        At level 3 the close message's fields are given and become attributes too.
        """
        attributes: dict[str, AttributeValue] = {}
        if execution_time is not None and app_count is not None and app_fails is not None:
            attributes = {
                "usage.app_count": app_count,
                "usage.app_fails": app_fails,
                # Clamped and rounded as the close message's (``_collect.build_close``).
                "usage.execution_time": clamp_duration(execution_time),
                "usage.end": int(wall),
            }
        end = _End(int(wall * 1e9), attributes)
        with self._lock:
            if self._end is not None:
                return
            self._end = end
            span = self._span
        if span is not None:
            _end_span(span, end)


def _after_fork_in_child() -> None:
    global _setup_lock
    _setup_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _end_span(span: Span, end: _End) -> None:
    if end.attributes:
        span.set_attributes(end.attributes)
    span.end(end_time=max(end.time_ns, 0))


def span_attributes(message: Message) -> dict[str, AttributeValue]:
    """The message's fields as span attributes: ``usage.<field>``; components by name."""
    out: dict[str, AttributeValue] = {}
    for attribute in attrs.fields(type(message)):
        value = getattr(message, attribute.name)
        if value is None or (attribute.name == "components_truncated" and not value):
            continue  # as on the wire: absent fields and a false truncation flag are left out
        if attribute.name == "components":
            out["usage.components"] = [component.name for component in value]
            for component in value:
                for key, detail in component.info.items():
                    if detail is not None:
                        out[f"usage.component.{component.name}.{key}"] = detail
        elif isinstance(value, str | bool | int | float):
            out[f"usage.{attribute.name}"] = value
    return out
