"""consul://service/path webhooks: real HTTP receivers registered as instances in the agent.

Discovery is switched on the way an operator does it, through CONSUL_HTTP_ADDR and
CONSUL_HTTP_TOKEN, pointing at the stand-in (or a real agent when CONSUL_HTTP_ADDR is set).
"""

import contextlib
import json
import socket
from collections import Counter

import consul
import pytest

from eventhub import discovery, emit
from eventhub.destinations import webhook
from eventhub.destinations.signing import verify
from eventhub.models import Delivery
from eventhub.worker.deliver import DeliveryFailed, deliver
from tests.support import factories
from tests.support.http_receivers import Receiver
from tests.support.waiting import wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent(consul_agent, monkeypatch):
    """Discovery switched on through the environment, pointing at this test's agent."""
    monkeypatch.setenv("CONSUL_HTTP_ADDR", f"{consul_agent.scheme}://{consul_agent.addr}")
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", consul_agent.token or "")
    discovery.reset_default_client()
    discovery.invalidate_instances()
    yield consul_agent
    discovery.reset_default_client()
    discovery.invalidate_instances()


@pytest.fixture
def receivers():
    started: list[Receiver] = []

    def start(count: int = 1, **kwargs) -> list[Receiver]:
        new = [Receiver(**kwargs).start() for _ in range(count)]
        started.extend(new)
        return new

    yield start
    for r in started:
        r.stop()


def register(agent, service: str, receivers: list[Receiver]) -> list[str]:
    """Register each receiver as an instance of ``service`` with a passing TTL check; their ids."""
    client = agent.client()
    ids = []
    for n, r in enumerate(receivers):
        instance_id = f"{service}-{n}"
        client.agent.service.register(
            service, service_id=instance_id, address=r.host, port=r.port, check=consul.Check.ttl("60s")
        )
        client.agent.check.ttl_pass(discovery.check_id(instance_id))
        ids.append(instance_id)
    return ids


def webhook_route(service: str, path: str = "/hooks/in", **fields):
    event_type = factories.event_type("order.paid")
    return factories.route(event_type, f"consul://{service}{path}", destination_kind="webhook", **fields)


def deliver_events(count: int) -> list[Delivery]:
    deliveries = [emit("order.paid", data={"n": n}).deliveries.get() for n in range(count)]
    for d in deliveries:
        with contextlib.suppress(DeliveryFailed):  # recorded as retrying; the broker would retry it
            deliver(d.pk)
    return [Delivery.objects.get(pk=d.pk) for d in deliveries]


@pytest.mark.django_db(transaction=True)
def test_deliveries_spread_over_the_healthy_instances(
    agent, receivers, rabbitmq_broker, queue_name, run_worker
):
    first, second = receivers(2)
    service = agent.unique_name("billing")
    register(agent, service, [first, second])
    route = webhook_route(service, queue=queue_name)
    run_worker([queue_name])

    events = [emit("order.paid", data={"n": n}) for n in range(6)]

    wait_for(lambda: Delivery.objects.filter(route=route, status="succeeded").count() == 6)
    assert len(first.requests) + len(second.requests) == 6
    assert len(first.requests) >= 2 and len(second.requests) >= 2  # turn by turn, give or take
    arrived = {json.loads(r.body)["id"] for r in first.requests + second.requests}
    assert arrived == {str(e.pk) for e in events}
    for request in first.requests + second.requests:
        assert request.path == "/hooks/in"
        verify(secret=route.secret, headers=request.headers, body=request.body)


def test_a_stopped_instance_is_skipped_within_the_same_attempt(agent, receivers, stub_broker):
    up, down = receivers(2)
    service = agent.unique_name("billing")
    register(agent, service, [up, down])
    webhook_route(service)
    down.stop()  # still passing in Consul: its check has not noticed yet

    deliveries = deliver_events(4)

    assert [(d.status, d.attempts) for d in deliveries] == [("succeeded", 1)] * 4
    assert len(up.requests) == 4


def test_an_instance_whose_check_fails_gets_nothing(agent, receivers, stub_broker):
    healthy, failing = receivers(2)
    service = agent.unique_name("billing")
    _, failing_id = register(agent, service, [healthy, failing])
    webhook_route(service)

    agent.client().agent.check.ttl_fail(discovery.check_id(failing_id), notes="disk full")
    discovery.invalidate_instances()  # or wait out the 2 s cache of healthy instances
    deliveries = deliver_events(4)

    assert {d.status for d in deliveries} == {"succeeded"}
    assert (len(healthy.requests), len(failing.requests)) == (4, 0)


def test_an_instance_answering_500_is_recorded_and_tried_last_next_time(agent, receivers, stub_broker):
    [broken] = receivers(1, status=500, reply=b"upstream exploded")
    [fine] = receivers(1)
    service = agent.unique_name("billing")
    register(agent, service, [broken, fine])
    webhook_route(service, max_attempts=3)

    deliveries = deliver_events(4)

    # Turn by turn, one of the first two deliveries meets the broken instance first; from
    # then on it is tried last, so it sees exactly one request.
    assert Counter(d.status for d in deliveries) == {"succeeded": 3, "retrying": 1}
    assert len(broken.requests) == 1 and len(fine.requests) == 3
    [retried] = [d for d in deliveries if d.status == "retrying"]
    assert retried.last_error == f"HttpStatusError: {broken.url}/hooks/in answered 500: upstream exploded"
    assert deliver(retried.pk).status == "succeeded"  # the retry goes to the other instance
    assert len(fine.requests) == 4


def test_no_healthy_instance_is_a_failure_that_is_retried(agent, stub_broker):
    service = agent.unique_name("nobody")
    webhook_route(service, max_attempts=3)
    [delivery] = deliver_events(1)
    assert delivery.status == "retrying"
    assert f"Consul service '{service}' has no healthy instance" in delivery.last_error


def test_consul_targets_need_discovery(monkeypatch, stub_broker):
    monkeypatch.delenv("CONSUL_HTTP_ADDR", raising=False)
    discovery.reset_default_client()
    try:
        webhook_route("billing", max_attempts=5)
        [delivery] = deliver_events(1)
    finally:
        discovery.reset_default_client()
    assert delivery.status == "dead" and "set CONSUL_HTTP_ADDR" in delivery.last_error


def test_an_ipv6_instance_is_reached(agent, receivers, stub_broker):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        [v6] = receivers(1, host="::1")
    except OSError as exc:
        pytest.skip(f"cannot listen on [::1]: {exc}")
    service = agent.unique_name("v6")
    register(agent, service, [v6])
    webhook_route(service, path="/in?src=eventhub")

    assert webhook.endpoints_for(f"consul://{service}/in")[0].url == f"http://[::1]:{v6.port}/in"
    [delivery] = deliver_events(1)
    assert delivery.status == "succeeded"
    assert [r.path for r in v6.requests] == ["/in?src=eventhub"]
