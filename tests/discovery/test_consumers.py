"""eventhub.discovery.consumers: the workers Consul lists, for the dashboard.

Run against the Consul stand-in, or a real agent when CONSUL_HTTP_ADDR is set.
"""

from datetime import UTC, datetime

from eventhub import discovery
from eventhub.discovery import (
    list_consumers,
)
from tests.support.consul_fixtures import eventually


def test_list_consumers_for_the_dashboard(consul_agent):
    client = consul_agent.client()
    reg = discovery.worker_registration(
        service_name=consul_agent.unique_name("workers"),
        queues=["emails", "billing"],
        handlers=["billing.invoice"],
        ttl_seconds=10,
        deregister_after="1m",
        host="worker-7",
        pid=4242,
    )
    before = datetime.now(UTC).replace(microsecond=0)
    reg.register(client)
    discovery.heartbeat(client, reg.service_id)

    [consumer] = eventually(lambda: list_consumers(client, reg.service_name))

    assert consumer.id == reg.service_id == f"{reg.service_name}-worker-7-4242"
    assert (consumer.host, consumer.pid, consumer.status) == ("worker-7", 4242, "passing")
    assert consumer.queues == ("billing", "emails") and consumer.handlers == ("billing.invoice",)
    assert consumer.last_heartbeat is not None and consumer.last_heartbeat >= before
    assert consumer.node
