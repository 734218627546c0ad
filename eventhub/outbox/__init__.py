"""The outbox: emit writes events and deliveries in the caller's transaction; they are sent after commit.

``emit`` validates and writes (one Delivery per matching route); ``message`` is
what goes to RabbitMQ for a delivery or a batch of them; ``send`` publishes with confirms and marks
deliveries queued; ``background`` does that from a thread so emit returns at
commit; ``relay`` sends what the broker never confirmed; ``replay`` sends failed
work again; ``route_table`` is the per-process copy of event types and routes.
"""

from eventhub.outbox import ordering, relay, replay, route_table
from eventhub.outbox.background import flush, send_after_commit
from eventhub.outbox.emit import EventSpec, emit, emit_many
from eventhub.outbox.message import DELIVER_ACTOR, ROUTE_OPTION, Outgoing, batched, message_for
from eventhub.outbox.relay import relay_once
from eventhub.outbox.replay import (
    REPLAY_PERMISSION,
    can_replay,
    check_can_replay,
    matching,
    matching_routes,
    replay_deliveries,
    replay_event,
    replay_matching,
    replayable,
)
from eventhub.outbox.send import mark_queued, send_deliveries

__all__ = [
    "DELIVER_ACTOR",
    "ROUTE_OPTION",
    "REPLAY_PERMISSION",
    "EventSpec",
    "Outgoing",
    "batched",
    "can_replay",
    "check_can_replay",
    "emit",
    "emit_many",
    "flush",
    "mark_queued",
    "matching",
    "matching_routes",
    "ordering",
    "message_for",
    "relay",
    "relay_once",
    "replay",
    "replay_deliveries",
    "replay_event",
    "replay_matching",
    "replayable",
    "route_table",
    "send_after_commit",
    "send_deliveries",
]
