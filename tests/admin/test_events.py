"""The admin: event types and routes are validated on the admin's own forms; records are read-only."""

import re

import pytest
from django.urls import reverse

from eventhub import emit
from eventhub.models import Delivery, EventType, Route
from tests.support import factories

pytestmark = pytest.mark.django_db


# The endpoint health fields as the add form shows them (their defaults).
HEALTH_FIELDS = {
    "breaker_failures": 5,
    "breaker_failure_percent": 50,
    "breaker_min_attempts": 20,
    "breaker_window_seconds": 60,
    "probe_interval_seconds": 30,
    "release_per_second": 10,
}


def route_form(event_type: EventType, **overrides) -> dict:
    data = {
        **HEALTH_FIELDS,
        "name": "billing",
        "event_type": event_type.pk,
        "enabled": "on",
        "filter": "{}",
        "destination_kind": "handler",
        "target": "billing.invoice",
        "queue": "billing",
        "max_attempts": 5,
        "min_backoff_ms": 1000,
        "max_backoff_ms": 60000,
        "time_limit_ms": 30000,
    }
    data.update(overrides)
    return data


def test_a_valid_route_is_saved(admin_client):
    paid = factories.event_type("order.paid")
    form = route_form(paid, filter='{"data": {"amount": [{"numeric": [">", 100]}]}}')
    response = admin_client.post(reverse("admin:eventhub_route_add"), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    route = Route.objects.get(name="billing")
    assert route.filter == {"data": {"amount": [{"numeric": [">", 100]}]}}


@pytest.mark.parametrize(
    ("filter_text", "message"),
    [
        ('{"data": {"amount": [{"numeric": [">", "x"]}]}}', "numeric"),
        ('{"type": "order.paid"}', "list"),
        ('{"data": {"status": [{"prefix": 5}]}}', "prefix"),
        ("{not json", "Enter a valid JSON"),
    ],
)
def test_a_malformed_filter_is_refused_on_the_form(admin_client, filter_text, message):
    paid = factories.event_type("order.paid")
    response = admin_client.post(reverse("admin:eventhub_route_add"), route_form(paid, filter=filter_text))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "filter" in errors and message in " ".join(errors["filter"])
    assert not Route.objects.exists()


def test_the_schema_starts_empty_not_as_null_and_empty_means_none(admin_client):
    page = admin_client.get(reverse("admin:eventhub_eventtype_add")).content.decode()
    textarea = page[page.index('<textarea name="schema"') :]
    assert textarea[textarea.index(">") + 1 : textarea.index("</textarea>")].strip() == ""

    admin_client.post(
        reverse("admin:eventhub_eventtype_add"), {"name": "order.paid", "schema": "", "active": "on"}
    )
    paid = EventType.objects.get(name="order.paid")
    assert paid.schema is None
    change = admin_client.get(reverse("admin:eventhub_eventtype_change", args=[paid.pk])).content.decode()
    assert ">null</textarea>" not in change and ">\nnull</textarea>" not in change


def test_the_route_form_offers_handlers_and_shows_each_field_for_its_kind(admin_client, handler):
    _, name = handler()
    page = admin_client.get(reverse("admin:eventhub_route_add")).content.decode()

    select = page[
        page.index('<select name="handler"') : page.index("</select>", page.index('name="handler"'))
    ]
    assert f'<option value="{name}">{name}</option>' in select
    assert 'data-eventhub-kinds="handler"' in select
    assert re.search(r'<input type="text" name="target"[^>]*data-eventhub-kinds="webhook amqp"', page)
    assert '<span data-eventhub-kinds="webhook">Made when the route is saved' in page  # the signing secret
    assert "eventhub/admin/route_form.js" in page


def test_the_form_asks_for_no_secret_and_a_webhook_route_gets_one_of_its_own(admin_client, handler):
    _, name = handler()
    paid = factories.event_type("order.paid")
    handler_route = route_form(paid, name="h", target="", handler=name)
    webhook_route = route_form(paid, name="w", destination_kind="webhook", target="https://example.com/in")
    assert admin_client.post(reverse("admin:eventhub_route_add"), handler_route).status_code == 302
    # A webhook route's answer is the page that shows its new secret, once.
    assert admin_client.post(reverse("admin:eventhub_route_add"), webhook_route).status_code == 200
    assert Route.objects.get(name="h").target == name
    assert Route.objects.get(name="w").secret.startswith("whsec_")


def test_each_kind_asks_for_its_own_destination(admin_client):
    paid = factories.event_type("order.paid")
    for kind, field, message in (
        ("handler", "handler", "Choose the handler this route calls."),
        ("webhook", "target", "This field is required for this destination kind."),
    ):
        response = admin_client.post(
            reverse("admin:eventhub_route_add"),
            route_form(paid, destination_kind=kind, target="", handler=""),
        )
        assert message in response.context["adminform"].form.errors[field]
    assert not Route.objects.exists()


def test_backoff_bounds_are_checked(admin_client):
    paid = factories.event_type("order.paid")
    form = route_form(paid, min_backoff_ms=5000, max_backoff_ms=10)
    response = admin_client.post(reverse("admin:eventhub_route_add"), form)
    assert "must not be below the minimum" in " ".join(
        response.context["adminform"].form.errors["max_backoff_ms"]
    )


def test_a_malformed_schema_is_refused_with_what_is_wrong(admin_client):
    response = admin_client.post(
        reverse("admin:eventhub_eventtype_add"),
        {"name": "order.paid", "description": "", "schema": '{"type": "objekt"}', "active": "on"},
    )
    assert response.status_code == 200
    errors = " ".join(response.context["adminform"].form.errors["schema"])
    assert "Invalid JSON Schema" in errors and "objekt" in errors
    assert not EventType.objects.exists()


def test_event_type_names_must_be_dotted(admin_client):
    response = admin_client.post(
        reverse("admin:eventhub_eventtype_add"), {"name": "OrderPaid", "schema": "", "active": "on"}
    )
    assert "dotted lower-case name" in " ".join(response.context["adminform"].form.errors["name"])


def test_a_valid_schema_is_saved_and_enforced(admin_client, stub_broker):
    response = admin_client.post(
        reverse("admin:eventhub_eventtype_add"),
        {"name": "order.paid", "schema": '{"type": "object", "required": ["id"]}', "active": "on"},
    )
    assert response.status_code == 302
    assert EventType.objects.get(name="order.paid").schema == {"type": "object", "required": ["id"]}


def test_events_and_deliveries_are_read_only_with_search_and_filters(admin_client, stub_broker):
    paid = factories.event_type("order.paid")
    factories.route(paid, "h")
    event = emit("order.paid", data={"id": 1}, subject="order/1")
    delivery = event.deliveries.get()

    assert admin_client.get(reverse("admin:eventhub_event_add")).status_code == 403
    assert admin_client.get(reverse("admin:eventhub_delivery_add")).status_code == 403
    page = admin_client.get(reverse("admin:eventhub_event_change", args=[event.pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content

    found = admin_client.get(reverse("admin:eventhub_event_changelist"), {"q": "order/1"})
    assert str(event.pk) in found.content.decode()
    assert (
        str(event.pk)
        not in admin_client.get(reverse("admin:eventhub_event_changelist"), {"q": "order/2"}).content.decode()
    )
    listed = admin_client.get(reverse("admin:eventhub_delivery_changelist"), {"status__exact": "pending"})
    assert f">{delivery.pk}<" in listed.content.decode()
    none = admin_client.get(reverse("admin:eventhub_delivery_changelist"), {"status__exact": "dead"})
    assert f">{delivery.pk}<" not in none.content.decode()


def test_durations_in_the_delivery_list_are_rounded(admin_client):
    delivery = factories.make_delivery(factories.route(factories.event_type("order.paid"), "h"))
    Delivery.objects.filter(pk=delivery.pk).update(duration_ms=1.0933969999769033)

    listed = admin_client.get(reverse("admin:eventhub_delivery_changelist")).content.decode()
    detail = admin_client.get(reverse("admin:eventhub_delivery_change", args=[delivery.pk])).content.decode()

    assert '<td class="field-duration">1.1 ms</td>' in listed
    assert "1.0933969999769033" not in listed and "1.0933969999769033" not in detail
