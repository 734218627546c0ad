"""OpenTelemetry spans (emit, publish, deliver, attempt) with the SDK; without the API nothing changes."""

import json
import subprocess
import sys
import textwrap

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from eventhub import emit, tracing
from eventhub.models import Delivery
from eventhub.worker.deliver import DeliveryFailed, deliver
from tests.support import factories
from tests.support.process import ROOT, command_env

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
_exporter = InMemorySpanExporter()


@pytest.fixture
def spans():
    """The SDK's in-memory exporter (installed once per process: OpenTelemetry allows one provider)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(provider)
    _exporter.clear()
    yield _exporter
    _exporter.clear()


def by_name(exporter) -> dict:
    return {span.name: span for span in exporter.get_finished_spans()}


def hex_id(value: int, width: int) -> str:
    return format(value, f"0{width}x")


@pytest.mark.django_db
def test_emit_deliver_and_attempt_are_spans_in_the_callers_trace(stub_broker, spans, webhook_receiver):
    hook = webhook_receiver()
    route = factories.route(factories.event_type("order.paid"), hook.url, destination_kind="webhook")
    with tracing.incoming(tracing.parse(TP)):
        event = emit("order.paid", data={"n": 1})
    found = by_name(spans)
    emit_span = found["eventhub emit"]
    assert hex_id(emit_span.context.trace_id, 32) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert hex_id(emit_span.parent.span_id, 16) == "00f067aa0ba902b7"  # the caller's span
    # The event remembers the emit span, so the work it causes is the emit's children.
    assert (
        event.traceparent
        == f"00-{hex_id(emit_span.context.trace_id, 32)}-{hex_id(emit_span.context.span_id, 16)}-01"
    )

    deliver(Delivery.objects.get(route=route).pk)
    found = by_name(spans)
    deliver_span, attempt = found["eventhub deliver"], found["eventhub attempt"]
    assert deliver_span.parent.span_id == emit_span.context.span_id
    assert deliver_span.kind == trace.SpanKind.CONSUMER
    assert deliver_span.attributes["eventhub.route"] == route.name
    assert deliver_span.attributes["eventhub.status"] == "succeeded"
    assert attempt.parent.span_id == deliver_span.context.span_id
    # The webhook's traceparent names the attempt, so the receiver's spans are its children.
    [request] = hook.requests
    assert request.headers["traceparent"].split("-")[2] == hex_id(attempt.context.span_id, 16)


@pytest.mark.django_db(transaction=True)
def test_publish_is_a_span_linked_to_the_events(stub_broker, spans):
    factories.route(factories.event_type("order.paid"), "nobody.listens")
    with tracing.incoming(tracing.parse(TP)):
        emit("order.paid", data={})
    publish = by_name(spans)["eventhub publish"]
    assert publish.kind == trace.SpanKind.PRODUCER
    assert [hex_id(link.context.trace_id, 32) for link in publish.links] == [
        "4bf92f3577b34da6a3ce929d0e0e4736"
    ]


@pytest.mark.django_db
def test_a_failed_attempt_is_an_error_span(stub_broker, spans, handler):
    def fail(envelope):
        raise RuntimeError("card declined")

    _, name = handler(fail)
    factories.route(factories.event_type("order.paid"), name, max_attempts=2)
    event = emit("order.paid", data={})
    with pytest.raises(DeliveryFailed):
        deliver(event.deliveries.get().pk)
    attempt = by_name(spans)["eventhub attempt"]
    assert attempt.status.status_code == trace.StatusCode.ERROR
    assert "card declined" in attempt.status.description


SCRIPT = textwrap.dedent(
    """
    import json, sys
    if sys.argv[2] == "no-api":
        sys.modules["opentelemetry"] = None  # as if opentelemetry-api were not installed
    import django
    django.setup()
    from eventhub import emit, tracing
    from eventhub.broker import drain_embedded
    from eventhub.models import Delivery

    with tracing.incoming(tracing.parse(sys.argv[1])):
        event = emit("order.paid", data={"n": 1})
    drain_embedded()
    loaded = sorted(n for n, module in sys.modules.items() if n.startswith("opentelemetry") and module)
    print(json.dumps({
        "enabled": tracing.enabled(),
        "traceparent": event.traceparent,
        "status": Delivery.objects.get(event=event).status,
        "loaded": loaded,
    }))
    """
)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("api", ["no-api", "api-without-sdk"])
def test_without_opentelemetry_or_its_sdk_no_span_is_made_and_the_context_still_travels(
    webhook_receiver, api
):
    """No API: nothing of it is imported. The API without an SDK (no tracer provider set): no span
    is started (they would be no-ops), and the caller's context reaches the webhook all the same."""
    hook = webhook_receiver()
    factories.route(factories.event_type("order.paid"), hook.url, destination_kind="webhook")
    env = command_env(BROKER_URL="")  # the embedded broker: the child delivers before it exits
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, TP, api], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    loaded = result.pop("loaded")
    assert result == {"enabled": False, "traceparent": TP, "status": "succeeded"}
    assert (loaded == []) == (api == "no-api")
    [request] = hook.requests
    assert request.headers["traceparent"] == TP
