"""The signal hook admin: the form's checks, the models it offers, a hook made there emitting."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from eventhub.models import Delivery, SignalHook
from shop.models import Order
from tests.support import factories


def hook_form(**overrides) -> dict:
    data = {
        "name": "orders",
        "enabled": "on",
        "content_type": ContentType.objects.get_for_model(Order).pk,
        "signal": "post_save",
        "when": "always",
        "watch_fields": "",
        "condition": "{}",
        "m2m_field": "",
        "payload": "fields",
        "payload_fields": "id, customer, status",
        "subject": "",
    }
    data.update(overrides)
    return data


# --- admin hooks ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_hook_created_through_the_admin_form_emits_on_save(admin_client, customer):
    saved = factories.event_type("order.saved")
    route = factories.route(saved, "shop.log_event")
    response = admin_client.post(reverse("admin:eventhub_signalhook_add"), hook_form(event_type=saved.pk))
    assert response.status_code == 302, response.content.decode()[:3000]

    order = Order.objects.create(customer=customer, total_cents=500)

    (event,) = factories.events_of("order.saved")
    assert event.data == {"id": order.pk, "customer_id": customer.pk, "status": "new"}
    assert event.subject == f"shop.order/{order.pk}"
    assert Delivery.objects.get(event=event).route == route


@pytest.mark.django_db
def test_the_admin_form_refuses_unknown_fields_and_bad_conditions_with_clear_messages(admin_client):
    saved = factories.event_type("order.saved")
    form = hook_form(
        event_type=saved.pk,
        when="changed",
        watch_fields="statuz",
        condition='{"status": "paid"}',
        payload="method",
        payload_fields="",
        subject="order/{nope}",
    )
    response = admin_client.post(reverse("admin:eventhub_signalhook_add"), form)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Unknown field statuz on shop.Order; choose from: id, customer, status" in page
    assert "wrap a single value in a list" in page  # the route filter validator's message
    assert "Unknown placeholder nope" in page
    assert not SignalHook.objects.exists()


@pytest.mark.django_db
def test_the_model_choice_offers_installed_models_but_not_eventhubs_own(admin_client):
    page = admin_client.get(reverse("admin:eventhub_signalhook_add")).content.decode()
    assert "| order</option>" in page
    assert "Authentication and Authorization | user</option>" not in page  # credentials: refused
    assert "| session</option>" not in page
    assert ">eventhub | event<" not in page and ">eventhub | delivery<" not in page
