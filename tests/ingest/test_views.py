"""The ingest API: CloudEvents over HTTP in structured, binary and batch mode, tokens, errors."""

import json
import uuid

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from eventhub.ingest import service, tokens
from eventhub.models import ApiToken, Delivery, Event
from tests.support import factories, refusals
from tests.testapp.models import Switch

pytestmark = pytest.mark.django_db

URL = "/api/events"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "integer"}, "amount": {"type": "number"}},
    "required": ["order_id"],
}


@pytest.fixture
def paid(stub_broker):
    """The event type order.paid (with a schema) and a route for it."""
    event_type = factories.event_type("order.paid", schema=SCHEMA)
    factories.route(event_type, "some.handler")
    return event_type


@pytest.fixture
def token(paid) -> str:
    """A token allowed to send order.paid only."""
    factories.event_type("user.deleted")
    return tokens.issue_token(name="billing (PHP)", event_types=["order.paid"], sources=["*"]).token


def cloudevent(**overrides) -> dict:
    event = {
        "specversion": "1.0",
        "id": f"ce-{uuid.uuid4().hex[:8]}",
        "source": "/billing/php",
        "type": "order.paid",
        "subject": "order/42",
        "time": "2024-05-01T12:00:00+02:00",
        "data": {"order_id": 42, "amount": 19.99},
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not None}


def post(body, *, token: str | None, content_type: str = STRUCTURED, client: Client | None = None, **headers):
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    raw = body if isinstance(body, bytes | str) else json.dumps(body)
    return (client or Client()).post(URL, raw, content_type=content_type, headers=headers)


def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == f"urn:eventhub:problem:{slug}" and problem["status"] == status
    assert problem["title"] and problem["detail"]
    return problem


# --- content modes -------------------------------------------------------------------------------


def test_structured_mode_stores_the_event_and_its_deliveries(token):
    sent = cloudevent()
    response = post(sent, token=token)

    assert response.status_code == 202
    body = response.json()
    event = Event.objects.get()
    assert body == {"id": sent["id"], "source": "/billing/php", "event_id": str(event.pk), "duplicate": False}
    assert (event.type, event.external_id, event.subject) == ("order.paid", sent["id"], "order/42")
    assert event.time.isoformat() == "2024-05-01T10:00:00+00:00"
    assert event.data == {"order_id": 42, "amount": 19.99}
    assert event.envelope["id"] == sent["id"] and event.envelope["source"] == "/billing/php"
    assert Delivery.objects.filter(event=event).count() == 1
    assert ApiToken.objects.get().last_used_at is not None


def test_binary_mode_takes_attributes_from_headers_and_data_from_the_body(token):
    response = post(
        {"order_id": 7},
        token=token,
        content_type="application/json",
        ce_specversion="1.0",
        ce_id="bin-1",
        ce_source="/shop/go",
        ce_type="order.paid",
        ce_subject="caf%C3%A9/7",  # CloudEvents percent-encodes UTF-8 in header values
    )

    assert response.status_code == 202, response.content
    event = Event.objects.get(external_id="bin-1")
    assert (event.source, event.subject, event.data) == ("/shop/go", "café/7", {"order_id": 7})
    assert event.datacontenttype == "application/json"
    assert response.json()["event_id"] == str(event.pk)


def test_binary_mode_keeps_text_data_as_text(token, paid):
    paid.schema = None
    paid.save()
    headers = {"ce_specversion": "1.0", "ce_id": "t-1", "ce_source": "/s", "ce_type": "order.paid"}
    response = post("paid in full", token=token, content_type="text/plain; charset=utf-8", **headers)

    assert response.status_code == 202, response.content
    event = Event.objects.get()
    assert event.data == "paid in full" and event.datacontenttype == "text/plain; charset=utf-8"


def test_batch_mode_stores_every_event_and_reports_each(token):
    first, second = cloudevent(), cloudevent(data={"order_id": 2})
    response = post([first, second], token=token, content_type=BATCH)

    assert response.status_code == 202
    reported = response.json()["events"]
    assert [r["id"] for r in reported] == [first["id"], second["id"]]
    assert [r["duplicate"] for r in reported] == [False, False]
    assert set(Event.objects.values_list("external_id", flat=True)) == {first["id"], second["id"]}


def test_an_invalid_event_in_a_batch_refuses_the_whole_batch_and_names_it(token):
    response = post([cloudevent(), cloudevent(data={"order_id": "x"})], token=token, content_type=BATCH)

    problem = assert_problem(response, 422, "invalid-event-data")
    assert problem["index"] == 1 and problem["path"] == "order_id"
    assert Event.objects.count() == 0


def test_structured_data_base64_is_decoded_by_its_content_type(token):
    sent = cloudevent(data=None, datacontenttype="application/json", data_base64="eyJvcmRlcl9pZCI6IDV9")
    assert post(sent, token=token).status_code == 202
    assert Event.objects.get().data == {"order_id": 5}


# --- idempotent ingest -----------------------------------------------------------------------------


def test_a_repeated_id_from_the_same_source_is_not_emitted_twice(token):
    sent = cloudevent()
    first = post(sent, token=token)
    again = post(sent, token=token)

    assert first.status_code == 202 and again.status_code == 200
    assert again.json() == {**first.json(), "duplicate": True}
    assert Event.objects.count() == 1 and Delivery.objects.count() == 1
    # The same id from another source is another event.
    assert post({**sent, "source": "/other"}, token=token).status_code == 202
    assert Event.objects.count() == 2


def test_a_batch_reports_duplicates_of_earlier_and_of_its_own_events(token):
    old, new = cloudevent(), cloudevent()
    stored = post(old, token=token).json()["event_id"]

    response = post([old, new, new], token=token, content_type=BATCH)

    assert response.status_code == 202
    reported = response.json()["events"]
    assert [r["duplicate"] for r in reported] == [True, False, True]
    assert reported[0]["event_id"] == stored and reported[1]["event_id"] == reported[2]["event_id"]
    assert Event.objects.count() == 2


def test_a_concurrent_duplicate_caught_by_the_unique_constraint_is_reported_as_duplicate(token, monkeypatch):
    sent = cloudevent()
    first = post(sent, token=token).json()
    real = service.stored_events
    calls = []

    def miss_once(events):
        # The race: another request stored the event after this one looked.
        calls.append(1)
        return {} if len(calls) == 1 else real(events)

    monkeypatch.setattr(service, "stored_events", miss_once)
    response = post(sent, token=token)

    assert response.status_code == 200 and response.json()["duplicate"] is True
    assert response.json()["event_id"] == first["event_id"]
    assert len(calls) == 2 and Event.objects.count() == 1


# --- tokens ----------------------------------------------------------------------------------------


def test_a_missing_token_is_401_with_a_bearer_challenge(paid):
    response = post(cloudevent(), token=None)
    assert_problem(response, 401, "missing-token")
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert_problem(post(cloudevent(), token=None, Authorization="Basic dXNlcjpwdw=="), 401, "missing-token")


@pytest.mark.parametrize("wrong", ["nonsense", "eh_00000000_secret", "eh_zz_x"])
def test_a_wrong_token_is_401(token, wrong):
    assert_problem(post(cloudevent(), token=wrong), 401, "invalid-token")
    # Right prefix, wrong secret.
    assert_problem(post(cloudevent(), token=token[:12] + "x" * 43), 401, "invalid-token")
    assert Event.objects.count() == 0


def test_a_revoked_token_is_403(token):
    tokens.revoke(api_token=ApiToken.objects.get())
    assert_problem(post(cloudevent(), token=token), 403, "revoked-token")


def test_a_type_the_token_may_not_send_is_403(token):
    problem = assert_problem(
        post(cloudevent(type="user.deleted", data={}), token=token), 403, "type-not-allowed"
    )
    assert "user.deleted" in problem["detail"]
    assert Event.objects.count() == 0


def test_tokens_are_stored_hashed_with_a_visible_prefix(paid):
    issued = tokens.issue_token(name="n", event_types=[paid], sources=["/n"])
    row = ApiToken.objects.get()
    assert issued.token.startswith(row.prefix + "_") and row.prefix.startswith("eh_")
    assert row.token_hash == tokens.hash_token(issued.token) and issued.token not in row.token_hash


# --- errors ----------------------------------------------------------------------------------------


def test_malformed_json_is_400(token):
    assert_problem(post('{"specversion": "1.0",', token=token), 400, "malformed-json")
    assert_problem(post(b"\xff\xfe", token=token), 400, "malformed-json")
    assert_problem(post('{"data": NaN}', token=token), 400, "malformed-json")


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (cloudevent(source=None), "'source'"),
        (cloudevent(id=""), "'id'"),
        (cloudevent(specversion="0.3"), "specversion"),
        (cloudevent(specversion=None), "specversion"),
        (cloudevent(time="yesterday"), "RFC 3339"),
        (cloudevent(time="2024-05-01T12:00:00"), "offset"),
        (cloudevent(subject="a\u0000b"), "NUL"),
        ([1, 2], "JSON object"),
    ],
)
def test_something_that_is_not_a_cloudevent_is_400(token, event, message):
    problem = assert_problem(post(event, token=token), 400, "not-a-cloudevent")
    assert message in problem["detail"]


def test_plain_json_without_ce_headers_is_400(token):
    problem = assert_problem(
        post(cloudevent(), token=token, content_type="application/json"), 400, "not-a-cloudevent"
    )
    assert "ce-specversion" in problem["detail"]


def test_an_inactive_type_the_token_may_send_is_422(token, paid):
    paid.active = False
    paid.save()
    problem = assert_problem(post(cloudevent(), token=token), 422, "unknown-event-type")
    assert "order.paid" in problem["detail"]


def test_an_unknown_type_answers_like_a_type_not_allowed_so_types_cannot_be_probed(token):
    unknown = assert_problem(post(cloudevent(type="no.such"), token=token), 403, "type-not-allowed")
    existing = assert_problem(post(cloudevent(type="user.deleted"), token=token), 403, "type-not-allowed")
    assert unknown["detail"].replace("no.such", "X") == existing["detail"].replace("user.deleted", "X")


def test_invalid_data_is_422_with_the_schemas_message(token):
    problem = assert_problem(
        post(cloudevent(data={"order_id": "42"}), token=token), 422, "invalid-event-data"
    )
    assert problem["schema_message"] == "'42' is not of type 'integer'"
    assert problem["path"] == "order_id" and problem["event_type"] == "order.paid"
    assert "'42' is not of type 'integer'" in problem["detail"]


def test_a_body_past_the_limit_is_413(token):
    with override_settings(EVENTHUB={"INGEST_MAX_BYTES": 200}):
        problem = assert_problem(
            post(cloudevent(data={"order_id": 1, "pad": "x" * 300}), token=token), 413, "body-too-large"
        )
    assert "200" in problem["detail"]
    assert Event.objects.count() == 0


def test_binary_data_that_is_neither_json_nor_text_is_415(token):
    headers = {"ce_specversion": "1.0", "ce_id": "p", "ce_source": "/s", "ce_type": "order.paid"}
    assert_problem(
        post(b"\x89PNG", token=token, content_type="image/png", **headers), 415, "unsupported-data"
    )


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_other_methods_are_405(method):
    response = getattr(Client(), method)(URL)
    assert_problem(response, 405, "method-not-allowed")
    assert response["Allow"] == "POST"


@pytest.mark.django_db(transaction=True)
def test_when_the_tokens_bookkeeping_fails_nothing_is_stored_and_the_producer_is_told_to_retry(token):
    # The token's row (rate window, last use) is written before the events, in the same request:
    # when that write fails the events are not stored, and the answer says so (never 202).
    Switch.objects.create(name="tokens", on=True)
    with refusals.refusing("eventhub_apitoken", "UPDATE", switch="tokens"):
        response = post(cloudevent(id="kept-1"), token=token, client=Client(raise_request_exception=False))

    assert_problem(response, 500, "internal-error")
    assert not Event.objects.filter(external_id="kept-1").exists()
    assert ApiToken.objects.get().last_used_at is None


def test_an_unexpected_failure_is_a_500_problem_not_an_html_page(token, monkeypatch, caplog):
    def broken(events, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(service, "emit_once", broken)
    response = post(cloudevent(), token=token, client=Client(raise_request_exception=False))

    problem = assert_problem(response, 500, "internal-error")
    assert "send them again with the same ids" in problem["detail"].lower()
    assert "RuntimeError: a bug" in caplog.text


def test_the_api_needs_no_csrf_token(token):
    client = Client(enforce_csrf_checks=True)
    assert post(cloudevent(), token=token, client=client).status_code == 202


# --- admin -----------------------------------------------------------------------------------------


def test_admin_shows_a_new_token_once_and_stores_it_hashed(paid):
    client = Client()
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))

    response = client.post(
        "/admin/eventhub/apitoken/add/",
        {"name": "shop (Go)", "event_types": [paid.pk], "allowed_sources": "/billing/*"},
    )

    token = response.content.decode().split('class="shown-once-value">', 1)[1].split("<", 1)[0]
    row = ApiToken.objects.get()
    assert row.token_hash == tokens.hash_token(token) and list(row.event_types.all()) == [paid]
    assert post(cloudevent(), token=token).status_code == 202
    # Never shown again: not on the change page.
    assert token not in client.get(f"/admin/eventhub/apitoken/{row.pk}/change/").content.decode()


def test_admin_revoke_action(token):
    client = Client()
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    row = ApiToken.objects.get()
    client.post(
        "/admin/eventhub/apitoken/", {"action": "revoke_tokens", "_selected_action": [row.pk]}, follow=True
    )
    assert ApiToken.objects.get().revoked
    assert_problem(post(cloudevent(), token=token), 403, "revoked-token")
