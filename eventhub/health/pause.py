"""Pause and resume a route: its deliveries are still made, and held until it is resumed.

An operator's action, permission-checked (``eventhub.pause_route``) and recorded as a
RouteHealthChange saying who, when and why, as replays are. A paused route is not
the same as a disabled one: disabling (``Route.enabled``) makes emit create nothing
for the route; pausing keeps every delivery, held, and resuming sends them again at
the route's release pace (eventhub.health.release).
"""

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from eventhub.health import states
from eventhub.health.circuit import locked_health
from eventhub.models import Route, RouteHealthChange

PAUSE_PERMISSION = "eventhub.pause_route"


def can_pause(user) -> bool:
    """Whether ``user`` may pause and resume routes."""
    return bool(user is not None and user.is_active and user.has_perm(PAUSE_PERMISSION))


def check_can_pause(user) -> None:
    """Raise PermissionDenied unless ``user`` may pause and resume routes."""
    if not can_pause(user):
        raise PermissionDenied("You do not have permission to pause or resume routes.")


def pause_route(*, route: Route, user, reason: str = "") -> RouteHealthChange | None:
    """Pause ``route``: its deliveries are held from now on. Returns the change, or None if already paused."""
    check_can_pause(user)
    with transaction.atomic():
        health = locked_health(route.pk)
        if health.paused:
            return None
        previous = health.display_state
        health.paused, health.paused_at, health.paused_by = True, timezone.now(), user.get_username()
        health.save()
        why = f"Paused by an operator{': ' + reason.strip()[:500] if reason.strip() else ''}."
        return states.record_change(health=health, previous=previous, reason=why, user=user)


def resume_route(*, route: Route, user) -> RouteHealthChange | None:
    """Resume ``route``: held deliveries go out again at its pace. The change, or None if not paused."""
    check_can_pause(user)
    with transaction.atomic():
        health = locked_health(route.pk)
        if not health.paused:
            return None
        previous = health.display_state
        health.paused, health.paused_at, health.paused_by = False, None, ""
        health.save()
        circuit = "" if health.state == health.State.CLOSED else f" The circuit is still {health.state}."
        why = f"Resumed by an operator; held deliveries are sent again at the route's pace.{circuit}"
        return states.record_change(health=health, previous=previous, reason=why, user=user)
