"""manage.py eventhub_seed: bulk history for the dashboard's benchmark."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from eventhub.models import Attempt, Delivery, DeliveryMinute, Event

pytestmark = pytest.mark.django_db


def test_seed_writes_deliveries_events_attempts_and_figures():
    out = StringIO()
    call_command("eventhub_seed", deliveries=401, days=0.5, batch=100, stdout=out)
    assert Delivery.objects.count() == 401
    assert Event.objects.count() == 201  # two routes per event type; the last event gets one
    statuses = set(Delivery.objects.values_list("status", flat=True))
    assert "succeeded" in statuses
    assert Attempt.objects.count() >= 401
    assert DeliveryMinute.objects.exists()
    assert "seeded 401/401 deliveries" in out.getvalue() and "Done: 401 deliveries" in out.getvalue()
    # Seeding again adds to the same routes, with new ids.
    call_command("eventhub_seed", deliveries=10, days=1, seed=2, stdout=StringIO())
    assert Delivery.objects.count() == 411


def test_seed_refuses_nonsense():
    with pytest.raises(CommandError, match="at least 1"):
        call_command("eventhub_seed", deliveries=0, stdout=StringIO())
