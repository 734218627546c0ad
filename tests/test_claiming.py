"""The one-statement claim: what it loads, and which deliveries it leaves to the full claim."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.utils import timezone

from eventhub.claiming import ClaimRequest, claim_batch, claim_unstarted
from eventhub.models import Delivery, Event, EventType
from tests import factories

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's data-modifying CTEs"),
]


def delivery_with(status: str) -> Delivery:
    paid = EventType.objects.filter(name="order.paid").first() or factories.event_type("order.paid")
    route = factories.route(paid, "billing.invoice", filter={"data": {"amount": [{"numeric": [">", 1]}]}})
    event = Event.objects.create(
        event_type=paid,
        type=paid.name,
        source="/shop",
        time=timezone.now(),
        data={"order_id": 7, "tags": ["a"]},
    )
    return Delivery.objects.create(event=event, route=route, status=status, created_at=timezone.now())


@pytest.mark.parametrize("status", ["pending", "queued", "retrying"])
def test_an_unstarted_delivery_is_claimed_and_loaded_with_its_event_and_route(status):
    stored = delivery_with(status)
    now = timezone.now()

    claimed = claim_unstarted(stored.pk, worker="host:1/t", now=now)

    assert (claimed.pk, claimed.status, claimed.attempts, claimed.worker) == (
        stored.pk,
        "running",
        1,
        "host:1/t",
    )
    assert claimed.started_at == now
    assert claimed.event.data == {"order_id": 7, "tags": ["a"]}
    assert claimed.event.envelope == Event.objects.get(pk=stored.event_id).envelope
    assert claimed.route.filter == {"data": {"amount": [{"numeric": [">", 1]}]}}
    assert (
        claimed.route.target == "billing.invoice" and claimed.route.max_attempts == stored.route.max_attempts
    )
    row = Delivery.objects.get(pk=stored.pk)
    assert (row.status, row.attempts, row.worker) == ("running", 1, "host:1/t")


@pytest.mark.parametrize("status", ["running", "succeeded", "dead"])
def test_running_finished_and_unknown_deliveries_are_left_alone(status):
    stored = delivery_with(status)
    assert claim_unstarted(stored.pk, worker="w", now=timezone.now()) is None
    assert claim_unstarted(stored.pk + 1000, worker="w", now=timezone.now()) is None
    row = Delivery.objects.get(pk=stored.pk)
    assert (row.status, row.attempts, row.worker) == (status, 0, "")


def test_one_statement_claims_several_deliveries_and_a_duplicate_only_once():
    first, second, done = delivery_with("queued"), delivery_with("pending"), delivery_with("succeeded")
    now = timezone.now()
    requests = [
        ClaimRequest(first.pk, "w/1", now),
        ClaimRequest(done.pk, "w/2", now),
        ClaimRequest(second.pk, "w/3", now),
        ClaimRequest(first.pk, "w/4", now),
    ]

    claimed = claim_batch(requests)

    assert [d.pk if d else None for d in claimed] == [first.pk, None, second.pk, None]
    assert [d.worker for d in claimed if d] == ["w/1", "w/3"]
    assert claimed[2].event.pk == second.event_id and claimed[2].route.pk == second.route_id
    rows = dict(Delivery.objects.values_list("pk", "attempts"))
    assert (rows[first.pk], rows[second.pk], rows[done.pk]) == (1, 1, 0)


def test_threads_claiming_at_once_each_get_their_own_delivery():
    deliveries = [delivery_with("queued") for _ in range(12)]
    start = threading.Barrier(len(deliveries))

    def claim(delivery):
        start.wait()
        try:
            return claim_unstarted(delivery.pk, worker=f"w/{delivery.pk}", now=timezone.now())
        finally:
            connection.close()

    with ThreadPoolExecutor(len(deliveries)) as pool:
        claimed = list(pool.map(claim, deliveries))

    assert [d.pk for d in claimed] == [d.pk for d in deliveries]
    assert [d.worker for d in claimed] == [f"w/{d.pk}" for d in deliveries]
    assert set(Delivery.objects.values_list("status", flat=True)) == {"running"}
