"""eventhub.discovery.instances: healthy instances of a service and their short cache.

Run against the Consul stand-in, or a real agent when CONSUL_HTTP_ADDR is set.
"""

from eventhub import discovery
from eventhub.discovery import (
    TTLCache,
    healthy_instances,
)
from tests.support.consul_fixtures import eventually, registration_for


def _ids(instances):
    return sorted(i.id for i in instances)


# -- clients from Consul's environment variables --------------------------------------------------


def test_instance_without_address_uses_the_nodes(consul_agent):
    client = consul_agent.client()
    reg = registration_for(consul_agent, port=9000)
    reg.register(client)
    discovery.heartbeat(client, reg.service_id)

    [instance] = eventually(lambda: healthy_instances(client, reg.service_name, use_cache=False))
    [entry] = client.health.service(reg.service_name)[1]
    assert instance.address == entry["Node"]["Address"] != ""


def test_healthy_instances_by_tag(consul_agent):
    client = consul_agent.client()
    blue = registration_for(consul_agent, tags=["blue"], suffix="blue")
    green = registration_for(consul_agent, tags=["green"], name=blue.service_name, suffix="green")
    for reg in (blue, green):
        reg.register(client)
        discovery.heartbeat(client, reg.service_id)

    eventually(lambda: len(healthy_instances(client, blue.service_name, use_cache=False)) == 2)
    assert _ids(healthy_instances(client, blue.service_name, tag="green")) == [green.service_id]
    assert _ids(healthy_instances(client, blue.service_name, tag="blue")) == [blue.service_id]


def test_healthy_instances_are_cached_briefly_and_invalidatable(consul_agent):
    client = consul_agent.client()
    first = registration_for(consul_agent, suffix="1")
    first.register(client)
    discovery.heartbeat(client, first.service_id)
    eventually(lambda: healthy_instances(client, first.service_name, use_cache=False))
    assert _ids(healthy_instances(client, first.service_name)) == [first.service_id]  # now cached

    # Registered behind discovery's back, so nothing invalidates the cache.
    second = f"{first.service_name}-2"
    client.agent.service.register(first.service_name, service_id=second, check={"TTL": "10s"})
    client.agent.check.ttl_pass(f"service:{second}")
    eventually(lambda: len(client.health.service(first.service_name, passing=True)[1]) == 2)

    assert _ids(healthy_instances(client, first.service_name)) == [first.service_id]
    discovery.invalidate_instances(first.service_name)
    assert _ids(healthy_instances(client, first.service_name)) == [first.service_id, second]


def test_ttl_cache_expires_entries():
    now = [100.0]
    cache = TTLCache(ttl=2.0, clock=lambda: now[0])
    cache.put("k", ["v"])
    now[0] += 1.9
    assert cache.get("k") == ["v"]
    now[0] += 0.2
    assert cache.get("k") is None
    cache.put(("a", 1), 1)
    cache.put(("b", 1), 2)
    cache.invalidate(lambda key: key[0] == "a")
    assert (cache.get(("a", 1)), cache.get(("b", 1))) == (None, 2)
