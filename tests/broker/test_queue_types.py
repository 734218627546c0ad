"""QUEUE_TYPE="quorum" on the real RabbitMQ: quorum queues, retries and delays through them, refusals."""

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from eventhub import broker as brokers
from eventhub import emit
from eventhub.models import Attempt, Delivery
from tests.conftest import RABBITMQ_URL
from tests.support import factories
from tests.support.process import command_env, run_manage
from tests.support.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
QUORUM = {"BROKER_URL": RABBITMQ_URL, "QUEUE_TYPE": "quorum", "QUEUE_DELIVERY_LIMIT": 5}


def eventhub_with(**changes) -> dict:
    return {**settings.EVENTHUB, **changes}


@pytest.fixture
def quorum_broker():
    """eventhub on the real RabbitMQ with quorum queues, for one test."""
    from eventhub.outbox import background

    with override_settings(EVENTHUB=eventhub_with(**QUORUM)):
        broker = brokers.setup()
        yield broker
        background.flush()
    brokers.setup()


def types_of(queue_name: str) -> list[str]:
    """The types of the queue, its .DQ and its .XQ, as a classic deployment's declarations reveal them."""
    classic = brokers.TypedQueueBroker(url=RABBITMQ_URL, queue_type="classic")
    found = []
    try:
        for declare in (classic._declare_queue, classic._declare_dq_queue, classic._declare_xq_queue):
            try:
                declare(queue_name)
                found.append("classic")
            except brokers.QueueTypeMismatch as exc:
                found.append("quorum" if "current is the value 'quorum'" in str(exc) else str(exc))
    finally:
        classic.close()
    return found


def classic_deployment(queue_name: str) -> None:
    """The queues as eventhub with QUEUE_TYPE="classic" (Dramatiq's own declarations) leaves them."""
    classic = brokers.TypedQueueBroker(url=RABBITMQ_URL, queue_type="classic")
    classic.declare_queue(queue_name, ensure=True)
    classic.close()


def test_the_queue_and_its_delay_and_dead_letter_queues_are_quorum_queues(quorum_broker, queue_name):
    brokers.declare_queues([queue_name], ensure=True)
    assert types_of(queue_name) == ["quorum", "quorum", "quorum"]


def test_retries_and_delays_go_through_quorum_queues(quorum_broker, queue_name, run_worker, handler):
    failures = []

    def fail_twice(envelope):
        if len(failures) < 2:
            failures.append(1)
            raise ValueError("not yet")

    calls, name = handler(fail_twice)
    factories.route(factories.event_type("order.paid"), name, queue=queue_name, max_attempts=5)
    run_worker([queue_name])

    event = emit("order.paid", data={"n": 1})

    delivery = wait_for(lambda: Delivery.objects.filter(event=event, status="succeeded").first(), timeout=30)
    assert delivery.attempts == 3 and len(calls) == 3
    assert list(Attempt.objects.filter(delivery=delivery).values_list("succeeded", flat=True)) == [
        False,
        False,
        True,
    ]
    assert types_of(queue_name) == ["quorum", "quorum", "quorum"]  # the delays went through its .DQ


def test_a_classic_queue_of_the_same_name_is_refused_with_what_to_do(quorum_broker, queue_name):
    classic_deployment(queue_name)

    with pytest.raises(brokers.QueueTypeMismatch) as refused:
        brokers.declare_queues([queue_name], ensure=True)

    message = str(refused.value)
    assert f"queue {queue_name!r}" in message and "as a quorum queue" in message
    assert "inequivalent arg 'x-queue-type'" in message
    assert "docs/deployment.md" in message and "delete it and its .DQ and .XQ" in message
    # The channel the refusal closed is replaced: the broker keeps working for other queues.
    brokers.declare_queues([queue_name + "-other"], ensure=True)
    from tests.conftest import delete_queues

    delete_queues([queue_name + "-other"])


def test_the_worker_command_refuses_to_start_on_a_queue_of_another_type(queue_name):
    classic_deployment(queue_name)

    done = run_manage(
        "eventhub_worker", "--queues", queue_name, "--processes", "1",
        env=command_env(EVENTHUB_QUEUE_TYPE="quorum"),
    )  # fmt: skip

    assert done.returncode != 0
    assert f"refused to declare queue '{queue_name}'" in done.stderr and "as a quorum queue" in done.stderr
    assert "Dramatiq" not in done.stdout + done.stderr  # no worker was started


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"QUEUE_TYPE": "mirrored"}, "must be 'classic' or 'quorum'; got 'mirrored'"),
        (
            {"QUEUE_TYPE": "quorum", "QUEUE_DELIVERY_LIMIT": 0},
            "must be a whole number of at least 1",
        ),
    ],
)
def test_a_bad_queue_setting_is_refused(changes, message):
    with (
        override_settings(EVENTHUB=eventhub_with(BROKER_URL=RABBITMQ_URL, **changes)),
        pytest.raises(ImproperlyConfigured, match=message),
    ):
        brokers.build(RABBITMQ_URL)
