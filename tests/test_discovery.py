"""eventhub.discovery against the Consul stand-in, or a real agent when CONSUL_HTTP_ADDR is set.

No database. Tests that need stand-in-only powers (forget, outage, request log) skip on a real agent.
"""

import logging
import socket
from datetime import UTC, datetime

import pytest

from eventhub import discovery
from eventhub.discovery import (
    DiscoveryUnavailable,
    Heartbeat,
    Registration,
    RegistrationLost,
    TTLCache,
    healthy_instances,
    list_consumers,
)
from tests import consul_fixtures
from tests.consul_fixtures import eventually

consul_agent = consul_fixtures.consul_agent  # also imported by tests/conftest.py


def _registration(agent, *, ttl=10.0, tags=(), address=None, port=None, name=None, suffix="a"):
    name = name or agent.unique_name("worker")
    return Registration(
        service_name=name,
        service_id=f"{name}-{suffix}",
        tags=tuple(tags),
        meta={"host": "worker-host", "pid": "4242"},
        ttl_seconds=ttl,
        deregister_after="1m",
        address=address,
        port=port,
    )


def _ids(instances):
    return sorted(i.id for i in instances)


# -- clients from Consul's environment variables --------------------------------------------------


def test_discovery_is_off_without_consul_http_addr():
    assert discovery.client_from_env({}) is None
    assert discovery.client_from_env({"CONSUL_HTTP_ADDR": "  ", "CONSUL_HTTP_TOKEN": "t"}) is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"CONSUL_HTTP_ADDR": "127.0.0.1:8500"}, ("http", "127.0.0.1", 8500, True)),
        ({"CONSUL_HTTP_ADDR": "consul.internal"}, ("http", "consul.internal", 8500, True)),
        ({"CONSUL_HTTP_ADDR": "https://consul.internal:8501"}, ("https", "consul.internal", 8501, True)),
        ({"CONSUL_HTTP_ADDR": "consul:8501", "CONSUL_HTTP_SSL": "true"}, ("https", "consul", 8501, True)),
        ({"CONSUL_HTTP_ADDR": "https://c:8501", "CONSUL_HTTP_SSL": "false"}, ("https", "c", 8501, True)),
        ({"CONSUL_HTTP_ADDR": "[::1]:8500"}, ("http", "::1", 8500, True)),
        (
            {"CONSUL_HTTP_ADDR": "https://c:8501", "CONSUL_CACERT": "/etc/consul/ca.pem"},
            ("https", "c", 8501, "/etc/consul/ca.pem"),
        ),
        (
            {"CONSUL_HTTP_ADDR": "https://c:8501", "CONSUL_HTTP_SSL_VERIFY": "0", "CONSUL_CACERT": "/ca.pem"},
            ("https", "c", 8501, False),
        ),
    ],
)
def test_settings_from_consuls_variables(env, expected):
    settings = discovery.settings_from_env(env)
    assert (settings.scheme, settings.host, settings.port, settings.verify) == expected


def test_token_and_client_certificate_from_the_environment(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    env = {"CONSUL_HTTP_ADDR": "c:8500", "CONSUL_HTTP_TOKEN_FILE": str(token_file)}

    assert discovery.settings_from_env(env).token == "from-file"
    assert discovery.settings_from_env({**env, "CONSUL_HTTP_TOKEN": "direct"}).token == "direct"
    with_cert = {**env, "CONSUL_CLIENT_CERT": "/c.pem", "CONSUL_CLIENT_KEY": "/k.pem"}
    assert discovery.settings_from_env(with_cert).cert == ("/c.pem", "/k.pem")


@pytest.mark.parametrize(
    "env",
    [
        {"CONSUL_HTTP_ADDR": "unix:///var/run/consul.sock"},
        {"CONSUL_HTTP_ADDR": "consul:http"},
        {"CONSUL_HTTP_ADDR": "c:8500", "CONSUL_HTTP_SSL": "maybe"},
    ],
)
def test_bad_environment_is_a_clear_error(env):
    with pytest.raises(ValueError, match="Consul address|CONSUL_HTTP_SSL"):
        discovery.client_from_env(env)


def test_explicit_arguments_win_over_the_environment(monkeypatch):
    # py-consul on its own lets CONSUL_HTTP_TOKEN override the token it is given.
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "elsewhere:1234")
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "from-env")
    monkeypatch.setenv("CONSUL_HTTP_SSL", "true")

    client = discovery.make_client("127.0.0.1:8500", token="explicit")
    anonymous = discovery.make_client("https://10.0.0.1:8501", token=None, verify=False)

    assert (client.token, client.http.base_uri) == ("explicit", "http://127.0.0.1:8500")
    assert (anonymous.token, anonymous.http.base_uri, anonymous.http.verify) == (
        None,
        "https://10.0.0.1:8501",
        False,
    )


def test_ipv6_agent_address():
    assert discovery.make_client("[::1]:8500").http.base_uri == "http://[::1]:8500"


def test_default_client_is_built_once_from_the_environment(monkeypatch):
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "127.0.0.1:8500")
    discovery.reset_default_client()
    try:
        assert discovery.default_client() is discovery.default_client() is not None
        monkeypatch.delenv("CONSUL_HTTP_ADDR")
        discovery.reset_default_client()
        assert discovery.default_client() is None
    finally:
        discovery.reset_default_client()


@pytest.mark.parametrize(("value", "text"), [(15, "15s"), (15.0, "15s"), (0.5, "500ms"), ("1m", "1m")])
def test_format_duration(value, text):
    assert discovery.format_duration(value) == text


# -- register, heartbeat, look up, deregister ----------------------------------------------------------


def test_register_heartbeat_lookup_deregister(consul_agent):
    client = consul_agent.client()
    reg = _registration(consul_agent, tags=discovery.worker_tags(["emails"]), address="10.1.2.3", port=9000)

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


def test_instance_without_address_uses_the_nodes(consul_agent):
    client = consul_agent.client()
    reg = _registration(consul_agent, port=9000)
    reg.register(client)
    discovery.heartbeat(client, reg.service_id)

    [instance] = eventually(lambda: healthy_instances(client, reg.service_name, use_cache=False))
    [entry] = client.health.service(reg.service_name)[1]
    assert instance.address == entry["Node"]["Address"] != ""


def test_healthy_instances_by_tag(consul_agent):
    client = consul_agent.client()
    blue = _registration(consul_agent, tags=["blue"], suffix="blue")
    green = _registration(consul_agent, tags=["green"], name=blue.service_name, suffix="green")
    for reg in (blue, green):
        reg.register(client)
        discovery.heartbeat(client, reg.service_id)

    eventually(lambda: len(healthy_instances(client, blue.service_name, use_cache=False)) == 2)
    assert _ids(healthy_instances(client, blue.service_name, tag="green")) == [green.service_id]
    assert _ids(healthy_instances(client, blue.service_name, tag="blue")) == [blue.service_id]


def test_healthy_instances_are_cached_briefly_and_invalidatable(consul_agent):
    client = consul_agent.client()
    first = _registration(consul_agent, suffix="1")
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


def test_heartbeat_for_an_unknown_worker_raises_registration_lost(consul_agent):
    with pytest.raises(RegistrationLost):
        discovery.heartbeat(consul_agent.client(), f"{consul_agent.unique_name()}-gone")


def test_ttl_expiry_makes_a_worker_critical_and_unhealthy(consul_agent):
    client = consul_agent.client()
    reg = _registration(consul_agent, ttl=1.0)
    reg.register(client)
    discovery.heartbeat(client, reg.service_id)
    eventually(lambda: healthy_instances(client, reg.service_name, use_cache=False))

    [consumer] = eventually(
        lambda: [c for c in list_consumers(client, reg.service_name) if c.status == "critical"], timeout=5
    )

    assert healthy_instances(client, reg.service_name, use_cache=False) == []
    assert consumer.output.startswith("TTL expired (last output before timeout follows): ")
    assert consumer.last_heartbeat is not None  # the last words carry the time


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
    reg = _registration(consul_agent)
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
    reg = _registration(consul_agent)
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
    reg = _registration(consul_agent)
    beat = Heartbeat(consul_agent.client(), reg, interval=0.05, min_backoff=0.02, max_backoff=0.1).start()
    try:
        assert beat.wait_until_beating(timeout=5)
        with caplog.at_level(logging.WARNING, logger="eventhub.discovery"):
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


def test_token_is_sent_on_every_request(consul_agent):
    standin = consul_agent.require_standin("the stand-in records the requests it answers")
    client = consul_agent.client()
    reg = _registration(consul_agent)

    reg.register(client)
    discovery.heartbeat(client, reg.service_id)
    healthy_instances(client, reg.service_name, use_cache=False)
    list_consumers(client, reg.service_name)
    discovery.deregister(client, reg.service_id)

    assert len(standin.requests) == 5
    assert set(standin.tokens_seen()) == {consul_agent.token}


def test_wrong_or_missing_token_is_refused(consul_agent):
    consul_agent.require_standin("the real agent's ACL policy is unknown")
    reg = _registration(consul_agent)

    with pytest.raises(DiscoveryUnavailable, match="ACL not found"):
        reg.register(consul_agent.client(token="wrong"))
    with pytest.raises(DiscoveryUnavailable, match="Permission denied"):
        reg.register(consul_agent.client(token=None))
    with pytest.raises(DiscoveryUnavailable, match="ACL not found"):
        healthy_instances(consul_agent.client(token="wrong"), reg.service_name, use_cache=False)
