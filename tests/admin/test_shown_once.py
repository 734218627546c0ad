"""Secrets in the admin: shown once on the response page, masked after, rotation permission-checked
(issue 14 items 8 and 9, issue 19 item 3)."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse
from standardwebhooks.webhooks import Webhook

from eventhub.destinations.signing import signed_headers
from eventhub.ingest import tokens
from eventhub.models import ApiToken, Route
from tests.admin.test_events import HEALTH_FIELDS
from tests.support import factories

pytestmark = pytest.mark.django_db


def staff(client, *codenames):
    user = get_user_model().objects.create_user(f"u{len(codenames)}", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


def cookies_text(response) -> str:
    return " ".join(morsel.value for morsel in response.cookies.values())


@pytest.fixture
def route():
    return factories.route(
        factories.event_type("order.paid"), "https://example.com/h", destination_kind="webhook"
    )


def test_a_user_who_may_only_view_routes_never_sees_the_secret(client, route):
    page = staff(client, "view_route").get(reverse("admin:eventhub_route_change", args=[route.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert route.secret not in text and route.secret.removeprefix("whsec_")[:12] not in text
    assert "whsec_…" in text  # the fingerprint


def test_rotating_needs_its_own_permission(client, route):
    url = reverse("admin:eventhub_route_rotate_secret", args=[route.pk])
    changer = staff(client, "view_route", "change_route")
    assert changer.get(url).status_code == 403
    assert changer.post(url, {"confirm": "yes", "overlap": "3600"}).status_code == 403
    assert Route.objects.get(pk=route.pk).secret == route.secret


def test_a_rotation_shows_the_new_secret_once_and_signs_with_both(client, route):
    old = route.secret
    url = reverse("admin:eventhub_route_rotate_secret", args=[route.pk])
    rotator = staff(client, "view_route", "rotate_route_secret")
    assert "Keep signing with the current secret for" in rotator.get(url).content.decode()

    response = rotator.post(url, {"confirm": "yes", "overlap": "86400"})
    new = Route.objects.get(pk=route.pk).secret
    assert new != old and response.status_code == 200
    assert new in response.content.decode() and "no-store" in response["Cache-Control"]
    assert new not in cookies_text(response)

    again = rotator.get(reverse("admin:eventhub_route_change", args=[route.pk])).content.decode()
    assert new not in again and old not in again and "the previous one until" in again

    headers = signed_headers(secrets=[new, old], msg_id="m1", body=b"{}")
    Webhook(old).verify(b"{}", headers)
    Webhook(new).verify(b"{}", headers)


def test_the_admin_action_rotates_several_routes_in_one_step(admin_client, route):
    other = factories.route(route.event_type, "https://example.com/h2", destination_kind="webhook")
    changelist = reverse("admin:eventhub_route_changelist")
    form = {"action": "rotate_selected_secrets", "_selected_action": [route.pk, other.pk]}
    assert "Rotate signing secrets" in admin_client.post(changelist, form).content.decode()
    response = admin_client.post(changelist, {**form, "confirm": "yes", "overlap": "0"})
    page = response.content.decode()
    for r in Route.objects.filter(pk__in=[route.pk, other.pk]):
        assert r.secret in page and r.previous_secret_sealed == ""


def test_a_new_webhook_route_shows_its_secret_on_the_response_page(admin_client):
    event_type = factories.event_type("order.paid")
    form = {
        "name": "billing", "event_type": event_type.pk, "enabled": "on", "filter": "{}",
        "destination_kind": "webhook", "target": "https://billing.example.com/hooks", "queue": "eventhub",
        "max_attempts": 5, "min_backoff_ms": 1000, "max_backoff_ms": 300000, "time_limit_ms": 60000,
        **HEALTH_FIELDS,
    }  # fmt: skip
    response = admin_client.post(reverse("admin:eventhub_route_add"), form)
    route = Route.objects.get(name="billing")
    assert response.status_code == 200 and route.secret in response.content.decode()
    assert route.secret not in cookies_text(response)


def test_a_new_api_token_is_shown_on_the_response_page_not_in_the_messages_cookie(admin_client):
    response = admin_client.post(reverse("admin:eventhub_apitoken_add"), {
        "name": "billing (PHP)", "allowed_sources": "/billing",
    })  # fmt: skip
    assert response.status_code == 200, response.content.decode()[:2000]
    page = response.content.decode()
    token = page.split('class="shown-once-value">', 1)[1].split("<", 1)[0]
    api_token = ApiToken.objects.get(name="billing (PHP)")
    assert tokens.authenticate(f"Bearer {token}") == api_token
    assert token not in cookies_text(response) and "no-store" in response["Cache-Control"]
