"""The ingest API, tried as a hostile API client (issue 14, items 6, 10, 12, 13 and 14): tokens are bound
to their sources, ids cannot be reused for other content, deep JSON is refused, extensions are kept,
tokens expire and are rate limited across processes."""

import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connections
from django.test import Client
from django.utils import timezone

from eventhub.ingest import tokens
from eventhub.models import ApiToken, Event
from tests.ingest.test_views import BATCH, assert_problem, cloudevent, post
from tests.support import factories

pytestmark = pytest.mark.django_db

# A valid W3C traceparent: an invalid one is ignored, as the W3C spec asks.
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def paid(stub_broker):
    event_type = factories.event_type("order.paid")
    factories.route(event_type, "some.handler")
    return event_type


def issue(name: str, *sources: str, **options) -> str:
    return tokens.issue_token(name=name, event_types=["order.paid"], sources=sources, **options).token


def test_a_token_cannot_claim_another_producers_source(paid):
    billing = issue("billing", "/billing")
    intruder = issue("intruder", "/shop/*")
    problem = assert_problem(
        post(cloudevent(source="/billing", id="inv-1"), token=intruder), 403, "source-not-allowed"
    )
    assert "/shop/*" in problem["detail"]

    response = post(cloudevent(source="/billing", id="inv-1"), token=billing)
    assert response.status_code == 202 and response.json()["duplicate"] is False
    event = Event.objects.get()
    assert event.api_token == ApiToken.objects.get(name="billing")  # who sent it is recorded


@pytest.mark.parametrize("source", ["/eventhub", "/eventhub/anything"])
def test_no_token_may_send_as_eventhub_itself(paid, source):
    anything = issue("anything", "*")
    assert_problem(post(cloudevent(source=source), token=anything), 403, "source-not-allowed")
    assert post(cloudevent(source="/elsewhere"), token=anything).status_code == 202


@pytest.mark.parametrize("pattern", ["/eventhub", "/eventhub/*", "/event*", "/*", "/bil*ling"])
def test_patterns_that_claim_eventhubs_source_or_are_malformed_are_refused(paid, pattern):
    row = ApiToken(name="t", allowed_sources=f"/ok\n{pattern}")
    with pytest.raises(ValidationError) as info:
        row.full_clean(exclude=["prefix", "token_hash"])
    assert "allowed_sources" in info.value.message_dict


def test_a_token_with_no_sources_sends_nothing(paid):
    silent = issue("silent")
    problem = assert_problem(post(cloudevent(), token=silent), 403, "source-not-allowed")
    assert "no source yet" in problem["detail"]


def test_a_reused_id_with_other_content_is_409_and_the_same_content_a_duplicate(paid):
    token = issue("billing", "/billing/*")
    sent = cloudevent(source="/billing/php", id="inv-7")
    first = post(sent, token=token).json()
    again = post(sent, token=token)
    assert again.status_code == 200 and again.json() == {**first, "duplicate": True}

    problem = assert_problem(post({**sent, "data": {"order_id": 666}}, token=token), 409, "id-reused")
    assert "inv-7" in problem["detail"]
    assert_problem(post({**sent, "subject": "order/666"}, token=token), 409, "id-reused")
    assert Event.objects.get().data == sent["data"]


def test_a_retry_with_another_time_or_none_is_still_a_duplicate(paid):
    token = issue("billing", "/billing/*")
    sent = cloudevent(source="/billing/php", id="inv-8", time=None)
    post(sent, token=token)
    assert post(sent, token=token).json()["duplicate"] is True
    assert post({**sent, "time": "2030-01-01T00:00:00Z"}, token=token).json()["duplicate"] is True


def test_a_batch_repeating_an_id_with_other_content_is_refused_whole(paid):
    token = issue("billing", "/billing/*")
    one = cloudevent(source="/billing/php", id="inv-9")
    problem = assert_problem(
        post([one, {**one, "data": {"order_id": 1}}], token=token, content_type=BATCH), 409, "id-reused"
    )
    assert problem["index"] == 1 and Event.objects.count() == 0


def nested(depth: int):
    value: object = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


def test_json_nested_deeper_than_64_is_400_and_64_renders(paid):
    token = issue("billing", "*")
    assert_problem(post(cloudevent(data=nested(65)), token=token), 400, "too-deep")
    assert_problem(post(cloudevent(data=nested(950)), token=token), 400, "too-deep")
    assert post(cloudevent(data=nested(64)), token=token).status_code == 202
    client = Client()
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    assert client.get(Event.objects.get().get_absolute_url()).status_code == 200


def test_extension_attributes_and_dataschema_are_kept_and_passed_on(paid):
    token = issue("billing", "*")
    sent = cloudevent(
        dataschema="https://schemas.example.com/order.json",
        traceparent=TRACEPARENT,
        priority=3,
    )
    post(sent, token=token)
    envelope = Event.objects.get().envelope
    assert envelope["dataschema"] == "https://schemas.example.com/order.json"
    assert envelope["traceparent"] == TRACEPARENT
    assert envelope["priority"] == 3  # other extensions are kept as they came


def test_binary_mode_extensions_are_kept(paid):
    token = issue("billing", "*")
    headers = {"ce-specversion": "1.0", "ce-id": "b1", "ce-source": "/s", "ce-type": "order.paid",
               "ce-traceparent": TRACEPARENT, "ce-priority": "3"}  # fmt: skip
    response = post('{"order_id": 1}', token=token, content_type="application/json", **headers)
    assert response.status_code == 202
    envelope = Event.objects.get().envelope
    assert envelope["traceparent"] == TRACEPARENT
    assert envelope["priority"] == "3"


@pytest.mark.parametrize(
    "extension",
    [{"Bad-Name": "x"}, {"nested": {"a": 1}}, {"big": 2**40}, {"long": "x" * 2001}],
)
def test_extensions_that_cloudevents_does_not_allow_are_refused_clearly(paid, extension):
    token = issue("billing", "*")
    assert_problem(post(cloudevent(**extension), token=token), 400, "not-a-cloudevent")


def test_an_expired_token_is_401(paid):
    token = issue("old", "*", expires_at=timezone.now() - timedelta(seconds=1))
    assert_problem(post(cloudevent(), token=token), 401, "expired-token")
    fresh = issue("fresh", "*", expires_at=timezone.now() + timedelta(hours=1))
    assert post(cloudevent(), token=fresh).status_code == 202


def test_the_rate_limit_answers_429_with_retry_after(paid):
    token = issue("limited", "*", rate_limit_per_minute=3)
    batch = [cloudevent(), cloudevent()]
    assert post(batch, token=token, content_type=BATCH).status_code == 202
    assert post(cloudevent(), token=token).status_code == 202
    refused = post(cloudevent(), token=token)
    assert_problem(refused, 429, "rate-limited")
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert Event.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_the_rate_limit_holds_across_concurrent_requests(stub_broker):
    factories.event_type("order.paid")
    token = issue("limited", "*", rate_limit_per_minute=5)
    statuses = []

    def send():
        try:
            statuses.append(post(cloudevent(), token=token).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # A window boundary during the test may let a few more through, never more than two windows' worth.
    assert statuses.count(202) in range(5, 11) and statuses.count(429) == 12 - statuses.count(202)
    assert Event.objects.count() == statuses.count(202)
