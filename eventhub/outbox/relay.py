"""The outbox relay: send deliveries whose message the broker never confirmed.

``emit`` writes deliveries ``pending`` and sends their messages after commit; a
confirmed send makes them ``queued``. A delivery still pending after a grace
period (``EVENTHUB["RELAY_AFTER_SECONDS"]``) was never confirmed — the broker was
down, or the process died between commit and send — so the relay sends it again
through ``eventhub.outbox.send.send_deliveries``.

Relays may run side by side (one per worker host): each batch is claimed with
``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, and under SQLite's database
write lock elsewhere, and held until its sends are confirmed, so no two relays send
the same delivery.

The relay runs in the worker's upkeep process (eventhub.worker.upkeep), beside the
rescue of deliveries whose worker died (eventhub.worker.rescue).
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from eventhub.conf import eventhub_settings
from eventhub.db import lockable, take_write_lock_if_needed
from eventhub.models import Delivery
from eventhub.outbox.message import Outgoing
from eventhub.outbox.send import send_deliveries

logger = logging.getLogger(__name__)


def relay_once(*, after_seconds: float | None = None, batch_size: int | None = None) -> int:
    """Send one batch of deliveries still pending after the grace period; returns how many were sent."""
    after = eventhub_settings.RELAY_AFTER_SECONDS if after_seconds is None else after_seconds
    size = batch_size or eventhub_settings.RELAY_BATCH_SIZE
    cutoff = timezone.now() - timedelta(seconds=after)
    with transaction.atomic():
        take_write_lock_if_needed(Delivery)
        rows = list(
            lockable(Delivery.objects.filter(status=Delivery.Status.PENDING, created_at__lt=cutoff))
            .select_related("route")
            .order_by("created_at", "pk")[:size]
        )
        sent = send_deliveries([Outgoing.for_route(d.pk, d.route) for d in rows])
    if rows:
        logger.info("Relay sent %d of %d pending deliveries.", sent, len(rows))
    return sent
