"""Several hosts at once: two relays side by side, two worker hosts in Consul and on the dashboard.

Each "host" is a real process with its own EVENTHUB_HOSTNAME, sharing the test's
PostgreSQL database and RabbitMQ as hosts of one deployment do. (Only one pruner
runs at a time: that belongs to retention, eventhub_prune, tested with it.)
"""

import contextlib
import json
import os
import re
import signal
import subprocess
from collections import Counter

import pika
import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection

from eventhub import broker as brokers
from eventhub import discovery, emit
from eventhub.models import Delivery
from tests.conftest import RABBITMQ_URL
from tests.support import factories
from tests.support.consul_fixtures import eventually
from tests.support.process import command_env, manage, start_worker
from tests.support.waiting import wait_for

pytestmark = [
    pytest.mark.rabbitmq,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="several hosts share a PostgreSQL database"),
]
PENDING = 2000


def drain(queue: str) -> list[int]:
    """Take every message off ``queue``: the delivery id each one carries."""
    ids = []
    link = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        channel = link.channel()
        while True:
            method, _, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return ids
            ids.append(json.loads(body)["args"][0])
    finally:
        link.close()


def test_two_relays_at_once_send_every_pending_delivery_exactly_once(rabbitmq_broker, queue_name):
    route = factories.route(factories.event_type("hosts.relay"), "testapp.record", queue=queue_name)
    rows = factories.pending_deliveries(route, PENDING)
    brokers.declare_queues([queue_name], ensure=True)  # no worker: the queue keeps what is sent

    relays = [
        manage(
            "eventhub_relay",
            "--once",
            "--after",
            "0",
            "--batch-size",
            "10",
            env=command_env(EVENTHUB_HOSTNAME=host),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for host in ("host-a", "host-b")
    ]
    outputs = [relay.communicate(timeout=180)[0] for relay in relays]

    sent = [int(re.search(r"relayed (\d+) pending", out).group(1)) for out in outputs]
    per_delivery = Counter(drain(queue_name))
    twice = {pk: n for pk, n in per_delivery.items() if n > 1}
    print(f"\n[relays] host-a sent {sent[0]}, host-b sent {sent[1]}; sent twice: {len(twice)}")
    assert not twice, f"deliveries sent more than once (id: messages): {twice}"
    assert set(per_delivery) == {d.pk for d in rows} and sum(sent) == PENDING, (sent, outputs)
    assert all(sent), f"both relays took batches (they ran side by side): {sent}"
    assert set(Delivery.objects.values_list("status", flat=True)) == {"queued"}


@pytest.fixture
def two_hosts(consul_agent, queue_name, tmp_path):
    """Two worker processes registered in Consul as hosts "host-a" and "host-b"."""
    service = consul_agent.unique_name("workers")
    procs = []
    for host in ("host-a", "host-b"):
        env = command_env(
            CONSUL_HTTP_ADDR=f"{consul_agent.scheme}://{consul_agent.addr}",
            CONSUL_HTTP_TOKEN=consul_agent.token or "",
            EVENTHUB_CONSUL_SERVICE_NAME=service,
            EVENTHUB_CONSUL_CHECK_TTL="3",
            EVENTHUB_HOSTNAME=host,
        )
        with (tmp_path / f"{host}.log").open("w") as log:
            procs.append(
                start_worker(
                    queue_name, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
    yield service
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_the_dashboard_lists_both_hosts_consumers(
    rabbitmq_broker, consul_agent, queue_name, two_hosts, client, settings, monkeypatch
):
    factories.route(factories.event_type("hosts.tick"), "testapp.record", queue=queue_name)
    found = eventually(
        lambda: (lambda c: c if len(c) == 2 else None)(
            [c for c in discovery.list_consumers(consul_agent.client(), two_hosts) if c.status == "passing"]
        ),
        timeout=60,
    )
    assert sorted(c.host for c in found) == ["host-a", "host-b"]
    assert sorted(c.id for c in found) == sorted(f"{two_hosts}-{c.host}-{c.pid}" for c in found)

    events = [emit("hosts.tick", data={"n": n}) for n in range(20)]
    wait_for(
        lambda: Delivery.objects.filter(event__in=events, status="succeeded").count() == 20,
        timeout=60,
        what="20 delivered",
    )
    hosts = {
        w.split(":")[0] for w in Delivery.objects.filter(event__in=events).values_list("worker", flat=True)
    }
    assert hosts <= {"host-a", "host-b"}, hosts

    settings.EVENTHUB = {**settings.EVENTHUB, "CONSUL_SERVICE_NAME": two_hosts}
    monkeypatch.setenv("CONSUL_HTTP_ADDR", consul_agent.addr)
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", consul_agent.token or "")
    operator = User.objects.create_user("op", is_staff=True)
    operator.user_permissions.add(*Permission.objects.filter(codename__in=["view_event", "view_delivery"]))
    client.force_login(operator)
    html = client.get("/eventhub/").content.decode()
    consumers = html[html.index('id="consumers"') :]
    for consumer in found:
        row_at = consumers.index(f"{consumer.host}:{consumer.pid}")
        row = consumers[row_at : consumers.index("</tr>", row_at)]
        assert "passing" in row and queue_name in row, row
