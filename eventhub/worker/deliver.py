"""deliver(): run one delivery through its route's destination and record the outcome.

The worker calls this with a delivery id. A delivery that already succeeded is
skipped, so a message that RabbitMQ redelivers never runs a handler twice after
its success was recorded. Every run is recorded as an Attempt; the last one that
fails makes the delivery ``dead``. A delivery whose route is open or paused is held
before its claim, and each outcome counts for its route's circuit (eventhub.health).
"""

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime

import dramatiq
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from dramatiq.middleware.time_limit import TimeLimitExceeded

from eventhub import health, tracing
from eventhub.conf import host_name
from eventhub.db import durability, sqlbatch
from eventhub.destinations import PermanentError, destination_for
from eventhub.models import Attempt, Delivery
from eventhub.outbox import ordering
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

    def __init__(self, *, delivery_id: int, attempt: int, error: str) -> None:
        super().__init__(f"Delivery {delivery_id} attempt {attempt}: outcome not recorded: {error}")
        self.retry_note = {"attempt": attempt, "error": error[:500]}


@dataclass(frozen=True)
class Outcome:
    """What one run of a delivery came to."""

    status: str
    attempts: int
    error: str = ""
    retry_delay_ms: int | None = None  # a receiver's Retry-After, when it asked for a later retry


def worker_name() -> str:
    """host:pid/thread, recorded on deliveries and attempts."""
    return f"{host_name()}:{os.getpid()}/{threading.current_thread().name}"


def claim(delivery_id: int, *, worker: str, note: dict | None = None) -> Delivery | None:
    """Mark the delivery running and count the attempt; None if unknown, succeeded or dead.

    A delivery found ``running`` was interrupted (its worker was killed, or RabbitMQ
    redelivered the message), or its outcome could not be recorded (``note``, left by
    that run: see OutcomeNotRecorded): that attempt is recorded as failed, and when it
    was the route's last attempt the delivery is dead instead of running again, so a
    handler that kills its worker can't loop forever.
    """
    now = timezone.now()
    if durability.can_relax():  # the usual case in one round trip; see eventhub.worker.writes
        delivery = writes.claim_unstarted(delivery_id, worker=worker, now=now)
        if delivery is not None:
            return delivery
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
    if isinstance(note, dict) and note.get("attempt") == delivery.attempts:
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


def deliver(delivery_id: int, *, worker: str | None = None, note: dict | None = None) -> Outcome | None:
    """Run delivery ``delivery_id`` once; returns its outcome, or None when there was nothing to run.

    Raises DeliveryFailed after recording a failure that has attempts left, so the
    queue layer retries it with the route's backoff; OutcomeNotRecorded when the
    outcome could not be written. ``note`` is what the message's previous run left
    (see eventhub.broker.RetryNotes).
    """
    worker = worker or worker_name()
    if health.gate(delivery_id):  # issue 18: its route is open or paused: held, no attempt counted
        return None
    delivery = claim(delivery_id, worker=worker, note=note)
    if delivery is None:
        _log_skipped(delivery_id)
        return None
    # Issue 19: ordering per key. Not its key's turn: it waits, and its message is done with.
    if delivery.ordering_key is not None and not ordering.may_run(delivery):
        return None
    with _deliver_span(delivery) as span:
        outcome = _attempt(delivery, worker=worker)
        tracing.set_attributes(span, status=str(outcome.status))
    if delivery.ordering_key is not None and outcome.status in ordering.FINISHED:
        ordering.release(route_id=delivery.route_id, key=delivery.ordering_key)  # issue 19: the key's next
    if outcome.status == Delivery.Status.RETRYING:
        raise DeliveryFailed(outcome.error, delay=outcome.retry_delay_ms)
    return outcome


def _attempt(delivery: Delivery, *, worker: str) -> Outcome:
    """Run the route's destination once (an "eventhub attempt" span) and record the outcome."""
    started = time.monotonic()
    with tracing.span("eventhub attempt", attributes={"eventhub.attempt": delivery.attempts}) as span:
        error, permanent, failure = _run_destination(delivery)
        tracing.mark_failed(span, error)
    try:
        outcome = record_outcome(
            delivery,
            started_at=delivery.started_at,
            duration_ms=(time.monotonic() - started) * 1000,
            error=error,
            permanent=permanent,
            worker=worker,
        )
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}".strip()
        raise OutcomeNotRecorded(delivery_id=delivery.pk, attempt=delivery.attempts, error=text) from exc
    # Issue 18: the route's circuit counts it; a failure on an open or paused route is held; Retry-After.
    status, delay = health.after_attempt(
        delivery=delivery, status=outcome.status, failure=failure, error=error
    )
    return replace(outcome, status=status, retry_delay_ms=delay)


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


def _log_skipped(delivery_id: int) -> None:
    status = Delivery.objects.filter(pk=delivery_id).values_list("status", flat=True).first()
    if status is None:
        # Not ours to record anywhere: deleted, or a message from another database's eventhub.
        logger.warning("Delivery %s does not exist; message dropped.", delivery_id)
    else:
        logger.info("Delivery %s is %s; nothing to run.", delivery_id, status)


def record_outcome(
    delivery: Delivery, *, started_at: datetime, duration_ms: float, error: str, permanent: bool, worker: str
) -> Outcome:
    """The one outcome recorder: write the attempt and the delivery's new state together."""
    if not error:
        status = Delivery.Status.SUCCEEDED
    elif permanent or delivery.attempts - delivery.attempts_before_replay >= delivery.route.max_attempts:
        status = Delivery.Status.DEAD
    else:
        status = Delivery.Status.RETRYING
    finished = timezone.now()
    error = error[:ERROR_LIMIT]
    outcome = writes.OutcomeRequest(
        delivery.pk, delivery.attempts, started_at, finished, duration_ms, worker, status, error
    )
    if sqlbatch.supported():  # one statement, with other threads' writes when outside a transaction
        writes.record_outcome(outcome)
    else:
        with transaction.atomic():
            outcome.attempt().save()
            Delivery.objects.filter(pk=delivery.pk).update(
                status=status, finished_at=finished, duration_ms=duration_ms, last_error=error
            )
    if error:
        _log_failure(delivery, status=status, error=error, permanent=permanent)
    return Outcome(status=status, attempts=delivery.attempts, error=error)


def _log_failure(delivery: Delivery, *, status: str, error: str, permanent: bool) -> None:
    # One line each: a retry is a WARNING; a dead delivery, which needs someone, an ERROR with the reason.
    attempt = _attempt_of(delivery)
    if status == Delivery.Status.RETRYING:
        logger.warning("Delivery %s attempt %s failed; will retry: %s", delivery.pk, attempt, error)
    elif permanent:
        logger.error("Delivery %s is dead (attempt %s failed permanently): %s", delivery.pk, attempt, error)
    else:
        logger.error("Delivery %s is dead after attempt %s: %s", delivery.pk, attempt, error)
