"""The examples/ programs, run as their own processes: an event posted over plain HTTP by
examples/producer.py reaches examples/consumer.py over plain AMQP through an eventhub route."""

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from eventhub.ingest import tokens
from eventhub.models import Delivery, Event
from tests.conftest import RABBITMQ_URL, delete_queues
from tests.support import factories

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def foreign_queue():
    name = f"test-foreign-{uuid.uuid4().hex[:10]}"
    yield name
    delete_queues([name])


def run_example(name: str, *args: str, cwd: Path, **kwargs) -> subprocess.Popen:
    # Run from an empty directory with a clean PYTHONPATH: the examples cannot import eventhub.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def produce(live_server, token: str, *args: str, cwd: Path) -> dict:
    producer = run_example(
        "producer.py", "--url", live_server.url, "--token", token, "--type", "order.paid", *args, cwd=cwd
    )
    out, err = producer.communicate(timeout=30)
    assert producer.returncode == 0, err
    return json.loads(out)


def test_the_examples_do_not_import_eventhub():
    for path in EXAMPLES.glob("*.py"):
        text = path.read_text()
        assert "import eventhub" not in text and "from eventhub" not in text, path


def test_an_event_posted_by_http_reaches_the_example_consumer_over_amqp(
    live_server, rabbitmq_broker, run_worker, queue_name, exchange_name, foreign_queue, tmp_path
):
    paid = factories.event_type("order.paid")
    route = factories.route(paid, exchange_name, destination_kind="amqp", queue=queue_name)
    token = tokens.issue_token(name="example producer", event_types=[paid], sources=["/examples/*"]).token
    run_worker([queue_name])
    consumer = run_example(
        "consumer.py",
        *("--url", RABBITMQ_URL, "--exchange", exchange_name, "--binding-key", "order.*"),
        *("--queue", foreign_queue, "--count", "2", "--timeout", "30"),
        cwd=tmp_path,
    )
    try:
        assert "ready" in consumer.stderr.readline()

        first = produce(
            live_server, token, "--id", "php-1", "--subject", "order/42", "--data", '{"n": 1}', cwd=tmp_path
        )
        second = produce(live_server, token, "--binary", "--id", "go-2", "--data", '{"n": 2}', cwd=tmp_path)
        again = produce(
            live_server, token, "--id", "php-1", "--subject", "order/42", "--data", '{"n": 1}', cwd=tmp_path
        )

        out, err = consumer.communicate(timeout=30)
    finally:
        consumer.kill()
    assert consumer.returncode == 0, err
    received = [json.loads(line) for line in out.splitlines()]
    assert sorted(r["event"]["id"] for r in received) == ["go-2", "php-1"]
    php = next(r for r in received if r["event"]["id"] == "php-1")
    assert php["routing_key"] == "order.paid" and php["message_id"] == "php-1"
    assert php["event"]["source"] == "/examples/producer" and php["event"]["subject"] == "order/42"
    assert php["event"]["data"] == {"n": 1} and php["event"]["specversion"] == "1.0"
    assert first["duplicate"] is False and second["duplicate"] is False
    assert again == {**first, "duplicate": True}
    assert Event.objects.count() == 2
    wait_until(lambda: Delivery.objects.filter(route=route, status="succeeded").count() == 2)


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
