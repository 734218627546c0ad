"""The Consul agent stand-in, exercised through py-consul as eventhub uses it.

Tests that hold for any agent use ``consul_agent`` and also run against a real one
when CONSUL_HTTP_ADDR is set; tests of stand-in-only powers skip there. No database.
"""

import threading
import time

import consul
import pytest
import requests
from consul.exceptions import ACLPermissionDenied, BadRequest

from tests.support import consul_fixtures
from tests.support.consul_fixtures import eventually
from tests.support.consul_standin import ConsulStandin, parse_duration

consul_agent = consul_fixtures.consul_agent  # also imported by tests/conftest.py


def _register(client, name, service_id, *, ttl="10s", tags=None, **check_extra):
    check = {**consul.Check.ttl(ttl), **check_extra}
    assert client.agent.service.register(name, service_id=service_id, port=8080, tags=tags, check=check)
    return f"service:{service_id}"


def _health(client, name, **kwargs):
    return client.health.service(name, **kwargs)[1]


def _raw(agent, method, path, *, token=None, **kwargs):
    headers = {"X-Consul-Token": agent.token if token is None else token}
    return requests.request(
        method, f"{agent.client().http.base_uri}{path}", headers=headers, timeout=10, **kwargs
    )


# -- registration and TTL checks --------------------------------------------------------------


def test_register_with_ttl_check_starts_critical(consul_agent):
    client, name = consul_agent.client(), consul_agent.unique_name()
    check_id = _register(client, name, f"{name}-1", tags=["blue"])

    service = client.agent.services()[f"{name}-1"]
    assert (service["Service"], service["Port"], service["Tags"]) == (name, 8080, ["blue"])
    check = client.agent.checks()[check_id]
    assert (check["Status"], check["ServiceID"], check["Type"]) == ("critical", f"{name}-1", "ttl")
    assert eventually(lambda: _health(client, name))
    assert _health(client, name, passing=True) == []


def test_pass_makes_the_instance_healthy_with_the_note_as_output(consul_agent):
    client, name = consul_agent.client(), consul_agent.unique_name()
    check_id = _register(client, name, f"{name}-1")

    assert client.agent.check.ttl_pass(check_id, notes="all good")

    assert client.agent.checks()[check_id]["Output"] == "all good"
    [entry] = eventually(lambda: _health(client, name, passing=True))
    assert set(entry) == {"Node", "Service", "Checks"}
    assert entry["Service"]["ID"] == f"{name}-1" and entry["Service"]["Port"] == 8080
    assert {"Node", "Address", "Datacenter"} <= set(entry["Node"])
    by_id = {c["CheckID"]: c for c in entry["Checks"]}
    assert by_id["serfHealth"]["Status"] == "passing"  # the node's own check comes along
    assert by_id[check_id]["Status"] == "passing"


def test_passing_filter_accepts_consul_spellings_and_drops_warning(consul_agent):
    client, name = consul_agent.client(), consul_agent.unique_name()
    ok, warn = _register(client, name, f"{name}-ok"), _register(client, name, f"{name}-warn")
    client.agent.check.ttl_pass(ok)
    client.agent.check.ttl_warn(warn, notes="slow disk")

    def ids(query):
        response = _raw(consul_agent, "GET", f"/v1/health/service/{name}{query}")
        assert response.status_code == 200, response.text
        return sorted(e["Service"]["ID"] for e in response.json())

    assert eventually(lambda: ids("") == [f"{name}-ok", f"{name}-warn"])
    for query in ("?passing", "?passing=1", "?passing=true"):
        assert ids(query) == [f"{name}-ok"]
    assert ids("?passing=false") == [f"{name}-ok", f"{name}-warn"]
    bad = _raw(consul_agent, "GET", f"/v1/health/service/{name}?passing=maybe")
    assert (bad.status_code, bad.text) == (400, "Invalid value for ?passing")


def test_tag_filter(consul_agent):
    client, name = consul_agent.client(), consul_agent.unique_name()
    _register(client, name, f"{name}-blue", tags=["blue", "v1"])
    _register(client, name, f"{name}-green", tags=["green", "v1"])

    eventually(lambda: len(_health(client, name)) == 2)
    assert [e["Service"]["ID"] for e in _health(client, name, tag="blue")] == [f"{name}-blue"]
    assert len(_health(client, name, tag="v1")) == 2
    assert [e["Service"]["ID"] for e in _health(client, name, tag=["green", "v1"])] == [f"{name}-green"]
    assert _health(client, name, tag="red") == []


def test_ttl_expiry_turns_the_check_critical(consul_agent):
    client, name = consul_agent.client(), consul_agent.unique_name()
    check_id = _register(client, name, f"{name}-1", ttl="1s")
    client.agent.check.ttl_pass(check_id, notes="last words")
    assert eventually(lambda: _health(client, name, passing=True))

    check = eventually(
        lambda: client.agent.checks()[check_id]["Status"] == "critical" and client.agent.checks()[check_id],
        timeout=5,
    )

    assert check["Output"] == "TTL expired (last output before timeout follows): last words"
    assert eventually(lambda: _health(client, name, passing=True) == [])


def test_check_update_endpoint_sets_status_and_output(consul_agent):
    client, name = consul_agent.client(), consul_agent.unique_name()
    check_id = _register(client, name, f"{name}-1")

    response = _raw(
        consul_agent,
        "PUT",
        f"/v1/agent/check/update/{check_id}",
        json={"Status": "warning", "Output": "queue backlog"},
    )

    assert response.status_code == 200, response.text
    check = client.agent.checks()[check_id]
    assert (check["Status"], check["Output"]) == ("warning", "queue backlog")
    bad = _raw(consul_agent, "PUT", f"/v1/agent/check/update/{check_id}", json={"Status": "fine"})
    assert (bad.status_code, bad.text) == (400, "Invalid check status: 'fine'")


def test_unknown_check_id_is_a_404(consul_agent):
    client = consul_agent.client()

    assert client.agent.check.ttl_pass("service:nobody-here") is False  # py-consul: 404 -> False
    response = _raw(consul_agent, "PUT", "/v1/agent/check/pass/service:nobody-here")
    assert response.status_code == 404
    assert response.text.startswith('Unknown check ID "service:nobody-here"')


def test_deregister_removes_service_and_checks(consul_agent):
    client, name = consul_agent.client(), consul_agent.unique_name()
    check_id = _register(client, name, f"{name}-1")

    assert client.agent.service.deregister(f"{name}-1")

    assert f"{name}-1" not in client.agent.services()
    assert check_id not in client.agent.checks()
    assert eventually(lambda: _health(client, name) == [])
    assert client.agent.service.deregister(f"{name}-1") is False  # 404 "Unknown service ID"


def test_reregistering_keeps_check_status_and_replace_drops_old_checks(consul_agent):
    client, name = consul_agent.client(), consul_agent.unique_name()
    sid = f"{name}-1"
    client.agent.service.register(name, service_id=sid, check={"TTL": "10s", "CheckID": f"{sid}:a"})
    client.agent.check.ttl_pass(f"{sid}:a", notes="fine")

    client.agent.service.register(
        name, service_id=sid, tags=["v2"], check={"TTL": "10s", "CheckID": f"{sid}:a"}
    )
    assert client.agent.checks()[f"{sid}:a"]["Status"] == "passing"  # Consul keeps it
    client.agent.service.register(name, service_id=sid, check={"TTL": "10s", "CheckID": f"{sid}:b"})
    assert {f"{sid}:a", f"{sid}:b"} <= set(client.agent.checks())

    client.agent.service.register(
        name, service_id=sid, check={"TTL": "10s", "CheckID": f"{sid}:b"}, replace_existing_checks=True
    )
    checks = client.agent.checks()
    assert f"{sid}:b" in checks and f"{sid}:a" not in checks


def test_invalid_registrations_are_refused_like_consul(consul_agent):
    client, name = consul_agent.client(), consul_agent.unique_name()

    with pytest.raises(BadRequest, match="Invalid Service Meta"):
        client.agent.service.register(name, meta={"has.dot": "x"})
    missing = _raw(consul_agent, "PUT", "/v1/agent/service/register", json={"Port": 1})
    assert (missing.status_code, missing.text) == (400, "Missing service name")
    with pytest.raises(BadRequest, match="invalid duration"):
        client.agent.service.register(name, check={"TTL": "soon"})


def test_only_ttl_checks_are_accepted_by_the_standin(consul_agent):
    consul_agent.require_standin("a real agent runs HTTP checks")
    client, name = consul_agent.client(), consul_agent.unique_name()

    with pytest.raises(BadRequest, match="TTL checks only"):
        client.agent.service.register(name, check=consul.Check.http("http://x/", "10s"))


# -- catalog, headers, blocking queries ---------------------------------------------------------


def test_catalog_services_and_service(consul_agent):
    client, name = consul_agent.client(), consul_agent.unique_name()
    _register(client, name, f"{name}-1", tags=["b", "a"])
    _register(client, name, f"{name}-2", tags=["c"])

    services = eventually(lambda: name in client.catalog.services()[1] and client.catalog.services()[1])
    assert sorted(services[name]) == ["a", "b", "c"]
    assert "consul" in services
    entries = client.catalog.service(name, tag="c")[1]
    assert [(e["ServiceID"], e["ServicePort"]) for e in entries] == [(f"{name}-2", 8080)]


def test_query_meta_headers_on_health_and_catalog_not_on_agent(consul_agent):
    name = consul_agent.unique_name()
    for path in (f"/v1/health/service/{name}", "/v1/catalog/services", f"/v1/catalog/service/{name}"):
        response = _raw(consul_agent, "GET", path)
        assert int(response.headers["X-Consul-Index"]) > 0, path
        assert response.headers["X-Consul-KnownLeader"] == "true"
        assert response.headers["X-Consul-LastContact"].isdigit()
    assert "X-Consul-Index" not in _raw(consul_agent, "GET", "/v1/agent/services").headers


def test_blocking_query_waits_for_the_index_to_move(consul_agent):
    client, name = consul_agent.client(), consul_agent.unique_name()
    index, _ = client.health.service(name)

    started = time.monotonic()
    same_index, _ = client.health.service(name, index=index, wait="300ms")
    assert same_index == index and time.monotonic() - started >= 0.25

    threading.Timer(0.3, _register, (consul_agent.client(), name, f"{name}-1")).start()
    new_index, entries = client.health.service(name, index=index, wait="10s")
    assert int(new_index) > int(index)
    assert time.monotonic() - started < 8


def test_agent_self_and_status_leader(consul_agent):
    response = _raw(consul_agent, "GET", "/v1/agent/self")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["Config"]["Datacenter"] and body["Config"]["NodeName"] == body["Member"]["Name"]
    assert consul_agent.client().status.leader()


def test_wrong_method_and_unknown_path(consul_agent):
    assert _raw(consul_agent, "GET", "/v1/agent/service/register").status_code == 405
    assert _raw(consul_agent, "GET", "/v1/no/such/endpoint").status_code == 404


# -- ACL tokens ---------------------------------------------------------------------------------


def test_acl_tokens_as_consul_enforces_them(consul_agent):
    standin = consul_agent.require_standin("the real agent's ACL policy is unknown")
    name = consul_agent.unique_name()
    anonymous, wrong = consul_agent.client(token=None), consul_agent.client(token="not-a-token")

    with pytest.raises(ACLPermissionDenied, match="Permission denied: .*'service:write'"):
        anonymous.agent.service.register(name, check=consul.Check.ttl("10s"))
    with pytest.raises(ACLPermissionDenied, match="ACL not found"):
        wrong.agent.service.register(name, check=consul.Check.ttl("10s"))
    with pytest.raises(ACLPermissionDenied, match="ACL not found"):
        wrong.health.service(name)
    _register(consul_agent.client(), name, f"{name}-1")

    assert anonymous.health.service(name)[1] == []  # default deny filters reads
    assert anonymous.agent.services() == {}
    filtered = _raw(consul_agent, "GET", f"/v1/health/service/{name}", token="")
    assert filtered.headers["X-Consul-Results-Filtered-By-ACLs"] == "true"
    assert filtered.headers["X-Consul-Default-ACL-Policy"] == "deny"
    assert standin.tokens_seen()[-1] == ""


def test_token_may_come_from_query_or_bearer_header(consul_agent):
    consul_agent.require_standin("the real agent's ACL policy is unknown")
    name = consul_agent.unique_name()
    _register(consul_agent.client(), name, f"{name}-1")
    base = consul_agent.client().http.base_uri

    by_query = requests.get(
        f"{base}/v1/health/service/{name}", params={"token": consul_agent.token}, timeout=5
    )
    by_bearer = requests.get(
        f"{base}/v1/health/service/{name}",
        timeout=5,
        headers={"Authorization": f"Bearer {consul_agent.token}"},
    )

    assert len(by_query.json()) == 1 and len(by_bearer.json()) == 1


def test_py_consul_agent_self_sends_no_token(consul_agent):
    # A py-consul quirk worth knowing: agent.self() ignores the client's token.
    consul_agent.require_standin("the real agent's ACL policy is unknown")
    with pytest.raises(ACLPermissionDenied, match="agent:read"):
        consul_agent.client().agent.self()


# -- stand-in-only behaviour ------------------------------------------------------------------


def test_deregister_critical_service_after(consul_agent):
    standin = consul_agent.require_standin("Consul's minimum is one minute")
    client, name = consul_agent.client(), consul_agent.unique_name()
    _register(client, name, f"{name}-1", ttl="200ms", DeregisterCriticalServiceAfter="300ms")

    assert eventually(lambda: f"{name}-1" not in standin.service_ids(), timeout=3)
    assert client.agent.services() == {} and client.agent.checks() == {}


def test_min_deregister_after_restores_consuls_clamp():
    with ConsulStandin(min_deregister_after=60) as standin:
        client = consul.Consul(host=standin.host, port=standin.port)
        _register(client, "web", "web-1", ttl="100ms", DeregisterCriticalServiceAfter="100ms")
        time.sleep(0.4)
        assert standin.service_ids() == ["web-1"]
        assert standin.check_status("service:web-1") == "critical"


def test_output_only_changes_reach_the_catalog_after_check_update_interval():
    with ConsulStandin(check_update_interval=0.3) as standin:
        client = consul.Consul(host=standin.host, port=standin.port)
        check_id = _register(client, "web", "web-1")
        client.agent.check.ttl_pass(check_id, notes="first")  # a status change: written at once
        client.agent.check.ttl_pass(check_id, notes="second")  # output only: deferred

        def catalog_output():
            return _health(client, "web")[0]["Checks"][1]["Output"]

        assert catalog_output() == "first"
        assert client.agent.checks()[check_id]["Output"] == "second"
        assert eventually(lambda: catalog_output() == "second", timeout=2)


def test_forget_simulates_an_agent_restart(consul_agent):
    standin = consul_agent.require_standin("only the stand-in can forget")
    client, name = consul_agent.client(), consul_agent.unique_name()
    check_id = _register(client, name, f"{name}-1")

    standin.forget()

    assert client.agent.services() == {}
    assert client.agent.check.ttl_pass(check_id) is False


def test_stop_and_start_on_the_same_port(consul_agent):
    standin = consul_agent.require_standin("only the stand-in can be stopped")
    client, name = consul_agent.client(), consul_agent.unique_name()
    _register(client, name, f"{name}-1")
    port = standin.port

    standin.stop()
    with pytest.raises(requests.ConnectionError):
        client.agent.services()
    standin.start()

    assert standin.port == port
    assert list(client.agent.services()) == [f"{name}-1"]  # state survives the outage


def test_without_acl_token_everything_is_allowed():
    with ConsulStandin() as standin:
        client = consul.Consul(host=standin.host, port=standin.port)
        _register(client, "web", "web-1")
        assert client.agent.self()["Config"]["Datacenter"] == "dc1"
        response = requests.get(f"{standin.url}/v1/agent/services", timeout=5)
        assert response.headers["X-Consul-Default-ACL-Policy"] == "allow"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10),
        ("1m", 60),
        ("500ms", 0.5),
        ("1m30s", 90),
        ("1.5h", 5400),
        ("0", 0),
        ("-2s", -2),
        ("250us", 0.00025),
        (2_000_000_000, 2),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "s", "10x", "1m 30s", "ten seconds"])
def test_parse_duration_refuses_what_go_refuses(text):
    with pytest.raises(ValueError, match="time: "):
        parse_duration(text)
