"""eventhub.discovery.client: reaching the agent from Consul's variables, tokens, TLS settings.

Run against the Consul stand-in, or a real agent when CONSUL_HTTP_ADDR is set.
"""

import pytest

from eventhub import discovery
from eventhub.discovery import (
    DiscoveryUnavailable,
    healthy_instances,
    list_consumers,
)
from tests.support.consul_fixtures import registration_for


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


def test_token_is_sent_on_every_request(consul_agent):
    standin = consul_agent.require_standin("the stand-in records the requests it answers")
    client = consul_agent.client()
    reg = registration_for(consul_agent)

    reg.register(client)
    discovery.heartbeat(client, reg.service_id)
    healthy_instances(client, reg.service_name, use_cache=False)
    list_consumers(client, reg.service_name)
    discovery.deregister(client, reg.service_id)

    assert len(standin.requests) == 5
    assert set(standin.tokens_seen()) == {consul_agent.token}


def test_wrong_or_missing_token_is_refused(consul_agent):
    consul_agent.require_standin("the real agent's ACL policy is unknown")
    reg = registration_for(consul_agent)

    with pytest.raises(DiscoveryUnavailable, match="ACL not found"):
        reg.register(consul_agent.client(token="wrong"))
    with pytest.raises(DiscoveryUnavailable, match="Permission denied"):
        reg.register(consul_agent.client(token=None))
    with pytest.raises(DiscoveryUnavailable, match="ACL not found"):
        healthy_instances(consul_agent.client(token="wrong"), reg.service_name, use_cache=False)
