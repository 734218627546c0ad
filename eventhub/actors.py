"""The Dramatiq actor: a thin shell that hands a delivery id to eventhub.delivery.

Bad input never kills a worker. A message whose body is not JSON is dead-lettered
by Dramatiq's RabbitMQ consumer itself; a message for an actor nobody declared, or
whose arguments are not one delivery id, is refused by :class:`RejectMalformed`
(logged, then dead-lettered to the queue's ``.XQ``); an unknown delivery id is
logged and dropped by ``deliver``; an unregistered handler name makes the delivery
dead with that error.
"""

import logging

import dramatiq
from dramatiq.middleware import Middleware, SkipMessage

from eventhub import broker
from eventhub.conf import eventhub_settings
from eventhub.delivery import deliver
from eventhub.dispatch import DELIVER_ACTOR

logger = logging.getLogger(__name__)


class MalformedMessage(Exception):
    """A message that can never be processed: it is dead-lettered, not retried."""


def malformed_reason(actor_name: str, args: object, kwargs: object, *, known_actors: set[str]) -> str:
    """Why a message can't be processed, or "" when it looks right."""
    if actor_name not in known_actors:
        return f"no actor named {actor_name!r} in this worker"
    if actor_name != DELIVER_ACTOR:
        return ""
    if kwargs or not isinstance(args, list | tuple) or len(args) != 1:
        return f"expected one delivery id, got args={args!r:.100} kwargs={kwargs!r:.100}"
    if isinstance(args[0], bool) or not isinstance(args[0], int):
        return f"expected a delivery id, got {args[0]!r:.100}"
    return ""


class RejectMalformed(Middleware):
    """Dead-letter messages that could never run, before any actor sees them."""

    def before_process_message(self, broker, message):
        reason = malformed_reason(
            message.actor_name, message.args, message.kwargs, known_actors=set(broker.get_declared_actors())
        )
        if reason:
            logger.error(
                "Malformed message %s on queue %s dead-lettered: %s",
                message.message_id,
                message.queue_name,
                reason,
            )
            message.fail()
            raise SkipMessage(reason)


def _deliver(*args: object, **kwargs: object) -> None:
    # Checked again here for workers without RejectMalformed (tests' in-process workers).
    reason = malformed_reason(DELIVER_ACTOR, args, kwargs, known_actors={DELIVER_ACTOR})
    if reason:
        raise MalformedMessage(reason)
    deliver(args[0])


deliver_actor = broker.register_actor(
    dramatiq.actor(
        _deliver,
        actor_name=DELIVER_ACTOR,
        queue_name=eventhub_settings.DEFAULT_QUEUE,
        throws=(MalformedMessage,),
        broker=broker.get_broker(),
    )
)
