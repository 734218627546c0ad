"""Whether a delivery may start now, asked before its claim: its route's limits and this process's share.

The actor asks :func:`admitted` before ``deliver`` claims the delivery, so a delivery
that may not start is not attempted and its attempt is not counted: it stays
``queued``, and its message goes back to RabbitMQ with a delay (Dramatiq's delay
queue, held by the consumer, not by a worker thread) and is taken again then, by
whichever worker is free.

Checked in this order, the cheap one first:

1. this process's share of threads for slow routes (eventhub.worker.share), in memory;
2. the route's own limits, when it has any (eventhub.worker.limits), one statement
   on its gate row. A route without limits pays nothing here: the route copy in
   memory says so, and the message names its route.

How long a deferred message waits: under the rate limit, exactly until the start it
reserved (it then skips the rate check); otherwise until its place in the route's
line comes round (eventhub.worker.share.ThreadShare.place), with jitter, between
``LIMIT_RETRY_MIN_SECONDS`` and ``LIMIT_RETRY_MAX_SECONDS``.
"""

import contextlib
import logging
import random
import time
from collections.abc import Iterator

from eventhub import broker, health
from eventhub.conf import eventhub_settings
from eventhub.models import Delivery, Route
from eventhub.outbox import ROUTE_OPTION, route_table
from eventhub.worker import limits
from eventhub.worker.deliver import DeliveryFailed, Outcome
from eventhub.worker.share import threads

logger = logging.getLogger(__name__)

RESERVED_OPTION = "eventhub_rate_reserved"  # the message comes back at the start it reserved
DEFERRALS_OPTION = "eventhub_deferrals"  # how many times it was sent back (for logs)
LOG_EVERY_SECONDS = 60.0
_last_logged: dict[tuple[int, str], float] = {}


class Admission:
    """What :func:`admitted` gives the actor: true when the delivery may start; told how its run ended."""

    def __init__(self, admitted: bool) -> None:
        self.admitted = admitted
        self.failed = False

    def __bool__(self) -> bool:
        return self.admitted

    def finished(self, *outcomes: Outcome | None) -> None:
        """The message's outcomes (None: nothing ran; a batch gives one each). A dead one is a
        failure (a retried one raises)."""
        self.failed = any(o is not None and o.status == Delivery.Status.DEAD for o in outcomes)


@contextlib.contextmanager
def admitted(delivery_id: int, message=None) -> Iterator[Admission]:
    """Run the body with a true Admission when the delivery may start now; false: its message was sent back.

    ``message``: the Dramatiq message being processed (default: this thread's). Without
    one (a direct call), nothing can be sent back, so the delivery is admitted.
    """
    message = message if message is not None else broker.current_message()
    route = _route_of(delivery_id, message) if message is not None else None
    if route is None or _holds(route.pk):
        # A route that holds (open, half-open, paused) has its deliveries held at the gate, one cheap
        # update each, or one run as its probe: sent back here, they would cost a message again and again.
        yield Admission(True)
        return
    ticket = threads.enter(route.pk)
    if not ticket:
        _defer(message, route, wait=threads.place(route.pk, slots=threads.cap()), why=threads.why(route.pk))
        yield Admission(False)
        return
    decision, admission = None, Admission(True)
    try:
        if limits.limited(route):
            decision = limits.admit(route, reserved=bool(message.options.get(RESERVED_OPTION)))
            # A reserved start is used once: a retry of this message after a failure pays again.
            message.options[RESERVED_OPTION] = False
            if not decision.admitted:
                threads.leave(route.pk, ticket, counted=False)
                ticket = 0
                _defer_limited(message, route, decision)
                yield Admission(False)
                return
        yield admission
    except DeliveryFailed:
        admission.failed = True
        raise
    finally:
        if ticket:
            threads.leave(route.pk, ticket, failed=admission.failed)
        if decision is not None and decision.lease:
            limits.give_back(route.pk, decision.lease)


def _holds(route_id: int) -> bool:
    known = health.states.view(route_id)
    return known is not None and known.holds


def route_id_of(message) -> int | None:
    """The route id a delivery message names (None for a message sent before messages named it)."""
    return (message.options.get(ROUTE_OPTION) or None) if message is not None else None


def _route_of(delivery_id: int, message) -> Route | None:
    route_id = route_id_of(message)
    if not route_id:  # a message sent before routes had limits: one query
        route_id = Delivery.objects.filter(pk=delivery_id).values_list("route_id", flat=True).first()
    return route_table.route(route_id) if route_id else None


def _defer_limited(message, route: Route, decision: limits.Decision) -> None:
    if decision.reserved:
        _defer(message, route, wait=decision.wait, reserved=True, why="its rate limit")
    else:
        wait = threads.place(route.pk, slots=route.max_in_flight or 1)
        _defer(message, route, wait=wait, why=f"its limit of {route.max_in_flight} in flight")


def _defer(message, route: Route, *, wait: float, why: str, reserved: bool = False) -> None:
    """Send the message back to its queue after ``wait`` seconds (jittered unless reserved)."""
    if not reserved:
        low, high = eventhub_settings.LIMIT_RETRY_MIN_SECONDS, eventhub_settings.LIMIT_RETRY_MAX_SECONDS
        wait = min(max(wait, low), high) * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not secrets
    options = {
        RESERVED_OPTION: reserved,
        DEFERRALS_OPTION: int(message.options.get(DEFERRALS_OPTION) or 0) + 1,
    }
    broker.get_broker().enqueue(message.copy(options=options), delay=max(1, int(wait * 1000)))
    logger.debug("Delivery %s of route %s waits %.2f s: over %s.", message.args, route.name, wait, why)
    key = (route.pk, why)
    if time.monotonic() - _last_logged.get(key, -LOG_EVERY_SECONDS) >= LOG_EVERY_SECONDS:
        _last_logged[key] = time.monotonic()
        logger.info(
            "Route %s is over %s: its deliveries wait their turn (queued, not attempted).", route, why
        )
