"""Retention in the admin: per-type overrides are edited on the event type, and too-short ones are refused."""

import pytest
from django.urls import reverse

from eventhub.models import EventType, Route
from tests.admin.test_events import route_form
from tests.support import factories

pytestmark = pytest.mark.django_db


def type_form(event_type: EventType, **overrides) -> dict:
    data = {"name": event_type.name, "description": "", "schema": "", "active": "on"}
    data.update({key: "" if value is None else value for key, value in overrides.items()})
    return data


def post_type(admin_client, event_type: EventType, **overrides):
    url = reverse("admin:eventhub_eventtype_change", args=[event_type.pk])
    return admin_client.post(url, type_form(event_type, **overrides))


def test_overrides_are_saved_and_blank_means_the_global_setting(admin_client):
    paid = factories.event_type("order.paid")
    assert (
        post_type(admin_client, paid, retention_succeeded_days=3, retention_dead_days=30).status_code == 302
    )
    paid.refresh_from_db()
    assert (paid.retention_succeeded_days, paid.retention_dead_days) == (3, 30)

    assert (
        post_type(admin_client, paid, retention_succeeded_days=None, retention_dead_days=None).status_code
        == 302
    )
    paid.refresh_from_db()
    assert paid.retention_succeeded_days is None and paid.retention_dead_days is None


def test_an_override_shorter_than_a_routes_retry_window_is_refused(admin_client):
    paid = factories.event_type("order.paid")
    # 20 attempts of up to a ten-minute time limit and a four-hour backoff: a retry window of 3.5 days.
    factories.route(paid, "tests.record", name="slow-billing", max_attempts=20, max_backoff_ms=4 * 3_600_000,
                    time_limit_ms=600_000)  # fmt: skip

    response = post_type(admin_client, paid, retention_succeeded_days=3)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    message = " ".join(errors["retention_succeeded_days"])
    assert "slow-billing" in message and "3.5 days" in message and "shorter than the retry window" in message
    paid.refresh_from_db()
    assert paid.retention_succeeded_days is None
    assert post_type(admin_client, paid, retention_succeeded_days=4).status_code == 302


def test_a_route_whose_retry_window_outlasts_its_types_retention_is_refused(admin_client):
    paid = factories.event_type("order.paid", retention_dead_days=2)
    # 50 attempts × (30 s + 1 h): just over two days.
    form = route_form(paid, max_attempts=50, max_backoff_ms=3_600_000)

    response = admin_client.post(reverse("admin:eventhub_route_add"), form)

    assert response.status_code == 200
    message = " ".join(response.context["adminform"].form.errors["max_attempts"])
    assert "Retention of 2 days is shorter than the retry window of route 'billing'" in message
    assert not Route.objects.exists()
    assert admin_client.post(reverse("admin:eventhub_route_add"), route_form(paid)).status_code == 302
