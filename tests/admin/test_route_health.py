"""A route's endpoint health in the admin: the panel, pause and resume (permission, audit), the record."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from eventhub.models import RouteHealth, RouteHealthChange
from tests.support import factories
from tests.support.factories import make_delivery

pytestmark = pytest.mark.django_db


@pytest.fixture
def route():
    return factories.route(factories.event_type("order.paid"), "h.billing", name="billing")


def operator(*codenames: str) -> User:
    user = User.objects.create_user(f"op{User.objects.count()}", is_staff=True)
    for codename in ("view_route", "change_route", *codenames):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return User.objects.get(pk=user.pk)


def test_the_route_page_shows_its_health_and_says_how_pause_differs_from_disabling(admin_client, route):
    RouteHealthChange.objects.create(route=route, previous="closed", state="open", reason="410 Gone")
    RouteHealth.objects.create(route=route, state="open")
    page = admin_client.get(reverse("admin:eventhub_route_change", args=[route.pk])).content.decode()
    assert '<strong id="route-health-state">open</strong>' in page
    assert "410 Gone" in page
    assert reverse("admin:eventhub_route_pause", args=[route.pk]) in page
    assert "Unticking Enabled is different" in page
    assert "breaker_failures" in page and "release_per_second" in page


def test_pause_and_resume_from_the_route_page_are_recorded_with_who(client, route):
    user = operator("pause_route")
    client.force_login(user)
    response = client.post(reverse("admin:eventhub_route_pause", args=[route.pk]), {"name": "ignored"})
    assert response.status_code == 302
    assert RouteHealth.objects.get(route=route).paused
    client.post(reverse("admin:eventhub_route_resume", args=[route.pk]))
    assert list(RouteHealthChange.objects.order_by("pk").values_list("state", "username")) == [
        ("paused", user.username),
        ("closed", user.username),
    ]
    route.refresh_from_db()
    assert route.name == "billing"  # the change form's fields posted along are not saved


def test_without_the_permission_there_is_no_pausing(client, route):
    client.force_login(operator())
    assert client.post(reverse("admin:eventhub_route_pause", args=[route.pk])).status_code == 403
    changelist = client.get(reverse("admin:eventhub_route_changelist")).content.decode()
    assert "pause_selected_routes" not in changelist
    assert not RouteHealth.objects.filter(route=route, paused=True).exists()


def test_the_list_action_pauses_chosen_routes(client, route):
    client.force_login(operator("pause_route"))
    client.post(
        reverse("admin:eventhub_route_changelist"),
        {"action": "pause_selected_routes", "_selected_action": [route.pk]},
    )
    assert RouteHealth.objects.get(route=route).paused


def test_the_record_of_changes_is_read_only(admin_client, route):
    change = RouteHealthChange.objects.create(route=route, previous="closed", state="open", reason="x")
    assert admin_client.get(reverse("admin:eventhub_routehealthchange_changelist")).status_code == 200
    delete = reverse("admin:eventhub_routehealthchange_delete", args=[change.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert RouteHealthChange.objects.filter(pk=change.pk).exists()


def test_the_route_list_shows_each_routes_health_without_a_query_per_route(
    admin_client, route, django_assert_max_num_queries
):
    others = [factories.route(route.event_type, "h.other", name=f"other{n}") for n in range(5)]
    RouteHealth.objects.create(route=others[0], state="open")
    make_delivery(others[0], status="held")
    with django_assert_max_num_queries(12):
        page = admin_client.get(reverse("admin:eventhub_route_changelist")).content.decode()
    assert "open, 1 delivery held" in page
