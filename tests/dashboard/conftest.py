"""Fixtures shared by the dashboard's tests."""

import pytest

from tests.support import factories


@pytest.fixture
def two_routes():
    paid = factories.event_type("order.paid")
    shipped = factories.event_type("order.shipped")
    return factories.route(paid, "h.billing", name="billing"), factories.route(
        shipped, "h.mail", name="mailer"
    )
