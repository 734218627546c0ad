"""Endpoint health on the dashboard and in /metrics: state, held count, last reason; pause and resume."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from eventhub.models import RouteHealth, RouteHealthChange
from tests.support import factories
from tests.support.factories import make_delivery

pytestmark = pytest.mark.django_db


def staff(*codenames: str) -> User:
    user = User.objects.create_user(f"staff{User.objects.count()}", password="pw", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return User.objects.get(pk=user.pk)


@pytest.fixture
def route():
    return factories.route(factories.event_type("order.paid"), "h.billing", name="billing")


@pytest.fixture
def open_route(route):
    RouteHealth.objects.create(route=route, state="open", reason="5 failed attempts in a row; the last: 500")
    make_delivery(route, status="held", attempts=1)
    make_delivery(route, status="held", attempts=0)
    return route


def test_the_dashboard_shows_the_state_the_held_count_and_why(client, open_route):
    client.force_login(staff("view_delivery"))
    page = client.get(reverse("eventhub:dashboard")).content.decode()
    assert 'data-state="open"' in page and "2 held" in page
    assert "5 failed attempts in a row" in page
    assert "Pause</button>" not in page  # no permission to pause: no button


def test_with_the_permission_an_operator_pauses_and_resumes_from_the_dashboard(client, route):
    user = staff("view_delivery", "pause_route")
    client.force_login(user)
    page = client.get(reverse("eventhub:dashboard")).content.decode()
    assert "Pause</button>" in page and "disabling a route makes none" in page

    response = client.post(reverse("eventhub:pause-route", args=[route.pk]), {"next": "/eventhub/"})
    assert response.status_code == 302 and response["Location"] == "/eventhub/"
    assert RouteHealth.objects.get(route=route).paused
    change = RouteHealthChange.objects.get(route=route)
    assert (change.state, change.username, change.user_id) == ("paused", user.username, user.pk)
    assert "Resume</button>" in client.get(reverse("eventhub:dashboard")).content.decode()

    client.post(reverse("eventhub:resume-route", args=[route.pk]))
    assert not RouteHealth.objects.get(route=route).paused
    assert RouteHealthChange.objects.filter(route=route).latest("pk").state == "closed"


def test_pausing_needs_the_permission_and_a_post_with_the_csrf_token(client, route):
    client.force_login(staff("view_delivery"))
    assert client.post(reverse("eventhub:pause-route", args=[route.pk])).status_code == 403
    client.force_login(staff("view_delivery", "pause_route"))
    assert client.get(reverse("eventhub:pause-route", args=[route.pk])).status_code == 405
    assert not RouteHealth.objects.filter(route=route, paused=True).exists()

    from django.test import Client

    checked = Client(enforce_csrf_checks=True)
    checked.force_login(staff("view_delivery", "pause_route"))
    assert checked.post(reverse("eventhub:pause-route", args=[route.pk])).status_code == 403
    assert not RouteHealth.objects.filter(route=route, paused=True).exists()


def test_metrics_export_state_held_and_changes_per_route(client, settings, open_route):
    settings.EVENTHUB = {**settings.EVENTHUB, "METRICS_ALLOWED_NETWORKS": ["127.0.0.0/8"]}
    RouteHealthChange.objects.create(route=open_route, previous="closed", state="open", reason="x")
    text = client.get("/metrics").content.decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    state = {s.labels["state"]: s.value for s in families["eventhub_route_state"].samples}
    assert state == {"closed": 0, "open": 1, "half_open": 0, "paused": 0}
    assert [s.value for s in families["eventhub_deliveries_held"].samples] == [2]
    changes = [s for s in families["eventhub_route_state_changes"].samples if s.name.endswith("_total")]
    assert [(s.labels, s.value) for s in changes] == [({"route": "billing", "state": "open"}, 1.0)]
