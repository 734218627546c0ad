"""The per-process copy of event types and routes: local edits at once, others within the interval."""

import time

import pytest
from django.db import connection, transaction
from django.test import override_settings

from eventhub.errors import UnknownEventType
from eventhub.models import EventType, Route
from eventhub.outbox import route_table
from tests.support import factories

pytestmark = pytest.mark.django_db(transaction=True)


def enabled_targets(name: str) -> list[str]:
    types, routes = route_table.types_and_routes([name])
    return [r.target for r in routes.get(types[name].pk, [])]


def test_a_save_in_this_process_takes_effect_at_once():
    paid = factories.event_type("order.paid")
    route = factories.route(paid, "billing.invoice")
    assert enabled_targets("order.paid") == ["billing.invoice"]

    route.enabled = False
    route.save()
    factories.route(paid, "mail.receipt")

    assert enabled_targets("order.paid") == ["mail.receipt"]


@override_settings(EVENTHUB={"ROUTES_REFRESH_SECONDS": 0.3})
def test_a_change_made_elsewhere_is_seen_within_the_refresh_interval():
    paid = factories.event_type("order.paid")
    route = factories.route(paid, "billing.invoice")
    assert enabled_targets("order.paid") == ["billing.invoice"]

    # A queryset update sends no signal: as if another process had made the change.
    Route.objects.filter(pk=route.pk).update(enabled=False)
    EventType.objects.filter(pk=paid.pk).update(active=False)
    assert enabled_targets("order.paid") == ["billing.invoice"]  # the copy, within the interval

    time.sleep(0.35)
    with pytest.raises(UnknownEventType, match="inactive"):
        route_table.types_and_routes(["order.paid"])


def test_a_route_of_a_rolled_back_transaction_is_never_used():
    paid = factories.event_type("order.paid")
    assert enabled_targets("order.paid") == []

    with pytest.raises(RuntimeError), transaction.atomic():
        factories.route(paid, "billing.invoice")
        assert enabled_targets("order.paid") == ["billing.invoice"]  # the transaction sees its own
        raise RuntimeError("rolled back")

    assert enabled_targets("order.paid") == []


def test_a_route_this_process_has_not_seen_is_read_when_asked_for():
    paid = factories.event_type("order.paid")
    route_table.current()
    # Created without a signal reaching the copy, as by another process.
    route = Route.objects.bulk_create([Route(event_type=paid, name="late", target="late.handler")])[0]

    found = route_table.route(route.pk)

    assert (found.target, found.event_type.name) == ("late.handler", "order.paid")
    assert route_table.route(route.pk + 1000) is None


def test_unknown_types_are_refused():
    with pytest.raises(UnknownEventType, match="Unknown event type 'nope'"):
        route_table.types_and_routes(["nope"])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the digest query is PostgreSQL's")
def test_a_reload_that_finds_nothing_changed_costs_one_query_and_keeps_the_copy():
    from django.test.utils import CaptureQueriesContext

    paid = factories.event_type("order.paid")
    route = factories.route(paid, "billing.invoice")
    first = route_table._cache.refresh()
    with CaptureQueriesContext(connection) as queries:
        again = route_table._cache.refresh()
    assert len(queries) == 1 and again is first  # the same objects: nothing rebuilt

    # Any column changed by any means (here a queryset update, no signal, no updated_at) is seen.
    Route.objects.filter(pk=route.pk).update(target="billing.other")
    assert route_table._cache.refresh().routes[route.pk].target == "billing.other"
