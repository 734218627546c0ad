"""The worker's one-statement writes: what a claim loads and leaves alone; outcomes beside claims."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.utils import timezone

from eventhub.models import Attempt, Delivery, Event, EventType
from eventhub.worker.writes import ClaimRequest, OutcomeRequest, claim_unstarted, write_batch
from tests.support import factories

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

    [claimed] = claim_unstarted([stored.pk], worker="host:1/t", now=now)

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
    assert claim_unstarted([stored.pk], worker="w", now=timezone.now()) == [None]
    assert claim_unstarted([stored.pk + 1000], worker="w", now=timezone.now()) == [None]
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

    claimed = write_batch(requests)

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
            return claim_unstarted([delivery.pk], worker=f"w/{delivery.pk}", now=timezone.now())[0]
        finally:
            connection.close()

    with ThreadPoolExecutor(len(deliveries)) as pool:
        claimed = list(pool.map(claim, deliveries))

    assert [d.pk for d in claimed] == [d.pk for d in deliveries]
    assert [d.worker for d in claimed] == [f"w/{d.pk}" for d in deliveries]
    assert set(Delivery.objects.values_list("status", flat=True)) == {"running"}


def outcome_for(delivery: Delivery, status: str, error: str = "") -> OutcomeRequest:
    now = timezone.now()
    return OutcomeRequest(delivery.pk, 1, now, now, 2.5, "w/1", status, error)


def test_claims_and_outcomes_in_one_statement_each_change_only_their_own_columns():
    running, failing, queued = delivery_with("queued"), delivery_with("queued"), delivery_with("queued")
    started = timezone.now()
    write_batch([ClaimRequest(running.pk, "w/1", started), ClaimRequest(failing.pk, "w/1", started)])
    done, retry = outcome_for(running, "succeeded"), outcome_for(failing, "retrying", "ValueError: no")

    results = write_batch([done, ClaimRequest(queued.pk, "w/2", started), retry])

    assert [r.pk if r else None for r in results] == [None, queued.pk, None]
    rows = {d.pk: d for d in Delivery.objects.all()}
    assert (rows[running.pk].status, rows[running.pk].attempts, rows[running.pk].worker) == (
        "succeeded",
        1,
        "w/1",
    )
    assert rows[running.pk].started_at == started and rows[running.pk].finished_at == done.finished_at
    assert (rows[failing.pk].status, rows[failing.pk].last_error, rows[failing.pk].duration_ms) == (
        "retrying",
        "ValueError: no",
        2.5,
    )
    assert (rows[queued.pk].status, rows[queued.pk].attempts, rows[queued.pk].finished_at) == (
        "running",
        1,
        None,
    )
    assert sorted(Attempt.objects.values_list("delivery_id", "succeeded")) == [
        (running.pk, True),
        (failing.pk, False),
    ]


def test_a_duplicate_claim_beside_its_deliverys_outcome_gets_nothing():
    delivery = delivery_with("queued")
    write_batch([ClaimRequest(delivery.pk, "w/1", timezone.now())])

    results = write_batch(
        [ClaimRequest(delivery.pk, "w/2", timezone.now()), outcome_for(delivery, "succeeded")]
    )

    assert results == [None, None]
    row = Delivery.objects.get(pk=delivery.pk)
    assert (row.status, row.attempts, row.worker) == ("succeeded", 1, "w/1")


def test_a_batch_of_claims_commits_without_waiting_for_the_disk_and_one_with_an_outcome_waits():
    first, second = delivery_with("queued"), delivery_with("queued")

    # A raw BEGIN (unknown to Django) keeps the setting the statement made visible to SHOW.
    def commit_setting(requests):
        with connection.cursor() as cursor:
            cursor.execute("BEGIN")
            try:
                write_batch(requests)
                cursor.execute("SHOW synchronous_commit")
                return cursor.fetchone()[0]
            finally:
                cursor.execute("ROLLBACK")

    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        default = cursor.fetchone()[0]
    write_batch([ClaimRequest(second.pk, "w/1", timezone.now())])

    assert commit_setting([ClaimRequest(first.pk, "w/1", timezone.now())]) == "off"
    assert (
        commit_setting([ClaimRequest(first.pk, "w/1", timezone.now()), outcome_for(second, "succeeded")])
        == default
    )
