"""eventhub.discovery.registration: registering workers, heartbeats, deregistering.

No database. Tests that need stand-in-only powers (forget, outage, request log) skip on a real agent;
the rest run against a real agent when CONSUL_HTTP_ADDR is set.
"""

import logging
import socket

import pytest

from eventhub import discovery
from eventhub.discovery import (
    Heartbeat,
    Registration,
    RegistrationLost,
    healthy_instances,
    list_consumers,
)
from tests.support.consul_fixtures import eventually, registration_for


@pytest.mark.parametrize(("value", "text"), [(15, "15s"), (15.0, "15s"), (0.5, "500ms"), ("1m", "1m")])
def test_format_duration(value, text):
    assert discovery.format_duration(value) == text


# -- register, heartbeat, look up, deregister ----------------------------------------------------------


def test_register_heartbeat_lookup_deregister(consul_agent):
    client = consul_agent.client()
    reg = registration_for(
        consul_agent, tags=discovery.worker_tags(["emails"]), address="10.1.2.3", port=9000
    )

    reg.register(client)
    assert healthy_instances(client, reg.service_name, use_cache=False) == []  # critical until a beat
    discovery.heartbeat(client, reg.service_id)

    [instance] = eventually(lambda: healthy_instances(client, reg.service_name, use_cache=False))
    assert (instance.id, instance.service, instance.address, instance.port) == (
        reg.service_id,
        reg.service_name,
        "10.1.2.3",
        9000,
    )
    assert instance.tags == ("eventhub-worker", "queue:emails")
    assert instance.meta["pid"] == "4242" and instance.node
    assert instance.base_url("https") == "https://10.1.2.3:9000"

    discovery.deregister(client, reg.service_id)
    assert eventually(lambda: healthy_instances(client, reg.service_name, use_cache=False) == [])
    discovery.deregister(client, reg.service_id)  # already gone: not an error


def test_heartbeat_for_an_unknown_worker_raises_registration_lost(consul_agent):
    with pytest.raises(RegistrationLost):
        discovery.heartbeat(consul_agent.client(), f"{consul_agent.unique_name()}-gone")


def test_ttl_expiry_makes_a_worker_critical_and_unhealthy(consul_agent):
    client = consul_agent.client()
    reg = registration_for(consul_agent, ttl=1.0)
    reg.register(client)
    discovery.heartbeat(client, reg.service_id)
    eventually(lambda: healthy_instances(client, reg.service_name, use_cache=False))

    [consumer] = eventually(
        lambda: [c for c in list_consumers(client, reg.service_name) if c.status == "critical"], timeout=5
    )

    assert healthy_instances(client, reg.service_name, use_cache=False) == []
    assert consumer.output.startswith("TTL expired (last output before timeout follows): ")
    assert consumer.last_heartbeat is not None  # the last words carry the time


def test_worker_registration_defaults_come_from_eventhub_settings():
    from django.conf import settings

    if not settings.configured:
        pytest.skip("needs Django settings (pytest-django)")
    from eventhub.conf import eventhub_settings

    reg = discovery.worker_registration(queues=["q"], host="h", pid=1)

    assert reg.service_name == eventhub_settings.CONSUL_SERVICE_NAME
    assert reg.ttl_seconds == eventhub_settings.CONSUL_CHECK_TTL_SECONDS
    assert reg.deregister_after == eventhub_settings.CONSUL_DEREGISTER_AFTER
    assert reg.service_id == f"{reg.service_name}-h-1" and "queue:q" in reg.tags


# -- the Heartbeat thread -----------------------------------------------------------------------


def test_heartbeat_thread_registers_passes_and_deregisters_on_stop(consul_agent):
    client = consul_agent.client()
    reg = registration_for(consul_agent)
    beat = Heartbeat(client, reg, interval=0.1).start()
    try:
        assert beat.wait_until_beating(timeout=5)
        assert eventually(lambda: healthy_instances(client, reg.service_name, use_cache=False))
    finally:
        beat.stop()

    assert not beat.running
    assert reg.service_id not in client.agent.services()


def test_heartbeat_registers_again_when_the_agent_forgets(consul_agent):
    standin = consul_agent.require_standin("only the stand-in can forget its services")
    reg = registration_for(consul_agent)
    beat = Heartbeat(consul_agent.client(), reg, interval=0.05).start()
    try:
        assert beat.wait_until_beating(timeout=5)
        standin.forget()
        assert eventually(lambda: beat.registrations >= 2)
        assert eventually(lambda: standin.check_status(f"service:{reg.service_id}") == "passing")
    finally:
        beat.stop()


def test_heartbeat_survives_an_outage_and_recovers(consul_agent, caplog):
    standin = consul_agent.require_standin("only the stand-in can be stopped")
    reg = registration_for(consul_agent)
    beat = Heartbeat(consul_agent.client(), reg, interval=0.05, min_backoff=0.02, max_backoff=0.1).start()
    try:
        assert beat.wait_until_beating(timeout=5)
        with caplog.at_level(logging.WARNING, logger="eventhub.discovery.client"):
            standin.stop()
            assert eventually(lambda: beat.failures >= 3)
            assert beat.running
            standin.start()
            assert eventually(lambda: beat.failures == 0)
        assert "retrying in" in caplog.text
        assert standin.check_status(f"service:{reg.service_id}") == "passing"
    finally:
        beat.stop()


def test_heartbeat_backoff_doubles_up_to_its_cap():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = discovery.make_client(f"127.0.0.1:{port}", timeout=1.0)
    beat = Heartbeat(client, Registration("svc", "svc-1"), min_backoff=1.0, max_backoff=30.0)

    delays = [beat.beat() for _ in range(7)]

    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert beat.failures == 7 and beat.last_beat is None


# -- tokens ----------------------------------------------------------------------------------------
