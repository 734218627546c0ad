"""eventhub.ingest.cloudevents: the three content modes parsed, and every malformed request named."""

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from eventhub.ingest.cloudevents import (
    BATCH,
    STRUCTURED,
    CloudEvent,
    MalformedJson,
    NotACloudEvent,
    UnsupportedData,
    parse_request,
)

EVENT = {"specversion": "1.0", "id": "inv-1", "source": "/billing", "type": "invoice.paid"}


def structured(value) -> list[CloudEvent]:
    return parse_request(content_type=STRUCTURED, headers={}, body=json.dumps(value).encode())


def test_structured_mode_reads_attributes_and_json_data():
    [event] = structured(
        {**EVENT, "subject": "invoice/1", "time": "2026-11-30T10:00:00+01:00", "data": {"n": 1}}
    )
    assert (event.id, event.source, event.type, event.subject) == (
        "inv-1",
        "/billing",
        "invoice.paid",
        "invoice/1",
    )
    assert event.time == datetime(2026, 11, 30, 9, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=1)))
    assert event.data == {"n": 1} and event.datacontenttype == "application/json"


def test_structured_data_base64_is_decoded_by_its_content_type():
    text = base64.b64encode(b"hello").decode()
    [event] = structured({**EVENT, "datacontenttype": "text/plain", "data_base64": text})
    assert event.data == "hello"


def test_binary_mode_takes_percent_encoded_headers_and_the_body_as_data():
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "inv-2",
        "ce-source": "/billing",
        "ce-type": "invoice.paid",
        "ce-subject": "caf%C3%A9/1",
    }
    [event] = parse_request(content_type="application/json", headers=headers, body=b'{"amount": 5}')
    assert event.subject == "café/1" and event.data == {"amount": 5}


def test_a_batch_is_a_list_of_events_and_a_bad_one_is_named_by_index():
    body = json.dumps([EVENT, {**EVENT, "id": "inv-3"}]).encode()
    assert [e.id for e in parse_request(content_type=BATCH, headers={}, body=body)] == ["inv-1", "inv-3"]
    bad = json.dumps([EVENT, {**EVENT, "id": ""}]).encode()
    with pytest.raises(NotACloudEvent) as caught:
        parse_request(content_type=BATCH, headers={}, body=bad)
    assert caught.value.index == 1 and "Event 1" in str(caught.value) and "'id'" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({**EVENT, "specversion": "0.3"}, "specversion '1.0'"),
        ({k: v for k, v in EVENT.items() if k != "source"}, "'source' is missing"),
        ({**EVENT, "subject": 5}, "'subject' must be a string"),
        ({**EVENT, "type": "x" * 201}, "longer than 200"),
        ({**EVENT, "time": "2026-11-30T10:00:00"}, "with an offset"),
        ({**EVENT, "data": 1, "data_base64": "AQ=="}, "not both"),
        ({**EVENT, "subject": "a\u0000b"}, "NUL"),
        ([EVENT], "JSON object"),
    ],
)
def test_malformed_structured_events_are_refused_with_what_is_wrong(value, message):
    with pytest.raises(NotACloudEvent, match=message):
        structured(value)


def test_invalid_json_and_non_finite_numbers_are_malformed_json():
    with pytest.raises(MalformedJson):
        parse_request(content_type=STRUCTURED, headers={}, body=b"{not json")
    with pytest.raises(MalformedJson):
        parse_request(content_type=STRUCTURED, headers={}, body=b'{"specversion": "1.0", "data": NaN}')


def test_binary_data_in_a_media_type_that_cannot_be_kept_is_unsupported():
    headers = {"ce-specversion": "1.0", "ce-id": "x", "ce-source": "/s", "ce-type": "a.b"}
    with pytest.raises(UnsupportedData):
        parse_request(content_type="image/png", headers=headers, body=b"\x89PNG")


def test_a_request_that_is_no_cloudevent_says_how_to_send_one():
    with pytest.raises(NotACloudEvent, match="ce-specversion required"):
        parse_request(content_type="application/json", headers={}, body=b"{}")
