"""At exit, a process on the embedded broker finishes its deliveries or hands them back to the relay.

The embedded broker keeps messages in memory, so a process that exits (``manage.py
shell``, a reloaded ``runserver``) would take its unfinished deliveries with it and
leave them ``queued``, ``retrying`` or ``running`` with nothing to run them. Instead
it waits a little for the ones ready to run (``EMBEDDED_EXIT_SECONDS``), and makes
the rest ``pending`` again, which the outbox relay sends (under ``make run``, the
relay runs beside the server). A run cut off by the exit is recorded as an
interrupted attempt.
"""

import logging
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from eventhub import broker
from eventhub.conf import eventhub_settings
from eventhub.db import take_write_lock_if_needed
from eventhub.models import Delivery
from eventhub.outbox import DELIVER_ACTOR
from eventhub.worker.deliver import record_interrupted

logger = logging.getLogger(__name__)

HANDED_BACK = (
    "Interrupted: the process exited (embedded broker) before the attempt finished; "
    "handed back to the outbox relay."
)
# What a delivery whose message is lost can be in: queued or retrying (its message waited in
# memory) or running (its thread was cut off).
UNFINISHED = (Delivery.Status.QUEUED, Delivery.Status.RETRYING, Delivery.Status.RUNNING)


def finish_embedded_work(*, timeout: float | None = None) -> int:
    """Finish this process's embedded deliveries, or hand them back; returns how many were handed back.

    Registered to run at exit (see eventhub.apps); does nothing in a process that
    never ran the embedded worker. Never raises: the process is exiting.
    """
    wait = eventhub_settings.EMBEDDED_EXIT_SECONDS if timeout is None else timeout
    try:
        left = broker.finish_embedded(timeout=wait)
        ids = sorted({pk for m in left if m.actor_name == DELIVER_ACTOR for pk in _delivery_ids(m.args)})
        handed = hand_back(delivery_ids=ids) if ids else 0
    except Exception:  # noqa: BLE001 - logged; the relay's rescue is the last resort
        logger.exception("Could not hand unfinished deliveries back at exit; the relay rescues them later.")
        return 0
    if handed:
        logger.warning("Exiting with %d unfinished deliveries: handed back to the outbox relay.", handed)
    return handed


def _delivery_ids(args: tuple) -> list[int]:
    """The ids a delivery message carries: one, or a batch message's list."""
    if len(args) != 1:
        return []
    return list(args[0]) if isinstance(args[0], list) else [args[0]]


def hand_back(*, delivery_ids: Iterable[int]) -> int:
    """Make these deliveries pending for the relay (recording a cut-off run); returns how many."""
    now = timezone.now()
    with transaction.atomic():
        take_write_lock_if_needed(Delivery)
        rows = list(
            Delivery.objects.filter(pk__in=list(delivery_ids), status__in=UNFINISHED).select_related("route")
        )
        running = [d for d in rows if d.status == Delivery.Status.RUNNING]
        dead = {d.pk for d in running if record_interrupted(d, now=now, reason=HANDED_BACK)}
        back = [d.pk for d in rows if d.pk not in dead]
        # Still unfinished: a thread finishing meanwhile keeps its outcome (PostgreSQL re-checks the row).
        Delivery.objects.filter(pk__in=back, status__in=UNFINISHED).update(status=Delivery.Status.PENDING)
    return len(back)
