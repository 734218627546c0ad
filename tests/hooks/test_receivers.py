"""The hook receivers: which saves, deletes and m2m changes emit, and what a save costs."""

import pytest
from django.db import connection
from django.db.models import signals
from django.test.utils import CaptureQueriesContext, override_settings

from eventhub import emit
from eventhub.hooks import table as hook_table
from shop.models import Customer, Order, Product
from tests.support import factories

ORDER_SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "integer"}, "status": {"type": "string"}},
    "required": ["order_id", "status"],
}


@pytest.mark.django_db
def test_on_create_and_on_update(customer):
    created = factories.signal_hook(factories.event_type("order.created"), name="created", when="created")
    factories.signal_hook(factories.event_type("order.updated"), name="updated", when="updated")
    assert created.enabled

    order = Order.objects.create(customer=customer)
    order.note = "gift wrap"
    order.save()
    order.save()

    assert len(factories.events_of("order.created")) == 1
    assert len(factories.events_of("order.updated")) == 2


@pytest.mark.django_db
def test_on_update_only_when_a_watched_field_changed(customer):
    factories.signal_hook(
        factories.event_type("order.paid", schema=ORDER_SCHEMA),
        when="changed",
        watch_fields="status",
        condition={"status": ["paid"]},
        payload="method",
        subject="order/{pk}",
    )
    order = Order.objects.create(customer=customer, status="paid")  # created, not an update
    order = Order.objects.get(pk=order.pk)
    order.status = "new"
    order.save()  # changed, but the condition says paid only
    order.note = "no status change"
    order.save()
    assert factories.events_of("order.paid") == []

    order.status = "paid"
    order.save()
    order.save()  # saved again without a change: compared with what the last save wrote

    (event,) = factories.events_of("order.paid")
    assert event.subject == f"order/{order.pk}"
    assert event.data == {
        "order_id": order.pk,
        "customer_id": customer.pk,
        "status": "paid",
        "total_cents": 0,
    }


@pytest.mark.django_db
def test_a_change_made_through_a_freshly_loaded_instance_is_seen(customer):
    factories.signal_hook(factories.event_type("order.status_changed"), when="changed", watch_fields="status")
    Order.objects.create(customer=customer)
    for order in Order.objects.all():
        order.status = "shipped"
        order.save()
    for order in Order.objects.only("pk", "note"):  # status deferred: it cannot have changed
        order.note = "x"
        order.save()
    assert [e.data["status"] for e in factories.events_of("order.status_changed")] == ["shipped"]


@pytest.mark.django_db
def test_delete_emits_with_the_deleted_objects_values(customer):
    factories.signal_hook(
        factories.event_type("customer.deleted"),
        model=Customer,
        signal="post_delete",
        payload_fields="id, email",
        subject="customer/{pk}",
    )
    pk = customer.pk
    customer.delete()
    (event,) = factories.events_of("customer.deleted")
    assert event.data == {"id": pk, "email": "ada@example.com"} and event.subject == f"customer/{pk}"


@pytest.mark.django_db
def test_m2m_add_remove_clear_from_either_side(customer):
    factories.signal_hook(
        factories.event_type("order.products_changed"),
        signal="m2m_changed",
        m2m_field="products",
        payload_fields="id",
    )
    mug = Product.objects.create(sku="MUG", name="Mug", price_cents=1200)
    cap = Product.objects.create(sku="CAP", name="Cap", price_cents=1800)
    order = Order.objects.create(customer=customer)

    order.products.add(mug, cap)
    order.products.remove(cap)
    cap.orders.add(order)  # the other side of the relation
    order.products.clear()

    changes = [e.data["m2m"] for e in factories.events_of("order.products_changed")]
    assert changes == [
        {"field": "products", "action": "add", "pks": sorted([mug.pk, cap.pk])},
        {"field": "products", "action": "remove", "pks": [cap.pk]},
        {"field": "products", "action": "add", "pks": [cap.pk]},
        {"field": "products", "action": "clear", "pks": []},
    ]
    assert {e.data["id"] for e in factories.events_of("order.products_changed")} == {order.pk}


@pytest.mark.django_db
def test_a_disabled_hook_emits_nothing(customer):
    hook = factories.signal_hook(factories.event_type("order.saved"))
    hook.enabled = False
    hook.save()
    Order.objects.create(customer=customer)
    assert factories.events_of("order.saved") == []


# --- transactions -----------------------------------------------------------------------


@pytest.mark.django_db
def test_what_a_save_costs_with_and_without_hooks(customer):
    def queries(func) -> int:
        with CaptureQueriesContext(connection) as captured:
            func()
        return len(captured)

    def touch_customer():
        customer.name += "!"
        customer.save()

    with override_settings(EVENTHUB={"HOOKS_REFRESH_SECONDS": 3600}):
        hook_table.refresh(force=True)
        baseline = queries(touch_customer)
        assert baseline == 1  # the UPDATE, nothing else

        paid = factories.event_type("order.paid", schema=ORDER_SCHEMA)
        paid_only = {"status": ["paid"]}
        factories.signal_hook(
            paid, when="changed", watch_fields="status", condition=paid_only, payload="method"
        )
        order = Order.objects.create(customer=customer)
        hook_table.refresh(force=True)

        assert queries(touch_customer) == baseline  # a model without hooks: no overhead at all
        # Receivers that cost per instance or disable fast deletes exist for hooked models only.
        assert signals.post_init.has_listeners(Order) and not signals.post_init.has_listeners(Customer)
        assert not signals.post_delete.has_listeners(Customer)
        assert queries(lambda: Order.objects.get(pk=order.pk)) == 1  # loading remembers values for free
        order = Order.objects.get(pk=order.pk)
        order.note = "gift"
        assert queries(order.save) == 1  # hooked, but nothing to emit: no overhead
        emit_cost = queries(lambda: emit("order.paid", {"order_id": 0, "status": "paid"}))
        order.status = "paid"
        assert queries(order.save) == 1 + emit_cost  # the UPDATE plus emit()'s own writes

    with override_settings(EVENTHUB={"HOOKS_REFRESH_SECONDS": 0}):
        assert queries(touch_customer) == baseline + 1  # the version check, once per interval
