"""The Dramatiq actor: a thin shell that hands a message's delivery ids to eventhub.worker.deliver.

Bad input never kills a worker. A message whose body is not JSON, or that names
an actor nobody declared, is dead-lettered to the queue's ``.XQ`` by Dramatiq
itself; a delivery message whose arguments are not one delivery id (or a list of them) is refused by
:class:`RejectMalformed` (logged, then dead-lettered the same way); an unknown
delivery id is logged and dropped by ``deliver``; an unregistered handler name
makes the delivery dead with that error.
"""

import logging

import dramatiq
from dramatiq.middleware import Middleware, SkipMessage

from eventhub import broker
from eventhub.conf import eventhub_settings
from eventhub.outbox import DELIVER_ACTOR
from eventhub.worker.admission import admitted, route_id_of
from eventhub.worker.deliver import DeliveryFailed, deliver, deliver_batch

logger = logging.getLogger(__name__)


class MalformedMessage(Exception):
    """A message that can never be processed: it is dead-lettered, not retried."""


# The most deliveries a batch message may name (MESSAGE_BATCH_MAX is at most this).
MAX_BATCH_IDS = 10_000


def malformed_reason(args: object, kwargs: object) -> str:
    """Why a delivery message's arguments can't be processed, or "" when they look right.

    A message carries one delivery id, or a list of delivery ids (a batch message).
    """
    if kwargs or not isinstance(args, list | tuple) or len(args) != 1:
        return f"expected one delivery id or a list of them, got args={args!r:.100} kwargs={kwargs!r:.100}"
    ids = args[0] if isinstance(args[0], list) else [args[0]]
    if not ids or len(ids) > MAX_BATCH_IDS or not all(_is_id(pk) for pk in ids):
        return f"expected a delivery id or a list of 1 to {MAX_BATCH_IDS} of them, got {args[0]!r:.100}"
    return ""


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class RejectMalformed(Middleware):
    """Dead-letter delivery messages that could never run, before the actor sees them (no retries)."""

    def before_process_message(self, broker, message):
        if message.actor_name != DELIVER_ACTOR:
            return
        reason = malformed_reason(message.args, message.kwargs)
        if reason:
            logger.error(
                "Malformed message %s on queue %s dead-lettered: %s",
                message.message_id,
                message.queue_name,
                reason,
            )
            message.fail()
            raise SkipMessage(reason)


# Hours of retries (the route's backoff, capped) before a message that keeps failing for
# reasons outside the delivery (database or broker down) is dead-lettered.
INFRASTRUCTURE_RETRIES = 50


def should_retry(retries: int, exception: BaseException) -> bool:
    """Dramatiq's retry decision for delivery messages.

    A DeliveryFailed means the database recorded a failed attempt and decided that
    attempts are left: always retry; the database, not Dramatiq's counter, ends the
    delivery (a dead delivery returns without raising). Any other exception means no
    outcome was recorded (the database was unreachable, say): retry for a long while,
    so that an outage never uses up the route's attempts or strands a delivery.

    A DeliveryFailed is a ``dramatiq.Retry``, so Dramatiq's worker does not log it (eventhub
    logged it in one line); any other exception is a crash, and Dramatiq logs it at ERROR
    with its traceback.
    """
    return isinstance(exception, DeliveryFailed) or retries < INFRASTRUCTURE_RETRIES


def _deliver(*args: object, **kwargs: object) -> None:
    # Checked again here for workers without RejectMalformed (tests' in-process workers).
    reason = malformed_reason(args, kwargs)
    if reason:
        raise MalformedMessage(reason)
    batch = args[0] if isinstance(args[0], list) else None
    # Issue 18: over its route's limits? sent back, not claimed. A batch message is admitted as one
    # (its deliveries run one after another on one thread; routes with limits do not batch).
    message = broker.current_message()
    # The message names its deliveries' route: the gate needs no query to learn it.
    route_id = route_id_of(message)
    with admitted(batch[0] if batch else args[0], message) as admission:
        if admission and batch:
            outcomes = deliver_batch(batch, note=broker.current_note(), route_id=route_id)
            admission.finished(*outcomes.values())
        elif admission:
            admission.finished(deliver(args[0], note=broker.current_note(), route_id=route_id))


deliver_actor = broker.register_actor(
    dramatiq.actor(
        _deliver,
        actor_name=DELIVER_ACTOR,
        queue_name=eventhub_settings.DEFAULT_QUEUE,
        throws=(MalformedMessage,),
        retry_when=should_retry,
        broker=broker.get_broker(),
    )
)
