"""The per-process hook table: edits reach running processes without a restart."""

import time

import pytest

from eventhub.models import Event
from shop.models import Customer, Order
from tests.support import factories, process
from tests.support.waiting import wait_for

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


FIRST_SAVES = """
from shop.models import Order
order = Order.objects.get(note="first")
order.total_cents = 100
order.save()
order.status = "paid"
order.save()
"""


@pytest.mark.django_db(transaction=True)
def test_a_hook_edited_here_takes_effect_in_a_running_process_without_restart(customer):
    touched = factories.event_type("customer.touched")
    env = process.command_env(EVENTHUB_HOOKS_REFRESH_SECONDS="0.5")
    other = process.manage("shell", "-c", TOUCH_LOOP, env=env)
    try:
        wait_for(lambda: Customer.objects.get(pk=customer.pk).name.startswith("Ada "))
        assert factories.events_of("customer.touched") == []  # saving away, no hook yet

        started = time.monotonic()
        hook = factories.signal_hook(
            touched, model=Customer, when="changed", watch_fields="name", payload_fields="name"
        )
        wait_for(lambda: factories.events_of("customer.touched"))
        took = time.monotonic() - started

        hook.payload_fields = "email"  # an edit, not just an on/off switch
        hook.save()
        wait_for(lambda: factories.events_of("customer.touched")[-1].data == {"email": "ada@example.com"})

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


@pytest.mark.django_db(transaction=True)
def test_a_fresh_process_knows_previous_values_from_its_very_first_load(customer):
    factories.signal_hook(
        factories.event_type("order.paid"), when="changed", watch_fields="status", payload="method"
    )
    Order.objects.create(customer=customer, note="first")

    done = process.run_manage("shell", "-c", FIRST_SAVES)

    assert done.returncode == 0, done.stderr
    assert [e.data["status"] for e in factories.events_of("order.paid")] == ["paid"]


# --- query cost ----------------------------------------------------------------------------
