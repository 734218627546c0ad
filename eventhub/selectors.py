"""Reads for the dashboard pages: bounded, index-backed queries."""

from django.db.models import QuerySet

from eventhub.models import Delivery, Event


def recent_deliveries(*, limit: int = 50) -> QuerySet[Delivery]:
    """The newest deliveries, with their event and route, newest first."""
    return Delivery.objects.select_related("event", "route").order_by("-created_at", "-pk")[:limit]


def event_with_deliveries(*, event_id) -> tuple[Event, list[Delivery]]:
    """An event and its deliveries with their attempts."""
    event = Event.objects.select_related("event_type").get(pk=event_id)
    deliveries = list(event.deliveries.select_related("route").prefetch_related("attempt_log").order_by("pk"))
    return event, deliveries
