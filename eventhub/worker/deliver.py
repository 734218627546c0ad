"""deliver(): run deliveries through their route's destination and record the outcomes.

The worker calls :func:`deliver` with the delivery id a message carries, or
:func:`deliver_batch` with the ids of a batch message (deliveries of one route
emitted together, see eventhub.outbox.message). Both take one path: the
deliveries are claimed together (one statement), each runs in turn under its
route's time limit, and their outcomes are recorded together (one statement).
A delivery that already succeeded is skipped, so a message that RabbitMQ
redelivers never runs a handler twice after its success was recorded. Every run
is recorded as an Attempt; the last one that fails makes the delivery ``dead``.
A delivery whose route is open or paused is held before its claim, and each
outcome counts for its route's circuit (eventhub.health).

A failed delivery with attempts left is retried with its route's backoff: a
message of one delivery through Dramatiq's retries (DeliveryFailed), a delivery
of a batch alone, in a message of its own, so it never holds up the others.
"""

import contextlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import dramatiq
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from dramatiq.middleware.time_limit import TimeLimitExceeded

from eventhub import broker, health, tracing
from eventhub.conf import eventhub_settings, host_name
from eventhub.db import durability, sqlbatch
from eventhub.destinations import PermanentError, destination_for
from eventhub.models import Attempt, Delivery
from eventhub.outbox import Outgoing, batched, message_for, ordering, send_deliveries
from eventhub.worker import shaping, writes

logger = logging.getLogger(__name__)

ERROR_LIMIT = 4000
INTERRUPTED = (
    "Interrupted: the worker stopped before recording an outcome (killed, or the message redelivered)."
)
OUTCOME_NOT_RECORDED = (
    "Outcome not recorded: the attempt ran (it may have taken effect), but writing its outcome failed "
    "({error}); the delivery was run again."
)
# A batch records the outcomes it has after a run once this long has passed since it last did,
# and marks its deliveries still to run as just started once a while has passed since their
# claim: the rescue (eventhub.worker.rescue) takes a delivery long "running" for a lost one.
RECORD_EVERY_SECONDS = 1.0
KEEP_CLAIMS_EVERY_SECONDS = 30.0
# A batch message runs on one thread. Once it has run this long, the deliveries it has not started
# are sent again in smaller messages (as many as ran in this time, at least one each), so that a
# slow endpoint's batch spreads over the worker's threads instead of holding one for the whole
# batch while the others idle; a fast route's batch finishes well within it.
SPREAD_AFTER_SECONDS = 0.25


class DeliveryFailed(dramatiq.Retry):
    """Raised to the queue layer so it retries the message later.

    The failure is already recorded and logged (one line): as a ``dramatiq.Retry``
    it is not logged again by Dramatiq's worker with a traceback, and it removes any
    note an earlier run left on the message (see eventhub.broker.RetryNotes).
    """

    retry_note = None


class OutcomeNotRecorded(Exception):
    """The attempt ran but its outcome could not be written (the database was unreachable, say).

    Dramatiq logs it as the crash it is and retries the message, which carries the
    note below, so that the next claim records the lost attempt for what it was.
    """

    def __init__(self, *, attempts: dict[int, int], error: str) -> None:
        named = ", ".join(f"delivery {pk} attempt {attempt}" for pk, attempt in attempts.items())
        super().__init__(f"{named}: outcome not recorded: {error}")
        first = next(iter(attempts.values()))
        # "attempt" alone is what earlier versions wrote and read; "deliveries" names each of a batch.
        deliveries = {str(pk): attempt for pk, attempt in attempts.items()}
        self.retry_note = {"attempt": first, "error": error[:500], "deliveries": deliveries}


@dataclass(frozen=True)
class Outcome:
    """What one run of a delivery came to."""

    status: str
    attempts: int
    error: str = ""
    retry_delay_ms: int | None = None  # a receiver's Retry-After, when it asked for a later retry


_names = threading.local()


def worker_name() -> str:
    """host:pid/thread, recorded on deliveries and attempts."""
    # Asked once per message: remembered per thread (host_name reads the settings and the system's
    # name each time), and per process, since a forked child keeps the forking thread's locals.
    pid = os.getpid()
    cached = getattr(_names, "value", None)
    if cached is None or cached[0] != pid:
        cached = _names.value = (pid, f"{host_name()}:{pid}/{threading.current_thread().name}")
    return cached[1]


def claim_many(delivery_ids: Sequence[int], *, worker: str, note: dict | None = None) -> list[Delivery]:
    """Mark these deliveries running and count their attempts; returns the claimed ones, in order.

    Unknown, succeeded and dead deliveries are left out. The usual claim takes one
    statement for all (see eventhub.worker.writes); a delivery found ``running`` was
    interrupted (its worker was killed, or RabbitMQ redelivered the message), or its
    outcome could not be recorded (``note``, left by that run: see OutcomeNotRecorded):
    that attempt is recorded as failed, and when it was the route's last attempt the
    delivery is dead instead of running again, so a handler that kills its worker
    can't loop forever.
    """
    now = timezone.now()
    claimed: list[Delivery | None] = [None] * len(delivery_ids)
    if durability.can_relax():  # the usual case in one round trip; see eventhub.worker.writes
        claimed = writes.claim_unstarted(delivery_ids, worker=worker, now=now)
    left = [pk for pk, delivery in zip(delivery_ids, claimed, strict=True) if delivery is None]
    statuses = dict(Delivery.objects.filter(pk__in=left).values_list("pk", "status")) if left else {}
    found = {delivery.pk: delivery for delivery in claimed if delivery is not None}
    for pk in left:
        if statuses.get(pk) not in (None, Delivery.Status.SUCCEEDED, Delivery.Status.DEAD):
            found[pk] = _claim_locked(pk, worker=worker, now=now, note=note)
        if found.get(pk) is None:
            _log_skipped(pk, statuses.get(pk))
    return [found[pk] for pk in delivery_ids if found.get(pk) is not None]


def _claim_locked(delivery_id: int, *, worker: str, now: datetime, note: dict | None) -> Delivery | None:
    """claim_many's careful path for one delivery: under its row lock, recording an interrupted run."""
    with transaction.atomic():
        # The claim is made durable by the outcome's commit; it need not wait for the disk itself.
        durability.relax_current_transaction()
        delivery = (
            Delivery.objects.select_for_update(of=("self",))
            .select_related("route", "event")
            # Dead stays dead until a replay makes it pending again; a stray message can't revive it.
            .exclude(status__in=(Delivery.Status.SUCCEEDED, Delivery.Status.DEAD))
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None:
            return None
        if delivery.status == Delivery.Status.RUNNING and record_interrupted(
            delivery, now=now, reason=interrupted_reason(delivery, note)
        ):
            return None
        Delivery.objects.filter(pk=delivery_id).update(
            status=Delivery.Status.RUNNING, attempts=F("attempts") + 1, started_at=now, worker=worker
        )
    delivery.status, delivery.attempts, delivery.started_at, delivery.worker = (
        Delivery.Status.RUNNING,
        delivery.attempts + 1,
        now,
        worker,
    )
    return delivery


def interrupted_reason(delivery: Delivery, note: dict | None) -> str:
    """Why the run a claim found unfinished has no outcome: lost while recording, or interrupted."""
    if not isinstance(note, dict):
        return INTERRUPTED
    # A batch's note names each delivery's attempt; a single message's (any version's) has one.
    deliveries = note.get("deliveries")
    attempt = deliveries.get(str(delivery.pk)) if isinstance(deliveries, dict) else note.get("attempt")
    if attempt == delivery.attempts:
        return OUTCOME_NOT_RECORDED.format(error=note.get("error") or "unknown error")
    return INTERRUPTED


def record_interrupted(delivery: Delivery, *, now: datetime, reason: str = INTERRUPTED) -> bool:
    """Record a run that never recorded its outcome; True when it was the last attempt (now dead)."""
    started = delivery.started_at or now
    Attempt.objects.create(
        delivery=delivery,
        number=delivery.attempts,
        started_at=started,
        finished_at=now,
        duration_ms=(now - started).total_seconds() * 1000,
        worker=delivery.worker,
        succeeded=False,
        error=reason,
    )
    attempt = _attempt_of(delivery)
    if delivery.attempts - delivery.attempts_before_replay < delivery.route.max_attempts:
        logger.warning("Delivery %s attempt %s has no outcome; runs again. %s", delivery.pk, attempt, reason)
        return False
    dead = Delivery.Status.DEAD
    Delivery.objects.filter(pk=delivery.pk).update(status=dead, finished_at=now, last_error=reason)
    logger.error("Delivery %s is dead: last attempt (%s) has no outcome. %s", delivery.pk, attempt, reason)
    if delivery.ordering_key is not None:  # issue 19: the next delivery of its key may run
        transaction.on_commit(lambda: ordering.release(route_id=delivery.route_id, key=delivery.ordering_key))
    return True


def _attempt_of(delivery: Delivery) -> str:
    """The attempt in the current round of the route's retry policy, e.g. "2 of 5"."""
    return f"{delivery.attempts - delivery.attempts_before_replay} of {delivery.route.max_attempts}"


def deliver(
    delivery_id: int, *, worker: str | None = None, note: dict | None = None, route_id: int | None = None
) -> Outcome | None:
    """Run delivery ``delivery_id`` once (a message of one delivery); its outcome, or None when there
    was nothing to run.

    Raises DeliveryFailed after recording a failure that has attempts left, so the
    queue layer retries the message with the route's backoff; OutcomeNotRecorded when
    the outcome could not be written. ``note`` is what the message's previous run left
    (see eventhub.broker.RetryNotes). ``route_id``, the route its message names, saves
    the gate a lookup while some route holds.
    """
    ran = _run(_admitted([delivery_id], route_id), worker=worker or worker_name(), note=note)
    if not ran:
        return None
    _, outcome = ran[0]
    if outcome.status == Delivery.Status.RETRYING:
        raise DeliveryFailed(outcome.error, delay=outcome.retry_delay_ms)
    return outcome


def deliver_batch(
    delivery_ids: Sequence[int],
    *,
    worker: str | None = None,
    note: dict | None = None,
    route_id: int | None = None,
) -> dict[int, Outcome]:
    """Run the deliveries a batch message carries, each once; their outcomes by id (those that ran).

    As :func:`deliver`, but a failure with attempts left is sent again alone, after
    its route's backoff, and the others' outcomes stand: when RabbitMQ redelivers the
    batch, those that succeeded are skipped.
    """
    ran = _run(_admitted(delivery_ids, route_id), worker=worker or worker_name(), note=note)
    for delivery, outcome in ran:
        if outcome.status == Delivery.Status.RETRYING:
            _retry_alone(delivery, delay_ms=outcome.retry_delay_ms)
    return {delivery.pk: outcome for delivery, outcome in ran}


def _admitted(delivery_ids: Sequence[int], route_id: int | None) -> list[int]:
    """The deliveries of a message that may be claimed now, in order: the one point where each
    delivery of a message is asked whether it may run, before its claim.

    A delivery named twice in one message runs once. ``route_id``: the route the message names.
    """
    admitted: list[int] = []
    seen: set[int] = set()
    for pk in delivery_ids:
        if pk in seen:
            continue
        seen.add(pk)
        if health.gate(pk, route_id=route_id):  # issue 18: its route is open or paused: held, no attempt
            continue
        admitted.append(pk)
    return admitted


def _run(delivery_ids: list[int], *, worker: str, note: dict | None) -> list[tuple[Delivery, Outcome]]:
    """Claim the deliveries together, run each in turn, record their outcomes together."""
    claimed = claim_many(delivery_ids, worker=worker, note=note) if delivery_ids else []
    outcomes = _Outcomes()
    started = time.monotonic()
    for index, delivery in enumerate(claimed):
        if index and _stopping():  # a graceful stop waits for this message: not for the whole batch
            outcomes.record()
            _hand_back(claimed[index:], worker=worker, why="Worker stopping")
            break
        if delivery.ordering_key is not None:
            outcomes.record()  # an earlier one of the batch may be this one's head: its outcome first
            # Issue 19: ordering per key. Not its key's turn: it waits, and this message is done with it.
            if not ordering.may_run(delivery):
                continue
        outcomes.add(delivery, *_attempt(delivery, worker=worker))
        rest = claimed[index + 1 :]
        spent = time.monotonic() - started
        if rest and spent >= SPREAD_AFTER_SECONDS:
            outcomes.record()
            per_message = max(1, int(SPREAD_AFTER_SECONDS * (index + 1) / spent))
            _hand_back(rest, worker=worker, why="Slow batch spread over the threads", cap=per_message)
            break
        outcomes.keep_up(still_to_run=rest, worker=worker)
    outcomes.record()
    return outcomes.recorded


def _attempt(delivery: Delivery, *, worker: str) -> tuple[writes.OutcomeRequest, BaseException | None]:
    """Run the route's destination once (in "eventhub deliver" and "eventhub attempt" spans); its outcome."""
    started_at, started = timezone.now(), time.monotonic()
    with _deliver_span(delivery) as span:
        with tracing.span("eventhub attempt", attributes={"eventhub.attempt": delivery.attempts}) as attempt:
            error, permanent, failure = _run_destination(delivery)
            tracing.mark_failed(attempt, error)
        outcome = decide_outcome(
            delivery,
            started_at=started_at,
            duration_ms=(time.monotonic() - started) * 1000,
            error=error,
            permanent=permanent,
            worker=worker,
        )
        tracing.set_attributes(span, status=str(outcome.status))
    return outcome, failure


class _Outcomes:
    """A message's outcomes not yet recorded, written together (one statement)."""

    def __init__(self) -> None:
        self.waiting: list[tuple[Delivery, writes.OutcomeRequest, BaseException | None]] = []
        self.recorded: list[tuple[Delivery, Outcome]] = []
        self.last_record = self.last_keep = time.monotonic()

    def add(self, delivery: Delivery, outcome: writes.OutcomeRequest, failure: BaseException | None) -> None:
        self.waiting.append((delivery, outcome, failure))

    def keep_up(self, *, still_to_run: Sequence[Delivery], worker: str) -> None:
        """In a long batch: record what ran, and keep the claims of those still to run fresh."""
        now = time.monotonic()
        if now - self.last_record >= RECORD_EVERY_SECONDS:
            self.record()
        if still_to_run and now - self.last_keep >= KEEP_CLAIMS_EVERY_SECONDS:
            self.last_keep = now
            Delivery.objects.filter(
                pk__in=[d.pk for d in still_to_run], status=Delivery.Status.RUNNING, worker=worker
            ).update(started_at=timezone.now())

    def record(self) -> None:
        """Write the waiting outcomes in one statement, then log failures and release ordering keys."""
        self.last_record = time.monotonic()
        if not self.waiting:
            return
        waiting, self.waiting = self.waiting, []
        try:
            _write_outcomes([outcome for _, outcome, _ in waiting])
        except Exception as exc:
            text = f"{type(exc).__name__}: {exc}".strip()
            attempts = {outcome.delivery_id: outcome.number for _, outcome, _ in waiting}
            raise OutcomeNotRecorded(attempts=attempts, error=text) from exc
        for delivery, request, failure in waiting:
            if request.error:
                _log_failure(
                    delivery, status=request.status, error=request.error, permanent=request.permanent
                )
            # Issue 18: the route's circuit counts it; a failure on an open or paused route is held
            # (its retry is left to the releaser); a 429/503's Retry-After delays the retry.
            status, delay = health.after_attempt(
                delivery=delivery, status=request.status, failure=failure, error=request.error
            )
            outcome = Outcome(
                status=status, attempts=request.number, error=request.error, retry_delay_ms=delay
            )
            if delivery.ordering_key is not None and outcome.status in ordering.FINISHED:
                ordering.release(route_id=delivery.route_id, key=delivery.ordering_key)  # the key's next
            self.recorded.append((delivery, outcome))


def _stopping() -> bool:
    """Whether this thread's Dramatiq worker is stopping (it waits only for the message in hand)."""
    return getattr(threading.current_thread(), "running", True) is False


def _hand_back(deliveries: Sequence[Delivery], *, worker: str, why: str, cap: int | None = None) -> None:
    """Give back the deliveries of a batch this thread claimed but did not start: their claim undone
    (no attempt counted), and sent again in messages of at most ``cap`` (or, if that fails, left
    pending for the relay)."""
    Delivery.objects.filter(
        pk__in=[d.pk for d in deliveries], status=Delivery.Status.RUNNING, worker=worker
    ).update(status=Delivery.Status.PENDING, attempts=F("attempts") - 1)
    items = [Outgoing.for_route(d.pk, d.route) for d in deliveries]
    # A spread's cap is at most the deliveries that ran, so never above MESSAGE_BATCH_MAX.
    sent = send_deliveries(batched(items, cap=cap or eventhub_settings.MESSAGE_BATCH_MAX))
    logger.info("%s: %d deliveries of a batch not started, sent again (%d).", why, len(items), sent)


def _retry_alone(delivery: Delivery, *, delay_ms: int | None = None) -> None:
    """Send a failed delivery of a batch again in a message of its own, after its route's backoff
    (or the receiver's Retry-After, ``delay_ms``, when that is later)."""
    message = message_for(Outgoing.for_route(delivery.pk, delivery.route))
    retries = delivery.attempts - delivery.attempts_before_replay
    delay = broker.enqueue_retry(message, retries=retries, at_least_ms=delay_ms)
    logger.debug("Delivery %s of a batch retried alone in %d ms.", delivery.pk, delay)


def _deliver_span(delivery: Delivery):
    """The OpenTelemetry span of this run, in the event's trace (nothing when spans are off)."""
    if not tracing.enabled():
        return contextlib.nullcontext()
    attributes = {
        "eventhub.delivery_id": delivery.pk,
        "eventhub.route": delivery.route.name,
        "eventhub.event_type": delivery.event.type,
        "eventhub.event_id": str(delivery.event_id),
        "messaging.destination.name": delivery.route.queue,
    }
    parent = tracing.parse(delivery.event.traceparent, delivery.event.tracestate)
    return tracing.span("eventhub deliver", kind="CONSUMER", parent=parent, attributes=attributes)


def _run_destination(delivery: Delivery) -> tuple[str, bool, BaseException | None]:
    """Run the route's destination once: ("", False, None) on success, else (error, permanent, exception)."""
    try:
        # Each delivery's own time limit, from its start: see eventhub.broker.limits.
        with broker.time_limit(delivery.route.time_limit_ms):
            destination_for(delivery.route.destination_kind)(
                route=delivery.route,
                envelope=delivery.event.envelope,
                delivery=delivery,
                transform=shaping.transform_for(delivery),
            )
    except PermanentError as exc:
        return f"{type(exc).__name__}: {exc}", True, exc
    except TimeLimitExceeded as exc:
        limit = delivery.route.time_limit_ms
        return f"TimeLimitExceeded: the attempt ran longer than the route's {limit} ms.", False, exc
    except BaseException as exc:  # noqa: BLE001 - a failing handler must never escape unrecorded
        # The one-line error is recorded and logged; the traceback only for those who ask (LOG_LEVEL=DEBUG).
        logger.debug("Delivery %s: the destination raised", delivery.pk, exc_info=True)
        return f"{type(exc).__name__}: {exc}", False, exc
    return "", False, None


def _log_skipped(delivery_id: int, status: str | None) -> None:
    if status is None:
        # Not ours to record anywhere: deleted, or a message from another database's eventhub.
        logger.warning("Delivery %s does not exist; message dropped.", delivery_id)
    else:
        logger.info("Delivery %s is %s; nothing to run.", delivery_id, status)


def decide_outcome(
    delivery: Delivery, *, started_at: datetime, duration_ms: float, error: str, permanent: bool, worker: str
) -> writes.OutcomeRequest:
    """The one outcome rule: succeeded, retrying while the route's attempts last, else dead."""
    if not error:
        status = Delivery.Status.SUCCEEDED
    elif permanent or delivery.attempts - delivery.attempts_before_replay >= delivery.route.max_attempts:
        status = Delivery.Status.DEAD
    else:
        status = Delivery.Status.RETRYING
    return writes.OutcomeRequest(
        delivery.pk,
        delivery.attempts,
        started_at,
        timezone.now(),
        duration_ms,
        worker,
        status,
        error[:ERROR_LIMIT],
        permanent,
    )


def _write_outcomes(outcomes: list[writes.OutcomeRequest]) -> None:
    """The one outcome recorder: each attempt and its delivery's new state, together."""
    if sqlbatch.supported():  # one statement, with other threads' writes when outside a transaction
        writes.record_outcomes(outcomes)
        return
    with transaction.atomic():
        Attempt.objects.bulk_create([outcome.attempt() for outcome in outcomes])
        for outcome in outcomes:
            Delivery.objects.filter(pk=outcome.delivery_id).update(
                status=outcome.status,
                finished_at=outcome.finished_at,
                duration_ms=outcome.duration_ms,
                last_error=outcome.error,
            )


def _log_failure(delivery: Delivery, *, status: str, error: str, permanent: bool) -> None:
    # One line each: a retry is a WARNING; a dead delivery, which needs someone, an ERROR with the reason.
    attempt = _attempt_of(delivery)
    if status == Delivery.Status.RETRYING:
        logger.warning("Delivery %s attempt %s failed; will retry: %s", delivery.pk, attempt, error)
    elif permanent:
        logger.error("Delivery %s is dead (attempt %s failed permanently): %s", delivery.pk, attempt, error)
    else:
        logger.error("Delivery %s is dead after attempt %s: %s", delivery.pk, attempt, error)
