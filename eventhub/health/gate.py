"""The gate before a delivery's claim: a delivery of an open or paused route is held, not attempted.

It runs before the claim counts an attempt, so a held delivery keeps its attempts and
can never die of being held. Its message is done with; the releaser
(eventhub.health.release) sends it again once the route is closed and not paused.
When the open route's probe is due, the delivery at the gate becomes the probe
(eventhub.health.circuit) and goes on to its claim.

On the hot path it costs nothing while every route is healthy: it reads the process's
copy of the routes' health (eventhub.health.states). Only while some route holds does
it need the delivery's route (one lookup, unless the caller knows it); the hold itself
is a conditional update that checks the route's row again, so a copy a second old
never holds a delivery of a route that has just closed.
"""

from django.db import transaction
from django.db.models import Exists, Q
from django.utils import timezone

from eventhub.db import take_write_lock_if_needed
from eventhub.health import circuit, states
from eventhub.models import Delivery, RouteHealth
from eventhub.outbox import route_table

State = RouteHealth.State
# What a delivery at the gate may be in: not started, or waiting out a retry's backoff.
HOLDABLE = (Delivery.Status.PENDING, Delivery.Status.QUEUED, Delivery.Status.RETRYING, Delivery.Status.HELD)


def gate(delivery_id: int, *, route_id: int | None = None) -> bool:
    """True when the delivery was held (its route is open or paused): do not claim or run it.

    ``route_id``, when the caller knows it, saves a lookup while some route holds.
    """
    holding = {pk: v for pk, v in states.views().items() if v.holds}
    if not holding:
        return False
    if route_id is None:
        route_id = Delivery.objects.filter(pk=delivery_id).values_list("route_id", flat=True).first()
    known = holding.get(route_id) if route_id is not None else None
    if known is None:
        return False
    if not known.paused and _probe_may_run(known, delivery_id):
        return False
    return hold(delivery_id=delivery_id, route_id=route_id)


def _probe_may_run(known: states.HealthView, delivery_id: int) -> bool:
    """Whether the delivery is (or has just become) the open route's probe."""
    now = timezone.now()
    if known.probe_delivery_id != delivery_id and known.next_probe_at and known.next_probe_at > now:
        return False  # the copy says no probe is due; a newer probe is never due earlier
    route = route_table.route(known.route_id)
    with transaction.atomic():
        take_write_lock_if_needed(RouteHealth)
        health = RouteHealth.objects.select_for_update().filter(route_id=known.route_id).first()
        if health is None or health.paused or health.state == State.CLOSED:
            return False
        if health.probe_delivery_id == delivery_id:
            return True
        if route is None or (health.next_probe_at and health.next_probe_at > now):
            return False
        circuit.make_probe(health, delivery_id=delivery_id, route=route, now=now)
        return True


def hold(*, delivery_id: int, route_id: int) -> bool:
    """Make the delivery ``held`` if its route's row still says open or paused; True when it did."""
    holding = RouteHealth.objects.filter(route_id=route_id).filter(Q(paused=True) | ~Q(state=State.CLOSED))
    changed = (
        Delivery.objects.filter(pk=delivery_id, route_id=route_id, status__in=HOLDABLE)
        .filter(Exists(holding))
        .update(status=Delivery.Status.HELD)
    )
    return bool(changed)
