"""The Dramatiq actor: a thin shell that hands a delivery id to eventhub.delivery."""

import logging

import dramatiq

from eventhub import broker
from eventhub.conf import eventhub_settings
from eventhub.delivery import deliver
from eventhub.dispatch import DELIVER_ACTOR

logger = logging.getLogger(__name__)


class MalformedMessage(Exception):
    """A message that can never be processed: it is dead-lettered, not retried."""


def _deliver(delivery_id: object) -> None:
    # Messages come from other processes and, on a shared broker, possibly other tools.
    if isinstance(delivery_id, bool) or not isinstance(delivery_id, int):
        raise MalformedMessage(f"expected a delivery id, got {delivery_id!r:.100}")
    deliver(delivery_id)


deliver_actor = broker.register_actor(
    dramatiq.actor(
        _deliver,
        actor_name=DELIVER_ACTOR,
        queue_name=eventhub_settings.DEFAULT_QUEUE,
        throws=(MalformedMessage,),
        broker=broker.get_broker(),
    )
)
