"""manage.py emit and manage.py eventhub_worker, run as real processes."""

import os
import signal
import subprocess

import pytest

from eventhub.models import Delivery, Event
from tests.support import factories
from tests.support.process import command_env, run_manage, start_worker
from tests.support.waiting import wait_for
from tests.testapp.models import Effect

pytestmark = pytest.mark.django_db(transaction=True)

SCHEMA = {"type": "object", "required": ["order_id"], "properties": {"order_id": {"type": "integer"}}}


def test_emit_command_stores_the_event_and_reports_its_deliveries(queue_name):
    factories.route(factories.event_type("order.paid", schema=SCHEMA), "testapp.record", queue=queue_name)
    result = run_manage("emit", "order.paid", "--data", '{"order_id": 7}', "--subject", "order/7")
    assert result.returncode == 0, result.stderr
    event = Event.objects.get()
    assert f"emitted order.paid {event.pk} with 1 delivery" in result.stdout
    assert event.subject == "order/7" and event.data == {"order_id": 7}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["order.paid", "--data", '{"order_id": "x"}'], "'x' is not of type 'integer'"),
        (["order.paid", "--data", "{oops"], "--data is not valid JSON"),
        (["no.such", "--data", "{}"], "Unknown event type 'no.such'"),
    ],
)
def test_emit_command_refuses_bad_input_with_exit_status_1(args, message):
    factories.event_type("order.paid", schema=SCHEMA)
    result = run_manage("emit", *args)
    assert result.returncode == 1
    assert message in result.stderr
    assert not Event.objects.exists()


def test_emit_command_on_the_embedded_broker_runs_the_delivery_before_exiting():
    factories.route(factories.event_type("order.paid"), "testapp.record")
    result = run_manage("emit", "order.paid", "--data", "{}", env=command_env(BROKER_URL=""))
    assert result.returncode == 0, result.stderr
    assert "succeeded" in result.stdout
    assert Effect.objects.count() == 1


def test_worker_command_delivers_and_stops_cleanly_on_sigterm(rabbitmq_broker, queue_name):
    from eventhub import emit

    route = factories.route(factories.event_type("order.paid"), "testapp.record", queue=queue_name)
    worker = start_worker(
        queue_name,
        relay=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        events = [emit("order.paid", data={"n": n}, source="/tests/worker") for n in range(5)]
        wait_for(lambda: Delivery.objects.filter(route=route, status="succeeded").count() == 5, timeout=30)
        assert all(d.worker.split(":")[1].split("/")[0] != str(os.getpid()) for d in route.deliveries.all())
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, output
    assert sorted(Effect.objects.values_list("event_id", flat=True)) == sorted(str(e.pk) for e in events)


def test_worker_command_refuses_the_embedded_broker():
    result = run_manage("eventhub_worker", env=command_env(BROKER_URL=""))
    assert result.returncode == 1
    assert "BROKER_URL is not set" in result.stderr
