"""The circuit breaker of a route: count its failures, open it, probe it, close it.

Closed, a route delivers. After ``breaker_failures`` failed attempts in a row, or when
more than ``breaker_failure_percent`` of at least ``breaker_min_attempts`` attempts in a
window of ``breaker_window_seconds`` failed, or at once when its endpoint answers 410
Gone, it opens: its deliveries are held (eventhub.health.gate). Every
``probe_interval_seconds`` one held delivery is tried (half-open): its success closes
the route, and the releaser (eventhub.health.release) sends the held ones again at the
route's pace; its failure opens it again. A probe's failed attempt is recorded but not
counted against the delivery's retry policy, so no delivery dies of being a probe.

The state lives in the route's RouteHealth row, shared by every process and host: a
failure is counted under the row's lock; a success writes nothing unless the route
has failures on record (eventhub.health.states), and then at most a few times a second
per process, with the successes it counted meanwhile.
"""

import logging
import threading
import time
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Case, F, PositiveIntegerField, Value, When
from django.utils import timezone
from dramatiq.common import compute_backoff

from eventhub.db import take_write_lock_if_needed
from eventhub.health import states
from eventhub.health.retry_after import requested_wait
from eventhub.models import Delivery, Route, RouteHealth

logger = logging.getLogger(__name__)

State = RouteHealth.State
GONE = 410
# A process writes the successes it counted for a route with failures on record at most this often.
FLUSH_SECONDS = 0.25

_lock = threading.Lock()
_successes: dict[int, int] = {}  # route id -> successes counted here, not yet written
_flushed: dict[int, float] = {}  # route id -> when this process last wrote them
_failed_here: set[int] = set()  # routes this process counted a failure for since its last write


def after_attempt(
    *, delivery: Delivery, status: str, failure: BaseException | None, error: str
) -> tuple[str, int | None]:
    """Count an attempt's outcome for its route's circuit; returns (status, retry delay in ms or None).

    ``status`` is what the outcome recorder decided. A failure that leaves the route open
    or paused makes a retrying delivery ``held`` instead (its message is done with; the
    releaser sends it again). A 429 or 503 with Retry-After gives the delay of the retry:
    no earlier than asked, nor than the retry policy's backoff. Never raises: the outcome
    is recorded already, and the circuit's bookkeeping must not fail the delivery.
    """
    try:
        if not error:
            record_success(delivery=delivery)
            return status, None
        now = timezone.now()
        wait = requested_wait(failure, now=now)
        holds = record_failure(delivery=delivery, failure=failure, error=error, wait=wait, now=now)
        if status == Delivery.Status.RETRYING and holds and _hold_retrying(delivery.pk):
            return Delivery.Status.HELD, None
        return status, _retry_delay(delivery, wait)
    except Exception:  # noqa: BLE001 - logged; the delivery's own outcome stands
        logger.exception("Delivery %s: the route's health could not be updated.", delivery.pk)
        return status, None


def _retry_delay(delivery: Delivery, wait: float | None) -> int | None:
    if wait is None:
        return None
    route = delivery.route
    retries = max(delivery.attempts - delivery.attempts_before_replay - 1, 0)
    _, backoff = compute_backoff(retries, factor=route.min_backoff_ms, max_backoff=route.max_backoff_ms)
    return max(int(wait * 1000), int(backoff))


def _hold_retrying(delivery_id: int) -> bool:
    return bool(
        Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.RETRYING).update(
            status=Delivery.Status.HELD
        )
    )


def record_failure(
    *, delivery: Delivery, failure: BaseException | None, error: str, wait: float | None, now: datetime
) -> bool:
    """Count a failed attempt (opening the circuit when a threshold is crossed); True if the route holds."""
    route = delivery.route
    pending = _take_successes(route.pk)
    with transaction.atomic():
        health = locked_health(route.pk)
        _count_failure(health, route, pending=pending, now=now)
        probe = health.state != State.CLOSED and health.probe_delivery_id == delivery.pk
        previous, previous_state = health.display_state, health.state
        reason = _opening_reason(route, health, failure, error)
        if probe:
            _open(health, route, now=now, wait=wait)
            reason = f"Probe delivery {delivery.pk} failed: {error[:300]}"
        elif health.state == State.CLOSED and reason:
            _open(health, route, now=now, wait=wait)
        elif health.state != State.CLOSED and wait is not None:
            health.next_probe_at = max(health.next_probe_at or now, now + timedelta(seconds=wait))
        health.save()
        if (probe or previous_state != health.state) and reason:
            states.record_change(health=health, previous=previous, reason=reason)
        return health.holds


def locked_health(route_id: int) -> RouteHealth:
    """The route's health row, made when missing, locked until the transaction ends (call inside one)."""
    take_write_lock_if_needed(RouteHealth)
    health = RouteHealth.objects.select_for_update().filter(route_id=route_id).first()
    if health is None:
        RouteHealth.objects.bulk_create([RouteHealth(route_id=route_id)], ignore_conflicts=True)
        health = RouteHealth.objects.select_for_update().get(route_id=route_id)
    return health


def _count_failure(health: RouteHealth, route: Route, *, pending: int, now: datetime) -> None:
    window = timedelta(seconds=route.breaker_window_seconds)
    if health.window_started_at is None or health.window_started_at <= now - window:
        health.window_started_at, health.window_attempts, health.window_failures = now, 0, 0
    health.window_attempts += 1 + pending
    health.window_failures += 1
    health.consecutive_failures += 1


def _opening_reason(route: Route, health: RouteHealth, failure: BaseException | None, error: str) -> str:
    last = error[:300]
    if getattr(failure, "status", None) == GONE:
        return f"The endpoint answered 410 Gone: it says it is gone for good; check the target. {last}"
    if route.breaker_failures and health.consecutive_failures >= route.breaker_failures:
        return f"{health.consecutive_failures} failed attempts in a row; the last: {last}"
    percent, attempts = route.breaker_failure_percent, health.window_attempts
    failures = health.window_failures
    if percent and attempts >= route.breaker_min_attempts and failures * 100 > percent * attempts:
        return (
            f"{health.window_failures} of {attempts} attempts failed within {route.breaker_window_seconds} s "
            f"(more than {percent}%); the last: {last}"
        )
    return ""


def _open(health: RouteHealth, route: Route, *, now: datetime, wait: float | None) -> None:
    interval = max(route.probe_interval_seconds, wait or 0.0)
    health.state = State.OPEN
    health.next_probe_at = now + timedelta(seconds=interval)
    health.probe_delivery_id = None


def record_success(*, delivery: Delivery) -> None:
    """Count a successful attempt: a probe's closes the circuit; otherwise written only when it matters."""
    route_id = delivery.route_id
    known = states.view(route_id)
    if known is not None and known.state != State.CLOSED:
        close_after_probe(route_id=route_id, delivery_id=delivery.pk)
        return
    with _lock:
        if known is None and route_id not in _failed_here:
            return  # closed, no failures on record (here or in the copy): nothing to write
        _successes[route_id] = _successes.get(route_id, 0) + 1
        due = route_id in _failed_here or time.monotonic() - _flushed.get(route_id, 0.0) >= FLUSH_SECONDS
    if due:
        _flush(delivery.route)


def _take_successes(route_id: int) -> int:
    with _lock:
        _failed_here.add(route_id)
        _flushed[route_id] = time.monotonic()
        return _successes.pop(route_id, 0)


def _flush(route: Route) -> None:
    """Write the successes counted here: the failures in a row end; an expired window is emptied."""
    with _lock:
        count = _successes.pop(route.pk, 0)
        _failed_here.discard(route.pk)
        _flushed[route.pk] = time.monotonic()
    expired = timezone.now() - timedelta(seconds=route.breaker_window_seconds)
    number = PositiveIntegerField()
    RouteHealth.objects.filter(route_id=route.pk).update(
        consecutive_failures=0,
        window_attempts=Case(
            When(window_started_at__lte=expired, then=Value(0)),
            default=F("window_attempts") + count,
            output_field=number,
        ),
        window_failures=Case(
            When(window_started_at__lte=expired, then=Value(0)),
            default=F("window_failures"),
            output_field=number,
        ),
    )


def close_after_probe(*, route_id: int, delivery_id: int) -> bool:
    """Close the circuit if ``delivery_id`` was its probe; True when it did."""
    with transaction.atomic():
        health = locked_health(route_id)
        if health.state == State.CLOSED or health.probe_delivery_id != delivery_id:
            return False
        previous = health.display_state
        health.state, health.probe_delivery_id, health.next_probe_at = State.CLOSED, None, None
        health.consecutive_failures, health.window_attempts, health.window_failures = 0, 0, 0
        health.window_started_at = None
        health.save()
        reason = f"Probe delivery {delivery_id} succeeded; held deliveries go out again at the route's pace."
        states.record_change(health=health, previous=previous, reason=reason)
        return True


def make_probe(health: RouteHealth, *, delivery_id: int, route: Route, now: datetime) -> None:
    """Make ``delivery_id`` the open route's probe (half-open) until the next probe is due.

    Its attempt is not counted against its retry policy. Call with the row locked.
    """
    previous = health.display_state
    health.state, health.probe_delivery_id = State.HALF_OPEN, delivery_id
    health.next_probe_at = now + timedelta(seconds=route.probe_interval_seconds)
    health.save()
    Delivery.objects.filter(pk=delivery_id).update(attempts_before_replay=F("attempts_before_replay") + 1)
    if previous != health.display_state:
        reason = f"Trying delivery {delivery_id} as a probe."
        states.record_change(health=health, previous=previous, reason=reason)
    else:
        states.invalidate()
