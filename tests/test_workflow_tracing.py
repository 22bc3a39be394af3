"""Step moves are traced when a tracer provider is installed: a span around the move and one
around its action's handler, carrying the request's correlation id."""

from __future__ import annotations

import pytest

from tests.support import RunningServer
from tests.workflow_support import Calls

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace", reason="needs opentelemetry-sdk")
export = pytest.importorskip("opentelemetry.sdk.trace.export")
in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")

_EXPORTER = in_memory.InMemorySpanExporter()


def _install() -> None:
    """One provider per process (the API allows setting it once)."""
    from opentelemetry import trace

    if not isinstance(trace.get_tracer_provider(), sdk_trace.TracerProvider):
        provider = sdk_trace.TracerProvider()
        provider.add_span_processor(export.SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)


async def test_a_step_move_is_a_span_with_its_correlation_id(server: RunningServer) -> None:
    _install()
    admin = server.token(user="ada", roles=["admin"])
    ann = server.token(user="ann", roles=["analyst"])
    calls = Calls(server)
    template = await calls.published(admin, [
        {"key": "ok", "action": "approval", "role": "analyst"}], name="One")
    instance = await calls.start(ann, template["id"], await calls.idea(ann))
    step = instance["steps"][0]["id"]
    _EXPORTER.clear()
    async with server.http(ann, **{"X-Correlation-ID": "trace-me"}) as http:
        answer = await http.post(f"/api/workflows/steps/{step}/start")
    assert answer.status_code == 200, answer.text
    spans = {s.name: s for s in _EXPORTER.get_finished_spans()
             if s.attributes and s.attributes.get("coedit.correlation_id") == "trace-me"}
    move = spans["workflow.step.transition"]
    assert move.attributes is not None
    assert move.attributes["coedit.step"] == step
    assert move.attributes["coedit.step.verb"] == "start"
    assert move.attributes["coedit.step.from"] == "ready"
    assert move.attributes["coedit.step.to"] == "in_progress"
    handler = spans["workflow.action.approval"]
    assert handler.parent is not None and handler.parent.span_id == move.context.span_id
