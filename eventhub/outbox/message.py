"""The message that carries a delivery through RabbitMQ: the delivery's id (and its route's), nothing else.

Producers (emit, the relay, replays) build it here and the worker's actor reads
it; the worker loads the row, so a message never carries event data or pickled objects.
"""

from dataclasses import dataclass

import dramatiq

DELIVER_ACTOR = "eventhub.deliver"
ROUTE_OPTION = "eventhub_route"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What it takes to send one delivery: its id, its queue and its route's backoff and time limit.

    The number of attempts is not carried: the database decides when a delivery is dead
    (see eventhub.worker.actor.should_retry).
    """

    delivery_id: int
    queue: str
    min_backoff_ms: int
    max_backoff_ms: int
    time_limit_ms: int
    route_id: int = 0

    @classmethod
    def for_route(cls, delivery_id: int, route) -> "Outgoing":
        return cls(
            delivery_id,
            route.queue,
            route.min_backoff_ms,
            route.max_backoff_ms,
            route.time_limit_ms,
            route.pk,
        )


def message_for(item: Outgoing) -> dramatiq.Message:
    """The Dramatiq message for one delivery: its id only; the worker loads the row."""
    return dramatiq.Message(
        queue_name=item.queue,
        actor_name=DELIVER_ACTOR,
        args=(item.delivery_id,),
        kwargs={},
        options={
            "min_backoff": item.min_backoff_ms,
            "max_backoff": item.max_backoff_ms,
            "time_limit": item.time_limit_ms,
            # The worker checks the route's limits before it loads the delivery (eventhub.worker.limits).
            ROUTE_OPTION: item.route_id,
        },
    )
