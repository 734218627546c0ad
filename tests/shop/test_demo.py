"""The shop demo: manage.py eventhub_demo loads its configuration idempotently, and an order
paid in the admin reaches the receipt handler through RabbitMQ."""

import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from eventhub.models import Delivery, Event, EventType, HookFailure, Route, SignalHook
from shop.models import Customer, Order, Product, Receipt
from tests.support.waiting import wait_for


def run_demo(*args: str) -> str:
    out = StringIO()
    call_command("eventhub_demo", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_the_demo_command_is_idempotent_and_restores_its_configuration():
    first = run_demo("--with-orders")
    SignalHook.objects.filter(name="shop: order paid").update(enabled=False, watch_fields="note")
    second = run_demo("--with-orders", "--queue", "shop")

    assert "5 event types, 5 routes, 4 signal hooks (plus 1 declared in code)" in first
    assert "Sample orders created: 2." in first and "Sample orders created: 0." in second
    assert EventType.objects.count() == 5 and Route.objects.count() == 5 and SignalHook.objects.count() == 4
    assert set(Route.objects.values_list("queue", flat=True)) == {"shop"}
    paid = SignalHook.objects.get(name="shop: order paid")
    assert paid.enabled and paid.watch_fields == "status"
    assert Customer.objects.count() == 2 and Product.objects.count() == 3 and Order.objects.count() == 2
    # The sample data went through the hooks: two orders created, their products, one paid.
    assert sorted(Event.objects.values_list("type", flat=True)) == [
        "order.created",
        "order.created",
        "order.paid",
        "order.products_changed",
        "order.products_changed",
    ]
    assert not HookFailure.objects.exists()


@pytest.mark.django_db
def test_the_demo_has_customers_and_products_to_order_with_but_no_orders_unless_asked():
    output = run_demo()

    assert "2 customers and 3 products" in output and "Sample orders" not in output
    assert Customer.objects.count() == 2 and Product.objects.count() == 3 and not Order.objects.exists()
    run_demo()
    assert Customer.objects.count() == 2 and Product.objects.count() == 3  # no duplicates


@pytest.mark.django_db
def test_the_shop_admin_takes_money_and_totals_an_order_from_its_products(admin_client, stub_broker):
    run_demo()
    mug, tee = Product.objects.get(sku="MUG"), Product.objects.get(sku="TEE")

    assert "€12.00" in admin_client.get(reverse("admin:shop_product_changelist")).content.decode()
    form = {"customer": Customer.objects.first().pk, "status": "new", "total": "", "note": "",
            "products": [mug.pk, tee.pk]}  # fmt: skip
    response = admin_client.post(reverse("admin:shop_order_add"), form)
    assert response.status_code == 302, response.content.decode()[:2000]

    order = Order.objects.get()
    assert order.total_cents == 3700
    assert Event.objects.get(type="order.created").data["total_cents"] == 3700  # the hook saw the total
    assert "€37.00" in admin_client.get(reverse("admin:shop_order_changelist")).content.decode()
    edit = {**form, "total": "12.5", "products": [mug.pk]}
    admin_client.post(reverse("admin:shop_order_change", args=[order.pk]), edit)
    assert Order.objects.get().total_cents == 1250


@pytest.mark.django_db
def test_the_shops_code_hook_emits_once_its_event_type_exists():
    mug = Product.objects.create(sku="MUG", name="Mug", price_cents=1200)
    mug.price_cents = 1300
    mug.save()
    assert HookFailure.objects.get().error.startswith("Unknown event type 'product.price_changed'")

    run_demo()
    mug.price_cents = 1400
    mug.save()
    mug.name = "Big mug"
    mug.save()  # not a price change
    (event,) = Event.objects.filter(type="product.price_changed")
    assert event.subject == "product/MUG" and event.data == {"id": mug.pk, "sku": "MUG", "price_cents": 1400}


@pytest.mark.django_db(transaction=True)
def test_an_order_paid_in_the_admin_reaches_the_receipt_handler(
    admin_client, rabbitmq_broker, queue_name, run_worker
):
    run_demo("--queue", queue_name)
    run_worker([queue_name])
    ada = Customer.objects.get(email="ada@example.com")  # the demo's own customer
    order = Order.objects.create(customer=ada, total_cents=3700)

    form = {"customer": ada.pk, "status": "paid", "total": "37.00", "note": "", "products": []}
    response = admin_client.post(reverse("admin:shop_order_change", args=[order.pk]), form)
    assert response.status_code == 302, response.content.decode()[:2000]

    deadline = time.monotonic() + 15
    while not Receipt.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    receipt = Receipt.objects.get()
    assert receipt.order_id == order.pk and receipt.email == "ada@example.com"
    paid = Event.objects.get(type="order.paid")
    assert receipt.event_id == str(paid.id) and paid.subject == f"order/{order.pk}"
    # The handler's receipt is written before the worker records the outcome: wait for that too.
    wait_for(lambda: Delivery.objects.get(event=paid).status == "succeeded", timeout=15)
