"""Delivery end to end: emit -> RabbitMQ -> a real Dramatiq worker -> handler -> recorded outcome."""

import logging
import time

import pytest

from eventhub import broker as brokers
from eventhub import emit
from eventhub.models import Attempt, Delivery
from eventhub.outbox.message import Outgoing, message_for
from eventhub.worker.deliver import INTERRUPTED, OutcomeNotRecorded
from tests.support import factories, refusals
from tests.support.waiting import wait_for
from tests.testapp.models import Switch

pytestmark = pytest.mark.django_db(transaction=True)


def test_emitted_event_reaches_the_handler_through_rabbitmq(rabbitmq_broker, queue_name, run_worker, handler):
    calls, name = handler()
    route = factories.route(factories.event_type("order.paid"), name, queue=queue_name)
    run_worker([queue_name])

    event = emit("order.paid", data={"order_id": 42}, subject="order/42")

    delivery = Delivery.objects.get(event=event, route=route)
    wait_for(lambda: Delivery.objects.get(pk=delivery.pk).status == "succeeded")
    delivery.refresh_from_db()
    assert calls == [event.envelope]
    assert calls[0]["subject"] == "order/42" and calls[0]["data"] == {"order_id": 42}
    assert delivery.attempts == 1 and delivery.last_error == ""
    assert delivery.worker and delivery.duration_ms is not None and delivery.finished_at
    assert Attempt.objects.get(delivery=delivery).succeeded


def test_a_redelivered_message_does_not_run_the_handler_again(
    rabbitmq_broker, queue_name, run_worker, handler
):
    calls, name = handler()
    route = factories.route(factories.event_type("order.paid"), name, queue=queue_name)
    run_worker([queue_name])
    event = emit("order.paid", data={"order_id": 1})
    delivery = Delivery.objects.get(event=event)
    wait_for(lambda: Delivery.objects.get(pk=delivery.pk).status == "succeeded")

    # RabbitMQ redelivers a message whose ack was lost: the same delivery id arrives again.
    rabbitmq_broker.enqueue(message_for(Outgoing.for_route(delivery.pk, route)))
    rabbitmq_broker.join(queue_name, timeout=10_000)
    time.sleep(0.2)

    assert len(calls) == 1
    assert Attempt.objects.filter(delivery=delivery).count() == 1
    assert Delivery.objects.get(pk=delivery.pk).attempts == 1


def test_a_failing_handler_is_retried_then_dead_with_its_error(
    rabbitmq_broker, queue_name, run_worker, handler
):
    def explode(envelope):
        raise ValueError("card declined")

    calls, name = handler(explode)
    factories.route(factories.event_type("order.paid"), name, queue=queue_name, max_attempts=3)
    run_worker([queue_name])

    event = emit("order.paid", data={"order_id": 1})

    delivery = wait_for(lambda: Delivery.objects.filter(event=event, status="dead").first())
    assert delivery.attempts == 3 and len(calls) == 3
    assert delivery.last_error == "ValueError: card declined"
    assert list(Attempt.objects.filter(delivery=delivery).values_list("number", "succeeded")) == [
        (1, False),
        (2, False),
        (3, False),
    ]


def test_a_route_naming_an_unknown_handler_is_dead_at_once(rabbitmq_broker, queue_name, run_worker):
    factories.route(factories.event_type("order.paid"), "nobody.registered.this", queue=queue_name)
    run_worker([queue_name])
    event = emit("order.paid", data={})
    delivery = wait_for(lambda: Delivery.objects.filter(event=event, status="dead").first())
    assert delivery.attempts == 1
    assert "No handler is registered as 'nobody.registered.this'" in delivery.last_error


def test_embedded_broker_delivers_in_process(stub_broker, handler):
    calls, name = handler()
    factories.route(factories.event_type("order.paid"), name)
    event = emit("order.paid", data={"n": 1})
    brokers.drain_embedded()
    assert [c["id"] for c in calls] == [str(event.id)]
    assert Delivery.objects.get(event=event).status == "succeeded"


def test_a_retried_attempt_logs_one_warning_line_and_the_dead_one_an_error_with_the_reason(
    rabbitmq_broker, queue_name, run_worker, handler, caplog
):
    def explode(envelope):
        raise ValueError("card declined")

    calls, name = handler(explode)
    factories.route(factories.event_type("order.paid"), name, queue=queue_name, max_attempts=2)
    run_worker([queue_name])

    with caplog.at_level(logging.INFO):
        event = emit("order.paid", data={"order_id": 1})
        delivery = wait_for(lambda: Delivery.objects.filter(event=event, status="dead").first())
        time.sleep(0.2)  # anything Dramatiq logs after the outcome

    ours = [(r.levelno, r.getMessage(), r.exc_info) for r in caplog.records if r.name.startswith("eventhub")]
    retried = f"Delivery {delivery.pk} attempt 1 of 2 failed; will retry: ValueError: card declined"
    dead = f"Delivery {delivery.pk} is dead after attempt 2 of 2: ValueError: card declined"
    assert (logging.WARNING, retried, None) in ours and (logging.ERROR, dead, None) in ours
    # Dramatiq's worker does not repeat the failure with a traceback: alerting on ERROR means a dead delivery.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [dead]
    assert not any(r.exc_info for r in caplog.records if r.levelno >= logging.WARNING)


@pytest.fixture
def refusing_attempts(transactional_db):
    """The database refuses new attempt rows while the returned switch is on."""
    switch = Switch.objects.create(name="attempts", on=False)
    with refusals.refusing("eventhub_attempt", "INSERT", switch="attempts"):
        yield switch


def test_an_attempt_whose_outcome_could_not_be_written_is_recorded_as_such_when_run_again(
    rabbitmq_broker, queue_name, run_worker, handler, refusing_attempts, caplog
):
    lost = OutcomeNotRecorded
    calls, name = handler()
    route = factories.route(factories.event_type("order.paid"), name, queue=queue_name, min_backoff_ms=50)
    refusing_attempts.on = True
    refusing_attempts.save()
    run_worker([queue_name])

    with caplog.at_level(logging.INFO):
        event = emit("order.paid", data={"order_id": 1})
        # The handler ran, then writing its outcome failed: a crash, which Dramatiq logs with its traceback.
        crash = wait_for(lambda: [r for r in caplog.records if _raised(r, lost)])
        refusing_attempts.on = False
        refusing_attempts.save()
        delivery = wait_for(lambda: Delivery.objects.filter(event=event, status="succeeded").first())

    assert crash[0].levelno == logging.ERROR and crash[0].exc_info
    history = list(Attempt.objects.filter(delivery=delivery).values_list("number", "succeeded", "error"))
    assert [h[:2] for h in history] == [(1, False), (2, True)]
    assert history[0][2].startswith("Outcome not recorded: the attempt ran (it may have taken effect)")
    assert refusals.MESSAGE in history[0][2]
    assert INTERRUPTED not in history[0][2]
    assert len(calls) == 2 and delivery.attempts == 2 and route.max_attempts == 5


def _raised(record: logging.LogRecord, exception: type[BaseException]) -> bool:
    return bool(record.exc_info) and isinstance(record.exc_info[1], exception)
