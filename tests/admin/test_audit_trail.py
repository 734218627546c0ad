"""Events, deliveries and replays are the audit trail: nobody deletes them in the admin (issue 14, 15)."""

import pytest
from django.urls import reverse

from eventhub.models import Delivery, Event, Replay
from tests.support import factories
from tests.support.factories import make_delivery

pytestmark = pytest.mark.django_db


@pytest.fixture
def delivery():
    return make_delivery(factories.route(factories.event_type("order.paid"), "h"), status="dead")


def test_a_superuser_cannot_delete_events_deliveries_or_replays(admin_client, delivery):
    replay = Replay.objects.create(kind="deliveries", username="ops")
    for name, pk in (("event", delivery.event_id), ("delivery", delivery.pk), ("replay", replay.pk)):
        assert admin_client.get(reverse(f"admin:eventhub_{name}_delete", args=[pk])).status_code == 403
        assert (
            admin_client.post(
                reverse(f"admin:eventhub_{name}_delete", args=[pk]), {"post": "yes"}
            ).status_code
            == 403
        )
        changelist = admin_client.get(reverse(f"admin:eventhub_{name}_changelist")).content.decode()
        assert 'value="delete_selected"' not in changelist
    assert Event.objects.count() == Delivery.objects.count() == Replay.objects.count() == 1
