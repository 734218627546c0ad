"""Emitting for a hook: in the save's transaction, failures recorded not raised, emit_for for bulk writes."""

import pytest
from django.db import transaction
from django.urls import reverse

from eventhub import hooks
from eventhub.dashboard import selectors
from eventhub.errors import InvalidEventData
from eventhub.models import Delivery, Event, HookFailure
from shop.models import Customer, Order
from tests.support import factories

ORDER_SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "integer"}, "status": {"type": "string"}},
    "required": ["order_id", "status"],
}


@pytest.mark.django_db
def test_the_event_is_part_of_the_saves_transaction_and_a_rollback_emits_nothing(
    customer, django_capture_on_commit_callbacks
):
    saved = factories.event_type("order.saved")
    factories.route(saved, "shop.log_event")
    factories.signal_hook(saved)

    with django_capture_on_commit_callbacks() as sends, pytest.raises(RuntimeError), transaction.atomic():
        Order.objects.create(customer=customer)
        assert len(factories.events_of("order.saved")) == 1  # written with the order...
        raise RuntimeError("payment failed")
    assert (
        factories.events_of("order.saved") == [] and Delivery.objects.count() == 0
    )  # ...and rolled back with it
    assert sends == []  # nothing was handed to the broker

    with django_capture_on_commit_callbacks() as sends, transaction.atomic():
        Order.objects.create(customer=customer)
    assert len(factories.events_of("order.saved")) == 1 and len(sends) == 1  # sent once, after commit


# --- failures ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_payload_the_schema_refuses_leaves_the_save_intact_and_is_recorded(admin_client, customer):
    factories.signal_hook(
        factories.event_type("order.paid", schema=ORDER_SCHEMA),
        name="paid orders",
        payload_fields="id, status",  # the schema wants order_id
    )
    with transaction.atomic():
        order = Order.objects.create(customer=customer, total_cents=700)

    assert Order.objects.filter(pk=order.pk, total_cents=700).exists()
    assert factories.events_of("order.paid") == []
    failure = HookFailure.objects.get()
    assert failure.hook_name == "paid orders" and failure.event_type == "order.paid"
    assert failure.model == "shop.order" and failure.object_pk == str(order.pk)
    assert "'order_id' is a required property" in failure.error
    assert failure.data == {"id": order.pk, "status": "new"}
    assert list(selectors.recent_hook_failures(5)) == [failure]
    page = admin_client.get(reverse("admin:eventhub_hookfailure_changelist")).content.decode()
    assert "paid orders" in page and "is a required property" in page


@pytest.mark.django_db
def test_a_failing_to_event_data_and_an_inactive_type_are_recorded_too(customer, monkeypatch):
    factories.signal_hook(factories.event_type("order.a"), name="a", payload="method")
    factories.signal_hook(factories.event_type("order.b", active=False), name="b")
    monkeypatch.setattr(Order, "to_event_data", lambda self: 1 / 0)

    Order.objects.create(customer=customer)

    errors = dict(HookFailure.objects.values_list("hook_name", "error"))
    assert errors["a"] == "Building the payload failed: ZeroDivisionError: division by zero"
    assert errors["b"] == "Event type 'order.b' is inactive and accepts no events."
    assert Order.objects.count() == 1 and Event.objects.count() == 0


# --- hooks declared in code ---------------------------------------------------------------


@pytest.mark.django_db
def test_bulk_operations_fire_no_signals_and_emit_for_fills_the_gap(customer):
    paid = factories.event_type("order.paid", schema=ORDER_SCHEMA)
    factories.signal_hook(paid, name="paid", when="changed", watch_fields="status", payload="method")
    Order.objects.bulk_create([Order(customer=customer), Order(customer=customer)])
    Order.objects.update(status="paid")
    assert factories.events_of("order.paid") == []  # Django sent no signals

    emitted = hooks.emit_for(Order.objects.all(), hook="paid")
    assert sorted(e.data["order_id"] for e in emitted) == sorted(Order.objects.values_list("pk", flat=True))
    assert len(factories.events_of("order.paid")) == 2

    factories.event_type("order.imported")
    (event,) = hooks.emit_for([Order.objects.first()], "order.imported")
    assert event.data["status"] == "paid" and event.subject.startswith("shop.order/")
    with pytest.raises(InvalidEventData):  # unlike a hook, an explicit call refuses bad data
        hooks.emit_for(Customer.objects.all(), "order.paid")


# --- other processes -----------------------------------------------------------------------
