"""The outbox relay: send deliveries whose message the broker never confirmed.

``emit`` writes deliveries ``pending`` and sends their messages after commit; a
confirmed send makes them ``queued``. A delivery still pending after a grace
period (``EVENTHUB["RELAY_AFTER_SECONDS"]``) was never confirmed — the broker was
down, or the process died between commit and send — so the relay sends it again
through ``eventhub.dispatch.send_deliveries``.

Relays may run side by side (one per worker host): each batch is claimed with
``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, and under SQLite's database
write lock elsewhere, and held until its sends are confirmed, so no two relays send
the same delivery.

The relay also rescues a delivery left ``running`` long after its route's time
limit (``RELAY_STALE_RUNNING_SECONDS`` beyond it): its worker died and its message
is gone (RabbitMQ would otherwise have redelivered it by then).
"""

import logging
import threading
import time
from datetime import timedelta

from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from eventhub.conf import eventhub_settings
from eventhub.delivery import record_interrupted
from eventhub.dispatch import Outgoing, send_deliveries
from eventhub.models import Delivery

logger = logging.getLogger(__name__)


def relay_once(*, after_seconds: float | None = None, batch_size: int | None = None) -> int:
    """Send one batch of deliveries still pending after the grace period; returns how many were sent."""
    after = eventhub_settings.RELAY_AFTER_SECONDS if after_seconds is None else after_seconds
    size = batch_size or eventhub_settings.RELAY_BATCH_SIZE
    cutoff = timezone.now() - timedelta(seconds=after)
    with transaction.atomic():
        _lock_writes_if_needed(cutoff)
        rows = list(
            _lockable(Delivery.objects.filter(status=Delivery.Status.PENDING, created_at__lt=cutoff))
            .select_related("route")
            .order_by("created_at", "pk")[:size]
        )
        sent = send_deliveries([Outgoing.for_route(d.pk, d.route) for d in rows])
    if rows:
        logger.info("Relay sent %d of %d pending deliveries.", sent, len(rows))
    return sent


def rescue_stale(*, stale_seconds: float | None = None, batch_size: int | None = None) -> int:
    """Send again deliveries stuck ``running`` well past their time limit; returns how many."""
    stale = eventhub_settings.RELAY_STALE_RUNNING_SECONDS if stale_seconds is None else stale_seconds
    size = batch_size or eventhub_settings.RELAY_BATCH_SIZE
    now = timezone.now()
    with transaction.atomic():
        _lock_writes_if_needed(now)
        candidates = _lockable(
            Delivery.objects.filter(
                status=Delivery.Status.RUNNING, started_at__lt=now - timedelta(seconds=stale)
            )
        ).select_related("route")[:size]
        limit = timedelta(seconds=stale)
        overdue = [
            d
            for d in candidates
            if d.started_at < now - limit - timedelta(milliseconds=d.route.time_limit_ms)
        ]
        # The lost run counts as an interrupted attempt; when it was the last, the delivery is dead.
        rows = [d for d in overdue if not record_interrupted(d, now=now)]
        # Pending again, so that the send below marks them queued like any other.
        Delivery.objects.filter(pk__in=[d.pk for d in rows]).update(status=Delivery.Status.PENDING)
        sent = send_deliveries([Outgoing.for_route(d.pk, d.route) for d in rows])
    if overdue:
        logger.warning("Relay found %d deliveries stuck running; re-sent %d.", len(overdue), sent)
    return sent


def run(
    *,
    interval: float | None = None,
    after_seconds: float | None = None,
    batch_size: int | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Relay until ``stop`` is set (or the process is told to exit), every ``interval`` seconds.

    A full batch is followed at once by the next; errors (database or broker away)
    are logged and retried on the next round, never ending the loop.
    """
    pause = eventhub_settings.RELAY_INTERVAL_SECONDS if interval is None else interval
    size = batch_size or eventhub_settings.RELAY_BATCH_SIZE
    stop = stop or threading.Event()
    logger.info("Relay started: every %ss, pending for more than %ss.", pause, after_seconds)
    while not stop.is_set():
        sent = _round(after_seconds=after_seconds, batch_size=size)
        if sent < size:
            stop.wait(pause)
    logger.info("Relay stopped.")


def _round(*, after_seconds: float | None, batch_size: int) -> int:
    close_old_connections()
    try:
        return relay_once(after_seconds=after_seconds, batch_size=batch_size) + rescue_stale(
            batch_size=batch_size
        )
    except Exception:
        logger.exception("Relay round failed; trying again next round.")
        time.sleep(1)  # don't spin when the failure is immediate
        return 0


def _lockable(queryset):
    """Rows this relay alone will send: SKIP LOCKED where the database has it."""
    if connection.features.has_select_for_update_skip_locked:
        return queryset.select_for_update(skip_locked=True, of=("self",))
    return queryset


def _lock_writes_if_needed(cutoff) -> None:
    """Without SKIP LOCKED (SQLite), take the database's write lock first, so relays run one at a time.

    A write as the transaction's first statement makes SQLite take its write lock
    now (waiting for another relay's to be released) rather than after reading
    rows that relay is about to send.
    """
    if connection.features.has_select_for_update_skip_locked:
        return
    Delivery.objects.filter(pk=-1).update(status=Delivery.Status.PENDING)
