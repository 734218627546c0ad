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


@pytest.mark.django_db
def test_the_model_filter_lists_only_models_that_can_be_hooked(admin_client):
    page = admin_client.get(reverse("admin:eventhub_signalhook_changelist")).content.decode()
    model_filter = page[page.index("By model") : page.index("</ul>", page.index("By model"))]

    assert "shop.order</a>" in model_filter
    # Django's bookkeeping and auth (credentials) cannot be hooked, so they are not offered either.
    for bookkeeping in (
        "sessions.session",
        "admin.logentry",
        "contenttypes.contenttype",
        "auth.user",
        "eventhub.",
    ):
        assert bookkeeping not in model_filter
    form = admin_client.get(reverse("admin:eventhub_signalhook_add")).content.decode()
    assert "| session</option>" not in form and "| log entry</option>" not in form


@pytest.mark.django_db
def test_help_texts_keep_their_placeholders_and_the_list_says_briefly_when_hooks_fire(admin_client):
    form = admin_client.get(reverse("admin:eventhub_signalhook_add")).content.decode()
    assert "Empty gives &lt;app_label&gt;.&lt;model&gt;/&lt;pk&gt;; otherwise a template" in form

    paid = factories.event_type("order.paid")
    factories.signal_hook(paid, name="paid", when="changed", watch_fields="status")
    factories.signal_hook(paid, name="linked", signal="m2m_changed", m2m_field="products")
    page = admin_client.get(reverse("admin:eventhub_signalhook_changelist")).content.decode()

    assert '<td class="field-fires">status changed</td>' in page
    assert '<td class="field-fires">products changed (m2m)</td>' in page
    assert "only when one of the watched fields changed" not in page
    # Hooks declared in code: the default subject is shown as text, the headers as the admin's own.
    code = page[page.index('id="code-hooks-table"') :]
    assert "&lt;app_label&gt;.&lt;model&gt;/&lt;pk&gt;" in code or "product/{sku}" in code
    assert '<th scope="col"><div class="text"><span>fires when</span></div></th>' in code
