"""Sending delivery messages to the broker, after the transaction that wrote them commits.

A delivery is written ``pending``; once the broker has confirmed its message it
becomes ``queued``. A delivery still pending later (broker down, process killed
between commit and send) is picked up by the outbox relay, which calls
``send_deliveries`` again: a message is re-sent only when its send was never confirmed.
"""

import functools
import logging
from collections.abc import Callable, Sequence

import dramatiq
from django.db import connection
from django.utils import timezone
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from eventhub import broker as brokers
from eventhub.broker import publisher_for
from eventhub.db import durability
from eventhub.models import Delivery
from eventhub.outbox.message import Outgoing, message_for

logger = logging.getLogger(__name__)


def send_deliveries(items: Sequence[Outgoing]) -> int:
    """Publish the messages and mark the confirmed deliveries queued; returns how many deliveries.

    On RabbitMQ the whole batch is published and then its confirms awaited once
    (see eventhub.broker.confirms). Never raises: a delivery whose send fails or is not
    confirmed stays pending for the relay.
    """
    sent = start_send(items)()
    mark_queued(sent)
    brokers.ensure_embedded_worker()
    return len(sent)


def start_send(items: Sequence[Outgoing]) -> Callable[[], list[int]]:
    """Publish the deliveries' messages; returns a call that waits for the confirms and gives the sent ids.

    Between the two, the caller may publish more (the background sender does: a confirm
    wait no longer holds up the messages emitted meanwhile). Neither part raises.
    """
    if not items:
        return list
    broker = brokers.get_broker()
    if not isinstance(broker, RabbitmqBroker):
        sent = _enqueue_each(broker, items)
        return lambda: sent
    messages = [message_for(item) for item in items]
    try:
        for queue in {item.queue for item in items}:
            broker.declare_queue(queue, ensure=True)  # once per queue and process
        for message in messages:
            broker.emit_before("enqueue", message, None)
        publisher = publisher_for(broker)
        batch = publisher.start([(m.queue_name, m.encode()) for m in messages])
    except Exception:
        logger.warning(
            "Broker send of %d deliveries failed; they stay pending for the relay.", len(items), exc_info=True
        )
        return list
    return lambda: _confirmed(broker, items, messages, publisher.wait(batch))


def _confirmed(
    broker: RabbitmqBroker, items: Sequence[Outgoing], messages: list, confirmed: list[bool]
) -> list[int]:
    for message, ok in zip(messages, confirmed, strict=True):
        if ok:
            broker.emit_after("enqueue", message, None)
    sent = [pk for item, ok in zip(items, confirmed, strict=True) if ok for pk in item.delivery_ids]
    if not all(confirmed):
        logger.warning(
            "RabbitMQ confirmed %d of %d delivery messages; the rest stay pending for the relay.",
            sum(confirmed),
            len(items),
        )
    return sent


def _enqueue_each(broker: dramatiq.Broker, items: Sequence[Outgoing]) -> list[int]:
    """The embedded broker (and any other): Dramatiq's own enqueue, one message at a time."""
    sent: list[int] = []
    try:
        for item in items:
            broker.declare_queue(item.queue)
            broker.enqueue(message_for(item))
            sent.extend(item.delivery_ids)
    except Exception:
        logger.warning(
            "Broker send failed after %d of %d deliveries; the rest stay pending for the relay.",
            len(sent),
            len(items),
            exc_info=True,
        )
    return sent


def mark_queued(delivery_ids: Sequence[int]) -> None:
    """Record that the broker confirmed these deliveries' messages."""
    if not delivery_ids:
        return
    try:
        _update_pending_to_queued(list(delivery_ids))
    except Exception:
        # The messages are out; a delivery left pending is at worst sent again by the
        # relay, and the worker's idempotency check keeps the effect once.
        logger.warning("Could not mark %d deliveries queued.", len(delivery_ids), exc_info=True)


def _update_pending_to_queued(delivery_ids: list[int]) -> None:

    if not durability.can_relax():
        # Only pending rows: a fast worker may already have started or finished one.
        Delivery.objects.filter(pk__in=delivery_ids, status=Delivery.Status.PENDING).update(
            status=Delivery.Status.QUEUED, queued_at=timezone.now()
        )
        return
    # Bookkeeping the relay repairs (a lost mark means one more send, which the worker's
    # idempotent claim absorbs): commit it without waiting for the disk; see eventhub.db.durability.
    # Sorted: rows are locked in id order, as the worker's claims lock them (no deadlocks).
    # Rows a worker holds are skipped, not waited for: that worker is claiming them (they will be
    # running), and its batch may be waiting for a WAL flush; waiting for it held up this
    # process's sender, and every message emitted meanwhile (bench.stalls: the latency outliers).
    params = (Delivery.Status.QUEUED, timezone.now(), sorted(delivery_ids), Delivery.Status.PENDING)
    durability.execute_relaxed_update((_mark_queued_sql(), params), prepare=True)


@functools.cache
def _mark_queued_sql() -> str:

    qn, meta = connection.ops.quote_name, Delivery._meta
    status, queued_at = qn(meta.get_field("status").column), qn(meta.get_field("queued_at").column)
    table, pk = qn(meta.db_table), qn(meta.pk.column)
    return (
        f"UPDATE {table} SET {status} = %s, {queued_at} = %s WHERE {pk} IN "
        f"(SELECT {pk} FROM {table} WHERE {pk} = ANY(%s) AND {status} = %s ORDER BY {pk} "
        "FOR UPDATE SKIP LOCKED)"
    )
