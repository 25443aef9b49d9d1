"""``<PRODUCT>_USAGE_TRACKING_OTEL``: what its value asks for, the one rule for reading it.

Unset, empty, ``0``/``off``/``false``/``no``: no spans. ``1`` (or ``on``/``true``/``yes``): spans
to the process's global ``TracerProvider``. ``module:function``: spans to the provider that
function sets up (called once per process). ``file``: spans as JSON lines beside the local log.
Anything else is not a span setting: no spans, and one warning when a run would have had one.

``_consent`` reads the variable into the run's decision (and ``telemetry-sdk status`` shows it);
``_otel`` sets the spans up. Nothing here imports ``opentelemetry``.
"""

from __future__ import annotations

import re
from typing import Literal

from attrs import frozen

__all__ = ["SPANS_FILE", "SUFFIX", "SpanSetting", "SpanSettingError", "parse"]

#: The variable is ``<PRODUCT>_USAGE_TRACKING`` followed by this.
SUFFIX = "_OTEL"
#: The file the ``file`` setting writes, in the local log's folder.
SPANS_FILE = "spans.jsonl"
_OFF = frozenset({"", "0", "off", "false", "no"})
_GLOBAL = frozenset({"1", "on", "true", "yes"})
_HOOK = re.compile(r"([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*):([A-Za-z_]\w*)")


class SpanSettingError(ValueError):
    """The value is not a span setting."""


@frozen
class SpanSetting:
    """Where a run's spans go."""

    #: ``global``, ``file`` or ``hook``.
    kind: Literal["global", "file", "hook"]
    #: For ``hook``: the module and the function to call.
    module: str = ""
    function: str = ""

    def describe(self) -> str:
        """What it means, for ``status`` and the decision's sources."""
        if self.kind == "global":
            return "a span per run, to the process's global TracerProvider"
        if self.kind == "file":
            return f"a span per run, as JSON lines in {SPANS_FILE} beside the local log"
        return f"a span per run, to the TracerProvider set up by {self.module}:{self.function}()"


def parse(value: str | None) -> SpanSetting | None:
    """The setting ``value`` asks for; None for no spans.

    Raises ``SpanSettingError`` for a value that is none of the accepted ones.
    """
    if value is None:
        return None
    word = value.strip()
    lowered = word.lower()
    if lowered in _OFF:
        return None
    if lowered in _GLOBAL:
        return SpanSetting("global")
    if lowered == "file":
        return SpanSetting("file")
    hook = _HOOK.fullmatch(word)
    if hook is None:
        msg = "not a span setting (use 1, file or module:function)"
        raise SpanSettingError(msg)
    return SpanSetting("hook", hook.group(1), hook.group(2))
