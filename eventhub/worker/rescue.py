"""Rescue of deliveries whose worker died: found ``running`` long past their route's time limit.

A worker killed mid-delivery leaves its delivery ``running``; RabbitMQ redelivers
the unacknowledged message, and the next claim records the lost run. When the
message is gone too, nothing would ever run the delivery again: after
``RELAY_STALE_RUNNING_SECONDS`` beyond its time limit, it is recorded as an
interrupted attempt and sent again (or made dead, when that was its last attempt).
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from eventhub.conf import eventhub_settings
from eventhub.db import lockable, take_write_lock_if_needed
from eventhub.models import Delivery
from eventhub.outbox import Outgoing, send_deliveries
from eventhub.worker.deliver import record_interrupted

logger = logging.getLogger(__name__)


def rescue_stale(*, stale_seconds: float | None = None, batch_size: int | None = None) -> int:
    """Send again deliveries stuck ``running`` well past their time limit; returns how many."""
    stale = eventhub_settings.RELAY_STALE_RUNNING_SECONDS if stale_seconds is None else stale_seconds
    size = batch_size or eventhub_settings.RELAY_BATCH_SIZE
    now = timezone.now()
    with transaction.atomic():
        take_write_lock_if_needed(Delivery)
        candidates = lockable(
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
