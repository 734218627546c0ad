"""W3C trace context: valid traceparents are kept (normalised), invalid ones ignored."""

import pytest

from eventhub.tracing import from_headers, incoming, incoming_context, parse, trace_id_of

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_and_tracestate_are_kept():
    context = parse(VALID, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
    assert context.traceparent == VALID
    assert context.tracestate == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    assert context.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert context.headers() == {"traceparent": VALID, "tracestate": context.tracestate}


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        VALID + "-extra",  # version 00 has exactly four fields
    ],
)
def test_an_invalid_traceparent_is_ignored(value):
    assert parse(value) is None


def test_a_later_version_keeps_its_first_four_fields():
    assert parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more").traceparent.startswith("01-")


def test_a_bad_tracestate_is_dropped_and_the_traceparent_kept():
    assert parse(VALID, "not a list member").tracestate == ""
    assert parse(VALID, "a=" + "x" * 600).tracestate == ""


def test_headers_in_any_case_and_the_incoming_context():
    context = from_headers({"TraceParent": VALID})
    assert trace_id_of(VALID) == context.trace_id
    assert incoming_context() is None
    with incoming(context):
        assert incoming_context() == context
    assert incoming_context() is None
