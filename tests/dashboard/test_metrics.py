"""/metrics: Prometheus text a scraper parses; figures from the database; Dramatiq metrics when present."""

import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import factories
from tests.support.factories import make_delivery

pytestmark = pytest.mark.django_db


def scrape(client, **headers) -> dict:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def samples(family, name: str) -> dict[tuple, float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name == name}


@pytest.fixture(autouse=True)
def scraper_on_loopback(settings):
    """The test client scrapes from 127.0.0.1, allowed here as a Prometheus host would be."""
    settings.EVENTHUB = {**settings.EVENTHUB, "METRICS_ALLOWED_NETWORKS": ["127.0.0.0/8"]}


@pytest.fixture
def route():
    return factories.route(factories.event_type("order.paid"), "h.billing", name="billing")


def test_events_and_deliveries_in_the_window_by_type_route_and_status(client, route):
    make_delivery(route, status="succeeded")
    make_delivery(route, status="succeeded")
    make_delivery(route, status="dead", error="x")
    make_delivery(route, status="succeeded", ago=timedelta(hours=2))  # outside the 5-minute window
    families = scrape(client)
    events = samples(families["eventhub_events_window"], "eventhub_events_window")
    assert events == {(("type", "order.paid"), ("window_seconds", "300")): 3.0}
    deliveries = samples(families["eventhub_deliveries_window"], "eventhub_deliveries_window")
    assert deliveries[(("route", "billing"), ("status", "succeeded"), ("window_seconds", "300"))] == 2.0
    assert deliveries[(("route", "billing"), ("status", "dead"), ("window_seconds", "300"))] == 1.0


def test_latency_histogram_from_emit_to_handled(client, route):
    for ms in (3, 40, 40, 700, 12_000):
        make_delivery(route, latency_ms=ms)
    make_delivery(route, status="dead", latency_ms=1, error="x")  # failures are not "handled"
    family = scrape(client)["eventhub_delivery_latency_seconds"]
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    assert buckets["0.005"] == 1 and buckets["0.05"] == 3 and buckets["1.0"] == 4
    assert buckets["10.0"] == 4 and buckets["30.0"] == 5 and buckets["+Inf"] == 5
    total = [s.value for s in family.samples if s.name.endswith("_sum")]
    assert total == [pytest.approx(12.783, abs=0.01)]


def test_metrics_token_is_required_when_set(client, settings, route):
    settings.EVENTHUB = {**settings.EVENTHUB, "METRICS_TOKEN": "s3cret", "METRICS_ALLOWED_NETWORKS": []}
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert "eventhub_events_window" in scrape(client, HTTP_AUTHORIZATION="Bearer s3cret")


def test_dramatiq_worker_metrics_are_included_when_their_directory_is_readable(client, tmp_path, monkeypatch):
    # A worker process with Dramatiq's Prometheus middleware writes these files; imitate one.
    script = textwrap.dedent(
        """
        import prometheus_client as prom
        prom.Counter("dramatiq_messages", "Messages processed.", ["queue_name", "actor_name"]).labels(
            "billing", "eventhub.deliver").inc(7)
        """
    )
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", script], env=env, check=True)
    monkeypatch.setenv("dramatiq_prom_db", str(tmp_path))
    family = scrape(client)["dramatiq_messages"]
    assert samples(family, "dramatiq_messages_total") == {
        (("actor_name", "eventhub.deliver"), ("queue_name", "billing")): 7.0
    }


def test_metrics_work_without_any_data(client):
    families = scrape(client)
    assert families["eventhub_deliveries_window"].samples == []


def test_with_debug_off_metrics_need_a_token_or_an_allowed_address(client, settings, route):
    settings.DEBUG = False
    settings.EVENTHUB = {**settings.EVENTHUB, "METRICS_TOKEN": "", "METRICS_ALLOWED_NETWORKS": []}
    refused = client.get("/metrics")
    assert refused.status_code == 403 and b"EVENTHUB_METRICS_TOKEN" in refused.content
    settings.EVENTHUB = {**settings.EVENTHUB, "METRICS_ALLOWED_NETWORKS": ["10.0.0.0/8"]}
    assert client.get("/metrics").status_code == 403  # the test client is 127.0.0.1
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    settings.EVENTHUB = {**settings.EVENTHUB, "METRICS_TOKEN": "s3cret"}
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


def test_with_debug_on_and_nothing_configured_metrics_are_open(client, settings):
    settings.DEBUG = True
    settings.EVENTHUB = {**settings.EVENTHUB, "METRICS_TOKEN": "", "METRICS_ALLOWED_NETWORKS": []}
    assert client.get("/metrics").status_code == 200


def test_the_backlog_by_status_and_the_age_of_its_oldest_delivery(client, route):
    factories.pending_deliveries(route, 2, age_seconds=90)  # the relay's backlog
    factories.pending_deliveries(route, 1, age_seconds=10)
    factories.pending_deliveries(route, 1, age_seconds=30, status="retrying")
    make_delivery(route, status="succeeded", ago=timedelta(days=3))  # finished: never backlog
    make_delivery(route, status="dead", error="x", ago=timedelta(days=3))
    families = scrape(client)
    count = samples(families["eventhub_deliveries_unfinished"], "eventhub_deliveries_unfinished")
    assert count[(("status", "pending"),)] == 3 and count[(("status", "retrying"),)] == 1
    assert count[(("status", "queued"),)] == 0
    assert not {key for key in count if key[0][1] in ("succeeded", "dead")}
    age = samples(families["eventhub_oldest_unfinished_seconds"], "eventhub_oldest_unfinished_seconds")
    assert 90 <= age[(("status", "pending"),)] < 120
    assert 30 <= age[(("status", "retrying"),)] < 60
    assert age[(("status", "running"),)] == 0


def test_consumers_by_health_and_routes_nobody_consumes(client, route, consul_agent, settings, monkeypatch):
    from eventhub import discovery

    service = consul_agent.unique_name("workers")
    settings.EVENTHUB = {**settings.EVENTHUB, "CONSUL_SERVICE_NAME": service}
    monkeypatch.setenv("CONSUL_HTTP_ADDR", consul_agent.addr)
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", consul_agent.token or "")
    agent = consul_agent.client()
    for sid, queue in (("alive", route.queue), ("stuck", "elsewhere")):
        discovery.register_worker(
            agent, service_name=service, service_id=f"{service}-{sid}", tags=discovery.worker_tags([queue])
        )
    discovery.heartbeat(agent, f"{service}-alive")
    orphan = factories.route(route.event_type, "h.other", name="orphan", queue="nobody-reads-this")

    families = scrape(client)
    assert samples(families["eventhub_consul_up"], "eventhub_consul_up") == {(): 1.0}
    consumers = samples(families["eventhub_consumers"], "eventhub_consumers")
    assert consumers == {(("status", "passing"),): 1.0, (("status", "critical"),): 1.0}
    uncovered = samples(families["eventhub_routes_without_consumer"], "eventhub_routes_without_consumer")
    assert uncovered == {(("queue", orphan.queue), ("route", "orphan")): 1.0}

    consul_agent.require_standin("stops the agent")
    consul_agent.standin.stop()
    families = scrape(client)
    assert samples(families["eventhub_consul_up"], "eventhub_consul_up") == {(): 0.0}
    assert "eventhub_consumers" not in families


def test_with_discovery_off_no_consumer_figures_are_made_up(client, route, monkeypatch):
    monkeypatch.delenv("CONSUL_HTTP_ADDR", raising=False)
    families = scrape(client)
    assert "eventhub_consumers" not in families and "eventhub_consul_up" not in families
