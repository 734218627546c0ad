"""Hooks declared in code: they emit as admin hooks do, are listed read-only, refuse bad options."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from eventhub import hooks
from eventhub.models import Event
from shop.models import Customer, Order, Product
from tests.support import factories


@pytest.fixture
def code_hook():
    names = []

    def declare(declare_func, *args, **kwargs):
        spec = declare_func(*args, **kwargs)
        names.append(spec.name)
        return spec

    yield declare
    for name in names:
        hooks.unregister(name)


@pytest.mark.django_db
def test_code_hooks_emit_and_are_listed_read_only_in_the_admin(admin_client, customer, code_hook):
    factories.event_type("order.shipped")
    code_hook(
        hooks.on_save,
        "shop.Order",
        "order.shipped",
        when="changed",
        fields=["status"],
        condition={"status": ["shipped"]},
        payload=lambda order: {"order_id": order.pk, "email": order.customer.email},
        name="test: order shipped",
    )
    order = Order.objects.create(customer=customer)
    order.status = "shipped"
    order.save()

    (event,) = factories.events_of("order.shipped")
    assert event.data == {"order_id": order.pk, "email": "ada@example.com"}
    page = admin_client.get(reverse("admin:eventhub_signalhook_changelist")).content.decode()
    assert "Hooks declared in code (read-only)" in page
    assert "test: order shipped" in page and "shop: product price changed" in page
    assert "product/{sku}" in page  # the shop's own code hook, with its subject template


@pytest.mark.django_db
def test_code_hooks_for_delete_and_m2m(customer, code_hook):
    factories.event_type("customer.gone")
    factories.event_type("order.products_added")
    code_hook(hooks.on_delete, Customer, "customer.gone", payload=["email"])
    code_hook(hooks.on_m2m, Order, "products", "order.products_added", actions=["add"])
    order = Order.objects.create(customer=customer)
    mug = Product.objects.create(sku="MUG", name="Mug", price_cents=1)
    order.products.add(mug)
    order.products.remove(mug)
    customer.delete()

    (added,) = factories.events_of("order.products_added")
    change = {"field": "products", "action": "add", "pks": [mug.pk]}
    assert added.data == {**order.to_event_data(), "m2m": change}
    assert [e.data for e in factories.events_of("customer.gone")] == [{"email": "ada@example.com"}]


def test_an_invalid_code_hook_fails_at_declaration():
    with pytest.raises(ImproperlyConfigured, match="Unknown field nope on shop.Order"):
        hooks.on_save(Order, "order.x", when="changed", fields=["nope"])
    with pytest.raises(ImproperlyConfigured, match="eventhub's own models cannot be hooked"):
        hooks.on_save(Event, "event.saved")


# --- bulk operations ----------------------------------------------------------------------
