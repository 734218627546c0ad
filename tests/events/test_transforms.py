"""Transforms: the envelope or only data, picked and renamed fields, static headers; bad ones refused."""

import pytest

from eventhub.events import Transform, TransformError, check_transform

ENVELOPE = {
    "id": "e1",
    "type": "order.paid",
    "subject": "order/42",
    "data": {"order_id": 42, "amount": {"value": 9.5, "currency": "EUR"}, "note": "hi"},
}


def test_no_transform_sends_the_envelope():
    assert Transform(check_transform({})).body(ENVELOPE) == ENVELOPE
    assert Transform(check_transform(None)).body(ENVELOPE) == ENVELOPE


def test_data_only():
    assert Transform({"body": "data"}).body(ENVELOPE) == ENVELOPE["data"]


def test_fields_are_picked_and_renamed_from_the_envelope():
    spec = check_transform(
        {"fields": {"order": "data.order_id", "kind": "type", "money.total": "data.amount.value"}}
    )
    assert Transform(spec).body(ENVELOPE) == {"order": 42, "kind": "order.paid", "money": {"total": 9.5}}


def test_fields_from_data_leave_out_what_the_event_lacks():
    spec = check_transform({"body": "data", "fields": {"id": "order_id", "missing": "nope.here"}})
    assert Transform(spec).body(ENVELOPE) == {"id": 42}


def test_static_headers_are_kept():
    spec = check_transform({"headers": {"X-Tenant": "acme", "Authorization": "Bearer abc"}})
    assert Transform(spec).headers == {"X-Tenant": "acme", "Authorization": "Bearer abc"}
    assert not Transform(spec).reshapes


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([], "JSON object"),
        ({"code": "lambda: 1"}, "unknown key"),
        ({"body": "headers"}, 'body must be "envelope" or "data"'),
        ({"fields": {}}, "maps output names"),
        ({"fields": {"a": "order_id"}}, "must start with an envelope attribute"),
        ({"fields": {"a": 5}}, "non-empty string"),
        ({"fields": {"a": "data.x", "a.b": "data.y"}}, "overwrite each other"),
        ({"fields": {"": "data.x"}}, "empty"),
        ({"headers": {"webhook-signature": "v1,forged"}}, "cannot be overridden"),
        ({"headers": {"Host": "internal.example"}}, "cannot be overridden"),
        ({"headers": {"Content-Length": "0"}}, "cannot be overridden"),
        ({"headers": {"traceparent": "00-x"}}, "cannot be overridden"),
        ({"headers": {"X-Bad": "a\r\nX-Injected: 1"}}, "control characters"),
        ({"headers": {"Bad Name": "x"}}, "not a valid HTTP header name"),
        ({"headers": {"X-Num": 5}}, "must be a string"),
    ],
)
def test_a_bad_transform_is_refused(spec, message):
    with pytest.raises(TransformError, match=message):
        check_transform(spec)
