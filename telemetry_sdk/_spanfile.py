"""The ``file`` span hook: a provider of telemetry-sdk's own that appends spans as JSON lines.

Each finished span is one line of ``ReadableSpan.to_json()`` (compact) in ``spans.jsonl``
beside the local log, appended with one ``write`` (``O_APPEND``, mode ``0o600``), the way the
local log is. The process's global ``TracerProvider`` is left alone. Importing this module
needs ``opentelemetry-sdk`` (``pip install 'telemetry-sdk[otel]'``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

__all__ = ["JsonLinesExporter", "file_provider"]


class JsonLinesExporter(SpanExporter):
    """Appends each span to ``path`` as one JSON line; an unwritable file is a failed export."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = "".join(span.to_json(indent=None) + "\n" for span in spans).encode("utf-8")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing is kept open."""


def file_provider(path: Path, service: str) -> TracerProvider:
    """A provider that writes every span it ends to ``path`` (one export per span end)."""
    # Only the service name (the product): no resource detectors, so no host details.
    provider = TracerProvider(
        resource=Resource({"service.name": service}),
        shutdown_on_exit=False,
    )
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(path)))
    return provider
