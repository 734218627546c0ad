"""Which handlers and queues have live consumers: the route form in the admin, and the dashboard's selector.

Workers are registered in the Consul agent stand-in (or a real agent when CONSUL_HTTP_ADDR
is set) the way eventhub_worker registers them; discovery is switched on through the env.
"""

import html
import socket

import pytest
from django.urls import reverse

from eventhub import discovery
from eventhub.dashboard import selectors
from tests.support import factories
from tests.support.consul_fixtures import eventually

pytestmark = pytest.mark.django_db


@pytest.fixture
def worker(consul_agent, monkeypatch, settings):
    """Register a worker: ``worker(queues, handlers, passing=True)``; discovery on for this test."""
    service = consul_agent.unique_name("workers")
    settings.EVENTHUB = {**settings.EVENTHUB, "CONSUL_SERVICE_NAME": service}
    monkeypatch.setenv("CONSUL_HTTP_ADDR", f"{consul_agent.scheme}://{consul_agent.addr}")
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", consul_agent.token or "")
    client = consul_agent.client()
    expected: dict[str, str] = {}

    def register(queues: list[str], handlers: list[str] = (), *, passing: bool = True) -> None:
        registration = discovery.worker_registration(
            queues=queues, handlers=handlers, service_name=service, pid=len(expected) + 1
        )
        registration.register(client)
        if passing:
            discovery.heartbeat(client, registration.service_id)
        expected[registration.service_id] = "passing" if passing else "critical"
        # A real agent writes to its catalog a moment later; the stand-in at once.
        eventually(lambda: {c.id: c.status for c in discovery.list_consumers(client, service)} == expected)

    return register


def route_page(client, route) -> str:
    response = client.get(reverse("admin:eventhub_route_change", args=[route.pk]))
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def handler_route(target: str, queue: str, **fields):
    return factories.route(factories.event_type(), target, queue=queue, **fields)


def test_the_route_form_shows_live_handlers_and_that_this_route_is_served(admin_client, worker):
    worker(["billing"], ["billing.invoice", "shipping.label"])
    worker(["billing"], ["ghost.handler"], passing=False)  # critical: not live
    route = handler_route("billing.invoice", "billing")

    page = route_page(admin_client, route)

    assert "1 healthy worker(s) consume queue 'billing' with handler 'billing.invoice'." in page
    assert "Handlers with live consumers: billing.invoice, shipping.label" in page
    assert "ghost.handler" not in page


@pytest.mark.parametrize(
    ("target", "queue", "message"),
    [
        (
            "billing.refund",
            "billing",
            "No healthy worker consuming queue 'billing' has handler 'billing.refund'.",
        ),
        ("billing.invoice", "audit", "Handler 'billing.invoice' has live workers, but none of them consumes"),
        (
            "nobody.home",
            "nowhere",
            "No healthy worker has handler 'nobody.home' or consumes queue 'nowhere'.",
        ),
    ],
)
def test_the_route_form_flags_a_handler_without_a_live_consumer(admin_client, worker, target, queue, message):
    worker(["billing"], ["billing.invoice"])
    page = route_page(admin_client, handler_route(target, queue))
    assert message in page


def test_a_webhook_route_is_checked_for_its_queue(admin_client, worker):
    worker(["billing"], ["billing.invoice"])
    served = handler_route("https://example.com/in", "billing", destination_kind="webhook")
    orphan = handler_route("https://example.com/in", "audit", destination_kind="webhook")

    assert "1 healthy worker(s) consume queue 'billing'." in route_page(admin_client, served)
    assert "No healthy worker consumes queue 'audit'" in route_page(admin_client, orphan)
    assert "Handlers with live consumers" not in route_page(admin_client, served)  # not a handler route


def test_the_add_form_lists_the_live_handlers(admin_client, worker):
    worker(["billing"], ["billing.invoice"])
    worker(["shipping"], ["shipping.label"])
    response = admin_client.get(reverse("admin:eventhub_route_add"))
    page = html.unescape(response.content.decode())
    assert "2 healthy worker(s) registered in Consul." in page
    assert "Handlers with live consumers: billing.invoice, shipping.label" in page


def test_with_discovery_off_the_route_form_says_so(admin_client, monkeypatch):
    monkeypatch.delenv("CONSUL_HTTP_ADDR", raising=False)
    page = route_page(admin_client, handler_route("billing.invoice", "billing"))
    assert "Discovery is off (CONSUL_HTTP_ADDR is not set): consumers are unknown." in page


def test_an_unreachable_agent_is_reported_on_the_route_form(admin_client, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("CONSUL_HTTP_ADDR", f"127.0.0.1:{port}")
    page = route_page(admin_client, handler_route("billing.invoice", "billing"))
    assert "Consul could not be asked about live consumers: listing " in page


def test_routes_without_consumers_are_enabled_routes_no_passing_worker_consumes(worker):
    worker(["billing", "eventhub"], ["billing.invoice"])
    worker(["audit"], ["audit.log"], passing=False)
    handler_route("billing.invoice", "billing", name="b-billing")
    handler_route("audit.log", "audit", name="a-audit")
    handler_route("https://example.com/x", "partners", name="c-partners", destination_kind="webhook")
    handler_route("audit.log", "archive", name="d-disabled", enabled=False)

    uncovered = selectors.routes_without_consumers()

    assert [r.name for r in uncovered] == ["a-audit", "c-partners"]
    assert [r.name for r in selectors.consumer_health().uncovered_routes] == ["a-audit", "c-partners"]


def test_routes_without_consumers_is_empty_when_discovery_is_off(monkeypatch):
    monkeypatch.delenv("CONSUL_HTTP_ADDR", raising=False)
    handler_route("billing.invoice", "billing")
    assert selectors.routes_without_consumers() == []
