"""Webhook secrets: encrypted at rest with a key from the environment, rotated with an overlap during
which every request carries two signatures (issue 14 item 8, issue 19 item 3)."""

import io
import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from eventhub import emit
from eventhub.destinations import secrets
from eventhub.models import Route
from eventhub.worker.deliver import deliver
from tests.support import factories
from tests.support.http_receivers import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def keys(*values):
    return override_settings(EVENTHUB={**settings.EVENTHUB, "SECRETS_KEYS": list(values)})


def stored_row(route: Route) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM eventhub_route WHERE id = %s", [route.pk])
        return json.dumps([str(v) for v in cursor.fetchone()])


def test_the_secret_is_stored_only_encrypted():
    route = factories.route(
        factories.event_type("order.paid"), "https://example.com/h", destination_kind="webhook"
    )
    assert route.secret.startswith("whsec_")
    assert route.secret not in stored_row(route)
    assert route.secret.removeprefix("whsec_") not in stored_row(route)
    assert Route.objects.get(pk=route.pk).secret == route.secret


def test_a_key_rotation_keeps_secrets_readable_and_reseal_moves_them_to_the_new_key():
    with keys("old key"):
        route = factories.route(factories.event_type("order.paid"), "https://example.com/h")
        secret = route.secret
    with keys("new key", "old key"):
        assert Route.objects.get(pk=route.pk).secret == secret
        call_command("eventhub_reseal_secrets", stdout=io.StringIO())
    with keys("new key"):
        assert Route.objects.get(pk=route.pk).secret == secret
    with keys("old key"), pytest.raises(secrets.SecretUnreadable):
        Route.objects.get(pk=route.pk).secret  # noqa: B018


def test_reseal_refuses_and_changes_nothing_when_a_secret_cannot_be_read():
    with keys("lost key"):
        route = factories.route(factories.event_type("order.paid"), "https://example.com/h")
    before = Route.objects.get(pk=route.pk).secret_sealed
    with keys("another key"), pytest.raises(CommandError, match="cannot be decrypted"):
        call_command("eventhub_reseal_secrets")
    assert Route.objects.get(pk=route.pk).secret_sealed == before


def test_a_secret_no_key_opens_makes_the_delivery_dead_with_a_clear_error(stub_broker, receiver):
    with keys("lost key"):
        factories.route(factories.event_type("order.paid"), receiver.url, destination_kind="webhook")
    delivery = emit("order.paid", data={}).deliveries.get()
    with keys("another key"):
        outcome = deliver(delivery.pk)
    assert outcome.status == "dead" and "cannot be decrypted with the configured keys" in outcome.error
    assert receiver.requests == []


def test_during_the_overlap_both_secrets_verify_and_after_it_only_the_new_one(stub_broker, receiver):
    route = factories.route(factories.event_type("order.paid"), receiver.url, destination_kind="webhook")
    old = route.secret
    new = secrets.rotate(route, overlap=timedelta(hours=1))
    assert new != old and Route.objects.get(pk=route.pk).secret == new

    deliver(emit("order.paid", data={"n": 1}).deliveries.get().pk)
    request = receiver.requests[-1]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(request.body, request.headers)
    Webhook(new).verify(request.body, request.headers)

    Route.objects.filter(pk=route.pk).update(previous_secret_expires_at=timezone.now() - timedelta(seconds=1))
    deliver(emit("order.paid", data={"n": 2}).deliveries.get().pk)
    request = receiver.requests[-1]
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(request.body, request.headers)


def test_a_rotation_without_overlap_signs_with_the_new_secret_only(stub_broker, receiver):
    route = factories.route(factories.event_type("order.paid"), receiver.url, destination_kind="webhook")
    old = route.secret
    new = secrets.rotate(route, overlap=timedelta(0))
    deliver(emit("order.paid", data={}).deliveries.get().pk)
    request = receiver.requests[-1]
    Webhook(new).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(request.body, request.headers)


def test_a_second_rotation_drops_the_oldest_secret():
    route = factories.route(factories.event_type("order.paid"), "https://example.com/h")
    first = route.secret
    second = secrets.rotate(route, overlap=timedelta(hours=1))
    third = secrets.rotate(route, overlap=timedelta(hours=1))
    assert secrets.signing_secrets(Route.objects.get(pk=route.pk)) == [third, second]
    assert first not in secrets.signing_secrets(route)
