"""The message that carries deliveries through RabbitMQ: their ids, nothing else.

Producers (emit, the relay, replays) build it here and the worker's actor reads
it; the worker loads the rows, so a message never carries event data or pickled objects.

A message carries one delivery (``args`` = ``[id]``, the format every eventhub
version reads) or, when events were emitted together, a batch of deliveries of
the same route (``args`` = ``[[id, id, ...]]``, at most ``MESSAGE_BATCH_MAX``):
the worker claims, runs and records them together, and retries a failed one
alone (see eventhub.worker.deliver).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import dramatiq

DELIVER_ACTOR = "eventhub.deliver"
ROUTE_OPTION = "eventhub_route"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What it takes to send one message: its deliveries, their queue, their route's backoff and time limit.

    The number of attempts is not carried: the database decides when a delivery is dead
    (see eventhub.worker.actor.should_retry). ``batch`` holds the other deliveries a
    batch message carries after ``delivery_id`` (empty: a message of one delivery).
    """

    delivery_id: int
    queue: str
    min_backoff_ms: int
    max_backoff_ms: int
    time_limit_ms: int
    route_id: int = 0
    batch: tuple[int, ...] = ()
    # A route with limits is admitted message by message (eventhub.worker.admission): its
    # deliveries travel alone, so that each one pays for its start. So do an ordered route's.
    alone: bool = False

    @classmethod
    def for_route(cls, delivery_id: int, route) -> "Outgoing":
        return cls(
            delivery_id,
            route.queue,
            route.min_backoff_ms,
            route.max_backoff_ms,
            route.time_limit_ms,
            route.pk,
            # Limits admit message by message; an ordered route's deliveries mostly wait for their
            # key's turn, and in a batch each waiting one costs its own release later (bench, 2,000
            # events over 100 keys: 86 events/s in batches, 405/s alone).
            alone=route.rate_limit is not None or route.max_in_flight is not None or bool(route.ordering_key),
        )

    @property
    def delivery_ids(self) -> tuple[int, ...]:
        """Every delivery this message carries, in the order they run."""
        return (self.delivery_id, *self.batch)


def batched(items: Sequence[Outgoing], *, cap: int) -> list[Outgoing]:
    """Messages for deliveries emitted together: one per route, at most ``cap`` deliveries each.

    Deliveries group only with those sent with the very same options (queue, backoff,
    time limit: in practice, the same route), so a batch message's options are every
    one of its deliveries' own. A group of one stays a message of one delivery.
    """
    groups: dict[tuple, list[int]] = {}
    messages = []
    for item in items:
        if item.alone:
            messages.append(item)
            continue
        key = (item.queue, item.min_backoff_ms, item.max_backoff_ms, item.time_limit_ms, item.route_id)
        groups.setdefault(key, []).extend(item.delivery_ids)
    for (queue, min_backoff, max_backoff, time_limit, route_id), ids in groups.items():
        for start in range(0, len(ids), max(cap, 1)):
            first, *rest = ids[start : start + max(cap, 1)]
            messages.append(
                Outgoing(first, queue, min_backoff, max_backoff, time_limit, route_id, batch=tuple(rest))
            )
    return messages


def message_for(item: Outgoing, **options) -> dramatiq.Message:
    """The Dramatiq message for ``item``: its delivery ids only; the worker loads the rows."""
    return dramatiq.Message(
        queue_name=item.queue,
        actor_name=DELIVER_ACTOR,
        args=(list(item.delivery_ids),) if item.batch else (item.delivery_id,),
        kwargs={},
        options={
            "min_backoff": item.min_backoff_ms,
            "max_backoff": item.max_backoff_ms,
            "time_limit": item.time_limit_ms,
            **options,
            # The worker checks the route's limits before it loads the delivery (eventhub.worker.limits).
            ROUTE_OPTION: item.route_id,
        },
    )
