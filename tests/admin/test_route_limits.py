"""The route form's limits: positive numbers or blank, refused with a clear message otherwise."""

import pytest
from django.urls import reverse

from eventhub.models import Route
from tests.admin.test_events import route_form
from tests.support import factories

pytestmark = pytest.mark.django_db


def test_limits_are_saved_and_blank_means_unlimited(admin_client):
    paid = factories.event_type("order.paid")
    url = reverse("admin:eventhub_route_add")
    response = admin_client.post(url, route_form(paid, rate_limit="2.5", max_in_flight="4"))
    assert response.status_code == 302, response.content.decode()[:2000]
    route = Route.objects.get(name="billing")
    assert (route.rate_limit, route.max_in_flight) == (2.5, 4)

    change = reverse("admin:eventhub_route_change", args=[route.pk])
    admin_client.post(change, route_form(paid, rate_limit="", max_in_flight=""))
    route.refresh_from_db()
    assert (route.rate_limit, route.max_in_flight) == (None, None)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rate_limit", "0", "A rate limit is a positive number of deliveries per second"),
        ("rate_limit", "-3", "A rate limit is a positive number of deliveries per second"),
        ("rate_limit", "1000000", "limits nothing"),
        ("rate_limit", "fast", "Enter a number"),
        ("max_in_flight", "0", "At least one delivery must be allowed in flight"),
        ("max_in_flight", "-1", "greater than or equal to 0"),
        ("max_in_flight", "2.5", "Enter a whole number"),
    ],
)
def test_bad_limits_are_refused_on_the_form(admin_client, field, value, message):
    paid = factories.event_type("order.paid")
    response = admin_client.post(reverse("admin:eventhub_route_add"), route_form(paid, **{field: value}))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors and message in " ".join(errors[field]), errors
    assert not Route.objects.exists()


def test_the_route_page_shows_the_limits_section(admin_client):
    route = factories.route(factories.event_type(), "x", rate_limit=3, max_in_flight=2)
    page = admin_client.get(reverse("admin:eventhub_route_change", args=[route.pk])).content.decode()
    assert "Limits" in page and "uses none of its attempts" in page
    assert 'name="rate_limit"' in page and 'name="max_in_flight"' in page
