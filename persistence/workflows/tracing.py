"""OpenTelemetry spans around step moves and their action handlers.

Only ``opentelemetry-api`` is required: until the process installs a tracer provider (the
SDK and an exporter, both optional) the tracer is the API's no-op one and a span costs a
function call. Every span carries the request's correlation id, so a trace and the audit
events of one request can be found from each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace

from persistence.audit import AuditContext

__all__ = ["span"]

_tracer = trace.get_tracer("coedit.workflows")


@contextmanager
def span(name: str, ctx: AuditContext, **attributes: str | int | bool) -> Iterator[trace.Span]:
    with _tracer.start_as_current_span(name, attributes={
            "coedit.correlation_id": ctx.correlation_id, "coedit.tenant": ctx.tenant,
            "coedit.source": ctx.source, **attributes}) as current:
        yield current
