"""The OpenAPI description stays true: it is valid, real responses match it, and schemathesis,
sending requests generated from it to a live server, never gets a server error."""

import json
import uuid

import pytest
import requests
import schemathesis
from django.test import Client, override_settings
from hypothesis import HealthCheck, Phase, given, settings
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from eventhub.ingest import openapi, tokens
from eventhub.models import Event
from tests.support import factories

URL = "/api/events"
# Generated requests per mode: enough to reach every error branch, bounded to keep the run short.
EXAMPLES = 75
SCHEMA = {"type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]}


def test_the_document_is_valid_openapi_3_1_and_served():
    document = openapi.document()
    validate_spec(document)
    assert document["openapi"].startswith("3.1")
    response = Client().get("/api/openapi.json")
    assert response.status_code == 200 and response.json() == json.loads(json.dumps(document))


def assert_documented(response) -> None:
    """Fail unless the response's status, content type and body are what the document says."""
    document = openapi.document()
    documented = document["paths"][URL]["post"]["responses"]
    status = str(response.status_code)
    assert status in documented, f"status {status} is not documented"
    content_type = response["Content-Type"].split(";")[0]
    assert content_type in documented[status]["content"], f"{content_type} not documented for {status}"
    schema = {**documented[status]["content"][content_type]["schema"], "components": document["components"]}
    Draft202012Validator(schema).validate(response.json())


@pytest.mark.django_db
def test_real_responses_match_the_document(stub_broker):
    factories.event_type("order.paid", schema=SCHEMA)
    factories.event_type("user.deleted")
    token = tokens.issue_token(name="t", event_types=["order.paid"], sources=["*"]).token
    auth = {"Authorization": f"Bearer {token}"}
    event = {**openapi.EXAMPLE_EVENT, "data": {"order_id": 1}}

    def post(body, content_type="application/cloudevents+json", headers=auth):
        raw = body if isinstance(body, str) else json.dumps(body)
        return Client().post(URL, raw, content_type=content_type, headers=headers)

    responses = {
        "new": post(event),
        "duplicate": post(event),
        "batch": post([{**event, "id": "other"}], "application/cloudevents-batch+json"),
        "bad json": post("{"),
        "not a cloudevent": post({"id": "x"}),
        "no token": post(event, headers={}),
        "not allowed": post({**event, "type": "user.deleted"}),
        "unknown type": post({**event, "type": "no.such"}),
        "invalid data": post({**event, "id": "y", "data": {}}),
        "binary png": post("x", "image/png", headers={**auth, **binary_headers()}),
    }
    with override_settings(EVENTHUB={"INGEST_MAX_BYTES": 10}):
        responses["too large"] = post(event)

    statuses = {name: r.status_code for name, r in responses.items()}
    assert set(statuses.values()) == {200, 202, 400, 401, 403, 413, 415, 422}, statuses
    for name, response in responses.items():
        try:
            assert_documented(response)
        except Exception as exc:
            raise AssertionError(f"{name}: {exc}") from exc


def binary_headers() -> dict[str, str]:
    return {"ce-specversion": "1.0", "ce-id": "b", "ce-source": "/s", "ce-type": "order.paid"}


# --- schemathesis ------------------------------------------------------------------------------------


@pytest.fixture
def ingest_token(transactional_db, stub_broker) -> str:
    """A token for order.paid (any data), the type the document's example uses."""
    factories.event_type("order.paid")
    return tokens.issue_token(name="schemathesis", event_types=["order.paid"], sources=["*"]).token


def known_type(case):
    """Make most generated events name the type the token may send, so they reach emit() and the
    database (where storage errors would surface) instead of stopping at "unknown type"."""
    items = case.body if isinstance(case.body, list) else [case.body]
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("type"), str):
            item["type"] = "order.paid"
    if case.headers and "ce-type" in case.headers:
        case.headers["ce-type"] = "order.paid"
    return case


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schemathesis_finds_no_server_error(live_server, ingest_token, mode):
    api = schemathesis.openapi.from_url(f"{live_server.url}/api/openapi.json")
    session = requests.Session()

    @given(case=api.as_strategy(generation_mode=mode).map(known_type))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    def send(case):
        case.call_and_validate(
            base_url=live_server.url,
            session=session,
            headers={"Authorization": f"Bearer {ingest_token}"},
            checks=CHECKS,
        )

    send()


@pytest.mark.django_db(transaction=True)
def test_the_documented_example_is_accepted_by_a_live_server(live_server, ingest_token):
    event = {**openapi.EXAMPLE_EVENT, "id": uuid.uuid4().hex, "data": {"order_id": 42}}
    response = requests.post(
        f"{live_server.url}{URL}",
        data=json.dumps(event),
        headers={"Content-Type": "application/cloudevents+json", "Authorization": f"Bearer {ingest_token}"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    assert Event.objects.filter(external_id=event["id"]).exists()
