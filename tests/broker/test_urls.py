"""BROKER_URL listing a cluster's nodes: parsing, refusals at start, and failover to the next node."""

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pika
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from eventhub import broker as brokers
from eventhub import emit
from eventhub.broker import broker_parameters, split_broker_urls
from eventhub.broker.confirms import ConfirmingPublisher
from eventhub.models import Delivery
from eventhub.outbox import background
from tests.conftest import RABBITMQ_URL
from tests.support import factories
from tests.support.private_postgres import free_port
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_nodes_are_separated_by_commas_and_whitespace_is_ignored():
    value = " amqp://u:p@10.0.0.1:5672/app ,amqp://u:p@10.0.0.2:5672/app,\n  amqp://u:p@10.0.0.3/app "
    assert split_broker_urls(value) == [
        "amqp://u:p@10.0.0.1:5672/app",
        "amqp://u:p@10.0.0.2:5672/app",
        "amqp://u:p@10.0.0.3/app",
    ]
    assert [(p.host, p.port, p.virtual_host) for p in broker_parameters(value)] == [
        ("10.0.0.1", 5672, "app"),
        ("10.0.0.2", 5672, "app"),
        ("10.0.0.3", 5672, "app"),
    ]
    assert split_broker_urls("") == [] and split_broker_urls("stub://") == []


@pytest.mark.parametrize(
    "value, message",
    [
        ("amqp://u:p@a/app,amqp://u:p@b/other", "the same vhost; these differ"),
        ("amqp://u:p@a/%2F,amqp://u:p@b", None),  # "/" spelled two ways is one vhost
        ("amqp://u:p@a/app,amqp://v:p@b/app", "the same user"),
        ("amqp://u:p@a/app,amqps://u:p@b/app", r"the same scheme \(amqp/amqps\)"),
        ("amqp://u:p@a/app,redis://b", "amqp:// URLs separated by commas; got 'redis://b'"),
    ],
)
def test_a_list_mixing_vhosts_users_or_schemes_is_refused(value, message):
    if message is None:
        assert len(broker_parameters(value)) == 2
        return
    with pytest.raises(ImproperlyConfigured, match=message) as refused:
        broker_parameters(value)
    assert ":p@" not in str(refused.value)  # passwords are not repeated in the message


def test_a_bad_broker_url_list_stops_the_process_at_start():
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "DATABASE_URL")}
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**env, "DEBUG": "true", "BROKER_URL": "amqp://g:s@127.0.0.1/a,amqp://g:s@127.0.0.2/b"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "every URL must name the same vhost" in done.stderr
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**env, "DEBUG": "true", "BROKER_URL": RABBITMQ_URL, "EVENTHUB_QUEUE_TYPE": "stream"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "must be 'classic' or 'quorum'; got 'stream'" in done.stderr


def test_the_publisher_skips_a_node_that_does_not_answer(queue_name):
    down = pika.URLParameters(RABBITMQ_URL)
    down.port = free_port()  # nothing listens there
    publisher = ConfirmingPublisher([down, pika.URLParameters(RABBITMQ_URL)])
    try:
        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
        connection.channel().queue_declare(queue_name, durable=True)
        connection.close()
        assert publisher.publish([(queue_name, b"one"), (queue_name, b"two")]) == [True, True]
    finally:
        publisher.close()


@pytest.mark.django_db(transaction=True)
def test_publisher_and_workers_skip_a_first_node_that_does_not_answer(queue_name, run_worker, handler):
    parts = urlsplit(RABBITMQ_URL)
    down = parts._replace(netloc=f"{parts.netloc.rsplit('@', 1)[0]}@127.0.0.1:{free_port()}").geturl()
    calls, name = handler()
    factories.route(factories.event_type("order.paid"), name, queue=queue_name)
    try:
        with override_settings(EVENTHUB={**settings.EVENTHUB, "BROKER_URL": f"{down},{RABBITMQ_URL}"}):
            broker = brokers.setup()
            assert len(broker.parameters) == 2
            run_worker([queue_name])
            events = [emit("order.paid", data={"n": n}) for n in range(5)]
            wait_for(lambda: Delivery.objects.filter(event__in=events, status="succeeded").count() == 5)
            background.flush()
    finally:
        brokers.setup()
    assert sorted(c["data"]["n"] for c in calls) == [0, 1, 2, 3, 4]
