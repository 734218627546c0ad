"""Signal hooks: admin and code hooks emit on save, update, delete and m2m changes, inside the
save's transaction; bad payloads never break a save; edits reach other processes; query costs."""

import time

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import signals
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse

from eventhub import emit, hook_table, hooks, selectors
from eventhub.errors import InvalidEventData
from eventhub.models import Delivery, Event, HookFailure, SignalHook
from shop.models import Customer, Order, Product
from tests import factories, process
from tests.waiting import wait_for

ORDER_SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "integer"}, "status": {"type": "string"}},
    "required": ["order_id", "status"],
}


def make_hook(event_type, model=Order, **fields) -> SignalHook:
    """A SignalHook row, validated as the admin would."""
    hook = SignalHook(
        name=fields.pop("name", f"hook {event_type.name}"),
        content_type=ContentType.objects.get_for_model(model),
        event_type=event_type,
        **fields,
    )
    hook.full_clean()
    hook.save()
    return hook


@pytest.fixture
def customer(db) -> Customer:
    return Customer.objects.create(name="Ada", email="ada@example.com")


def events(type_name: str) -> list[Event]:
    return list(Event.objects.filter(type=type_name).order_by("time", "created_at"))


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

    (event,) = events("order.saved")
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
    assert "| order</option>" in page and "Authentication and Authorization | user</option>" in page
    assert ">eventhub | event<" not in page and ">eventhub | delivery<" not in page


@pytest.mark.django_db
def test_on_create_and_on_update(customer):
    created = make_hook(factories.event_type("order.created"), name="created", when="created")
    make_hook(factories.event_type("order.updated"), name="updated", when="updated")
    assert created.enabled

    order = Order.objects.create(customer=customer)
    order.note = "gift wrap"
    order.save()
    order.save()

    assert len(events("order.created")) == 1
    assert len(events("order.updated")) == 2


@pytest.mark.django_db
def test_on_update_only_when_a_watched_field_changed(customer):
    make_hook(
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
    assert events("order.paid") == []

    order.status = "paid"
    order.save()
    order.save()  # saved again without a change: compared with what the last save wrote

    (event,) = events("order.paid")
    assert event.subject == f"order/{order.pk}"
    assert event.data == {
        "order_id": order.pk,
        "customer_id": customer.pk,
        "status": "paid",
        "total_cents": 0,
    }


@pytest.mark.django_db
def test_a_change_made_through_a_freshly_loaded_instance_is_seen(customer):
    make_hook(factories.event_type("order.status_changed"), when="changed", watch_fields="status")
    Order.objects.create(customer=customer)
    for order in Order.objects.all():
        order.status = "shipped"
        order.save()
    for order in Order.objects.only("pk", "note"):  # status deferred: it cannot have changed
        order.note = "x"
        order.save()
    assert [e.data["status"] for e in events("order.status_changed")] == ["shipped"]


@pytest.mark.django_db
def test_delete_emits_with_the_deleted_objects_values(customer):
    make_hook(
        factories.event_type("customer.deleted"),
        model=Customer,
        signal="post_delete",
        payload_fields="id, email",
        subject="customer/{pk}",
    )
    pk = customer.pk
    customer.delete()
    (event,) = events("customer.deleted")
    assert event.data == {"id": pk, "email": "ada@example.com"} and event.subject == f"customer/{pk}"


@pytest.mark.django_db
def test_m2m_add_remove_clear_from_either_side(customer):
    make_hook(
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

    changes = [e.data["m2m"] for e in events("order.products_changed")]
    assert changes == [
        {"field": "products", "action": "add", "pks": sorted([mug.pk, cap.pk])},
        {"field": "products", "action": "remove", "pks": [cap.pk]},
        {"field": "products", "action": "add", "pks": [cap.pk]},
        {"field": "products", "action": "clear", "pks": []},
    ]
    assert {e.data["id"] for e in events("order.products_changed")} == {order.pk}


@pytest.mark.django_db
def test_a_disabled_hook_emits_nothing(customer):
    hook = make_hook(factories.event_type("order.saved"))
    hook.enabled = False
    hook.save()
    Order.objects.create(customer=customer)
    assert events("order.saved") == []


# --- transactions -----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_event_is_part_of_the_saves_transaction_and_a_rollback_emits_nothing(
    customer, django_capture_on_commit_callbacks
):
    saved = factories.event_type("order.saved")
    factories.route(saved, "shop.log_event")
    make_hook(saved)

    with django_capture_on_commit_callbacks() as sends, pytest.raises(RuntimeError), transaction.atomic():
        Order.objects.create(customer=customer)
        assert len(events("order.saved")) == 1  # written with the order...
        raise RuntimeError("payment failed")
    assert events("order.saved") == [] and Delivery.objects.count() == 0  # ...and rolled back with it
    assert sends == []  # nothing was handed to the broker

    with django_capture_on_commit_callbacks() as sends, transaction.atomic():
        Order.objects.create(customer=customer)
    assert len(events("order.saved")) == 1 and len(sends) == 1  # sent once, after commit


# --- failures ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_payload_the_schema_refuses_leaves_the_save_intact_and_is_recorded(admin_client, customer):
    make_hook(
        factories.event_type("order.paid", schema=ORDER_SCHEMA),
        name="paid orders",
        payload_fields="id, status",  # the schema wants order_id
    )
    with transaction.atomic():
        order = Order.objects.create(customer=customer, total_cents=700)

    assert Order.objects.filter(pk=order.pk, total_cents=700).exists()
    assert events("order.paid") == []
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
    make_hook(factories.event_type("order.a"), name="a", payload="method")
    make_hook(factories.event_type("order.b", active=False), name="b")
    monkeypatch.setattr(Order, "to_event_data", lambda self: 1 / 0)

    Order.objects.create(customer=customer)

    errors = dict(HookFailure.objects.values_list("hook_name", "error"))
    assert errors["a"] == "Building the payload failed: ZeroDivisionError: division by zero"
    assert errors["b"] == "Event type 'order.b' is inactive and accepts no events."
    assert Order.objects.count() == 1 and Event.objects.count() == 0


# --- hooks declared in code ---------------------------------------------------------------


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

    (event,) = events("order.shipped")
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

    (added,) = events("order.products_added")
    change = {"field": "products", "action": "add", "pks": [mug.pk]}
    assert added.data == {**order.to_event_data(), "m2m": change}
    assert [e.data for e in events("customer.gone")] == [{"email": "ada@example.com"}]


def test_an_invalid_code_hook_fails_at_declaration():
    with pytest.raises(ImproperlyConfigured, match="Unknown field nope on shop.Order"):
        hooks.on_save(Order, "order.x", when="changed", fields=["nope"])
    with pytest.raises(ImproperlyConfigured, match="eventhub's own models cannot be hooked"):
        hooks.on_save(Event, "event.saved")


# --- bulk operations ----------------------------------------------------------------------


@pytest.mark.django_db
def test_bulk_operations_fire_no_signals_and_emit_for_fills_the_gap(customer):
    paid = factories.event_type("order.paid", schema=ORDER_SCHEMA)
    make_hook(paid, name="paid", when="changed", watch_fields="status", payload="method")
    Order.objects.bulk_create([Order(customer=customer), Order(customer=customer)])
    Order.objects.update(status="paid")
    assert events("order.paid") == []  # Django sent no signals

    emitted = hooks.emit_for(Order.objects.all(), hook="paid")
    assert sorted(e.data["order_id"] for e in emitted) == sorted(Order.objects.values_list("pk", flat=True))
    assert len(events("order.paid")) == 2

    factories.event_type("order.imported")
    (event,) = hooks.emit_for([Order.objects.first()], "order.imported")
    assert event.data["status"] == "paid" and event.subject.startswith("shop.order/")
    with pytest.raises(InvalidEventData):  # unlike a hook, an explicit call refuses bad data
        hooks.emit_for(Customer.objects.all(), "order.paid")


# --- other processes -----------------------------------------------------------------------

TOUCH_LOOP = """
import time
from shop.models import Customer
deadline = time.monotonic() + 60
i = 0
while time.monotonic() < deadline:
    i += 1
    customer = Customer.objects.get(email="ada@example.com")
    customer.name = f"Ada {i}"
    customer.save()
    time.sleep(0.05)
"""


@pytest.mark.django_db(transaction=True)
def test_a_hook_edited_here_takes_effect_in_a_running_process_without_restart(customer):
    touched = factories.event_type("customer.touched")
    env = process.command_env(EVENTHUB_HOOKS_REFRESH_SECONDS="0.5")
    other = process.manage("shell", "-c", TOUCH_LOOP, env=env)
    try:
        wait_for(lambda: Customer.objects.get(pk=customer.pk).name.startswith("Ada "))
        assert events("customer.touched") == []  # saving away, no hook yet

        started = time.monotonic()
        hook = make_hook(touched, model=Customer, when="changed", watch_fields="name", payload_fields="name")
        wait_for(lambda: events("customer.touched"))
        took = time.monotonic() - started

        hook.payload_fields = "email"  # an edit, not just an on/off switch
        hook.save()
        wait_for(lambda: events("customer.touched")[-1].data == {"email": "ada@example.com"})

        hook.enabled = False
        hook.save()
        time.sleep(1.5)  # the refresh interval, with room for a save in flight
        count = Event.objects.filter(type="customer.touched").count()
        name = Customer.objects.get(pk=customer.pk).name
        time.sleep(1.0)
        assert Customer.objects.get(pk=customer.pk).name != name  # it kept saving...
        assert Event.objects.filter(type="customer.touched").count() == count  # ...without emitting
        assert other.poll() is None
    finally:
        other.terminate()
        other.wait(timeout=10)
    assert took < 5.0


FIRST_SAVES = """
from shop.models import Order
order = Order.objects.get(note="first")
order.total_cents = 100
order.save()
order.status = "paid"
order.save()
"""


@pytest.mark.django_db(transaction=True)
def test_a_fresh_process_knows_previous_values_from_its_very_first_load(customer):
    make_hook(factories.event_type("order.paid"), when="changed", watch_fields="status", payload="method")
    Order.objects.create(customer=customer, note="first")

    done = process.run_manage("shell", "-c", FIRST_SAVES)

    assert done.returncode == 0, done.stderr
    assert [e.data["status"] for e in events("order.paid")] == ["paid"]


# --- query cost ----------------------------------------------------------------------------


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
        make_hook(paid, when="changed", watch_fields="status", condition=paid_only, payload="method")
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
