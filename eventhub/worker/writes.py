"""The worker's bookkeeping on PostgreSQL: many threads' claims and outcomes in one statement.

Each delivery costs a worker two writes: the claim (mark it running, count the
attempt, load it with its event) and the outcome (insert the attempt, update the
delivery). Run one by one, each is a round trip and a commit of its own, and the
database and the driver spend more on those than on the rows. Here a worker
process's concurrent claims, and apart from them its concurrent outcomes, are
combined (see eventhub.db.combining): whichever thread is free runs everyone's
pending writes as one statement, one commit, on its own connection. Claims are
combined apart so that a claim never waits behind an outcome batch's WAL flush.
A batch message's claims, or outcomes, are one statement of their own.

The statement updates every delivery row once, in ascending id order, as every
multi-row update of deliveries does (no deadlocks). A batch with only claims
commits without waiting for the disk (see eventhub.db.durability: the outcome's
commit makes a claim durable); one with outcomes waits, since the outcome is the
record that makes a delivery done. The SQL is built once per process from the
models and is the same for any mix, so it is prepared once per connection.

Only the usual claim happens here: a delivery that is not running, succeeded or
dead. Every other case (unknown, finished, or found running after an interrupted
run) is left to ``eventhub.worker.deliver.claim``.
"""

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from django.db import connection

from eventhub.db import Combiner, durability, sqlbatch
from eventhub.models import Attempt, Delivery, Event
from eventhub.outbox import route_table

UNCLAIMABLE = (Delivery.Status.RUNNING, Delivery.Status.SUCCEEDED, Delivery.Status.DEAD)


class ClaimRequest(NamedTuple):
    """Mark ``delivery_id`` running for ``worker`` from ``now``, if nothing has started it."""

    delivery_id: int
    worker: str
    now: datetime

    def update_values(self) -> tuple:
        """This request's row of the delivery update: (id, claim, status, at, worker, duration_ms, error)."""
        return (self.delivery_id, True, str(Delivery.Status.RUNNING), self.now, self.worker, None, None)


class OutcomeRequest(NamedTuple):
    """Record attempt ``number`` of ``delivery_id`` and set the delivery's outcome (Delivery.status etc.)."""

    delivery_id: int
    number: int
    started_at: datetime
    finished_at: datetime
    duration_ms: float
    worker: str
    status: str
    error: str
    permanent: bool = False  # the destination refused for good (not written: the status says dead)

    def update_values(self) -> tuple:
        """As ClaimRequest.update_values; the worker stays the claim's."""
        return (
            self.delivery_id,
            False,
            str(self.status),
            self.finished_at,
            None,
            self.duration_ms,
            self.error,
        )

    def attempt_values(self) -> tuple:
        """The Attempt row, in ATTEMPT_COLUMNS order (no model instance on the worker's usual path)."""
        return (
            self.delivery_id,
            self.number,
            self.started_at,
            self.finished_at,
            self.duration_ms,
            self.worker,
            not self.error,
            self.error,
        )

    def attempt(self) -> Attempt:
        """The Attempt row as a model instance."""
        return Attempt(**dict(zip(ATTEMPT_COLUMNS, self.attempt_values(), strict=True)))


ATTEMPT_COLUMNS = (
    "delivery_id",
    "number",
    "started_at",
    "finished_at",
    "duration_ms",
    "worker",
    "succeeded",
    "error",
)


Write = ClaimRequest | OutcomeRequest


def claim_unstarted(delivery_ids: Sequence[int], *, worker: str, now: datetime) -> list[Delivery | None]:
    """Claim the unstarted ones of these deliveries; one result per id: the Delivery (``event`` and
    ``route`` loaded) or None.

    One delivery is claimed with other threads' claims (never behind their outcomes,
    which wait for the disk); the deliveries of a batch message in one statement of
    their own. Runs as its own transaction: call it only where ``durability.can_relax()`` holds.
    """
    if len(delivery_ids) == 1:
        return [_claims.submit(ClaimRequest(delivery_ids[0], worker, now))]
    return write_batch([ClaimRequest(pk, worker, now) for pk in delivery_ids])


def record_outcomes(outcomes: Sequence[OutcomeRequest]) -> None:
    """Write outcomes in one statement: one alone with other threads' outcomes when outside a
    transaction; a batch message's together, or anything inside a transaction, as it is."""
    if len(outcomes) == 1 and durability.can_relax():
        _outcomes.submit(outcomes[0])
    else:
        write_batch(outcomes)


def write_batch(requests: Sequence[Write]) -> list[Delivery | None]:
    """Run ``requests`` as one statement; one result per request: the claimed Delivery, else None.

    A delivery asked for twice (a redelivered message racing its original) is
    written once: its outcome if the batch holds one, else its first claim; the
    other requests get None.
    """
    if not requests:
        return []
    chosen: dict[int, Write] = {}
    for request in requests:
        current = chosen.get(request.delivery_id)
        if current is None or (isinstance(current, ClaimRequest) and isinstance(request, OutcomeRequest)):
            chosen[request.delivery_id] = request
    result = _execute([chosen[pk] for pk in sorted(chosen)])  # lock in id order
    claimed: dict[int, Delivery] = {}
    for row in result:
        delivery, row = sqlbatch.instance_from_row(Delivery, row)
        delivery.event, _ = sqlbatch.instance_from_row(Event, row)
        delivery.route = route_table.route(delivery.route_id)
        claimed[delivery.pk] = delivery
    # pop: only the chosen request gets its delivery; an outcome request's never comes back.
    return [
        claimed.pop(r.delivery_id, None)
        if chosen[r.delivery_id] is r and isinstance(r, ClaimRequest)
        else None
        for r in requests
    ]


def prepare_connection() -> None:
    """Connect this thread to the database and prepare the claim and outcome statement on it.

    A worker thread's first delivery otherwise pays for both (a few milliseconds of
    CPU each): when a worker starts under traffic, every thread's first delivery
    at once, which made the first deliveries after a start wait tens of
    milliseconds, and a new route look slow to the thread share (bench: cold workers
    at 200 events/s). The statement runs with no rows: it writes nothing.
    """
    _execute([])


def _execute(rows: Sequence[Write]) -> list[tuple]:
    """The write statement over ``rows`` (sorted by delivery id, one request per delivery)."""
    outcomes = [r for r in rows if isinstance(r, OutcomeRequest)]
    _, attempt_params = _attempts_statement(outcomes)
    # A claim and an outcome fill different columns; the unused ones are NULL and left unchanged.
    params = (
        *attempt_params,
        not outcomes and durability.can_relax(),
        sqlbatch.rows_param([r.update_values() for r in rows]),
        *UNCLAIMABLE,
    )
    result, _ = sqlbatch.execute(_write_sql(), params, prepare=True)
    return result


# Half a millisecond of lingering under load: measured in bench/, it cuts the worker's and the
# database's work per delivery by about a tenth, and latency stays far below a handler's.
# Claims and outcomes are combined apart: a batch with an outcome waits for the disk, and a
# claim queued behind it waited with it; a claims-only batch commits without waiting.
_claims: Combiner[Write, Delivery | None] = Combiner(write_batch, linger=0.0005)
_outcomes: Combiner[Write, Delivery | None] = Combiner(write_batch, linger=0.0005)


def _attempts_statement(outcomes: Sequence[OutcomeRequest]) -> sqlbatch.Statement:
    return sqlbatch.insert_values(Attempt, ATTEMPT_COLUMNS, [o.attempt_values() for o in outcomes])


@functools.cache
def _write_sql() -> str:
    qn = connection.ops.quote_name
    d = Delivery._meta

    def col(name: str) -> str:
        return qn(d.get_field(name).column)

    def db_type(name: str) -> str:
        return d.get_field(name).db_type(connection)

    attempts_sql, _ = _attempts_statement([])
    # The columns of ClaimRequest.update_values and OutcomeRequest.update_values, in their order.
    names = ("id", "claim", "status", "at", "worker", "duration_ms", "error")
    types = ("bigint", "boolean", db_type("status"), "timestamptz", db_type("worker"))
    types += (db_type("duration_ms"), db_type("last_error"))
    keep_or = "CASE WHEN w.claim THEN {claim} ELSE {outcome} END"
    assignments = {
        "status": "w.status",
        "attempts": f"d.{col('attempts')} + CASE WHEN w.claim THEN 1 ELSE 0 END",
        "started_at": keep_or.format(claim="w.at", outcome=f"d.{col('started_at')}"),
        "worker": keep_or.format(claim="w.worker", outcome=f"d.{col('worker')}"),
        "finished_at": keep_or.format(claim=f"d.{col('finished_at')}", outcome="w.at"),
        "duration_ms": keep_or.format(claim=f"d.{col('duration_ms')}", outcome="w.duration_ms"),
        "last_error": keep_or.format(claim=f"d.{col('last_error')}", outcome="w.error"),
    }
    update = (
        f"UPDATE {qn(d.db_table)} d SET {', '.join(f'{col(k)} = {v}' for k, v in assignments.items())} "
        f"FROM ({sqlbatch.rows_from_json(types, names)}) AS w "
        f"WHERE d.{col('id')} = w.id AND (NOT w.claim OR d.{col('status')} NOT IN (%s, %s, %s)) "
        "AND EXISTS (SELECT 1 FROM relaxed) "
        "RETURNING d.*, w.claim AS claimed"
    )
    # Only a batch without outcomes is relaxed; otherwise the session's own setting stays.
    relaxed = (
        "SELECT set_config('synchronous_commit', "
        "CASE WHEN %s::boolean THEN 'off' ELSE current_setting('synchronous_commit') END, true)"
    )
    event = Event._meta
    return (
        f"WITH attempts AS ({attempts_sql}), relaxed AS ({relaxed}), changed AS ({update}) "
        f"SELECT {sqlbatch.columns(Delivery, 'c')}, {sqlbatch.columns(Event, 'e')} FROM changed c "
        f"JOIN {qn(event.db_table)} e ON e.{qn(event.pk.column)} = c.{col('event')} WHERE c.claimed"
    )
