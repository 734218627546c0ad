"""Replay: send failed or dead deliveries again, or an event through today's routes.

Every replay is permission-checked (``eventhub.replay_delivery``) and recorded as a
:class:`~eventhub.models.Replay` row saying who asked, when, and which deliveries
it sent. Messages leave only after the replay's transaction commits, through the
same sending path as ``emit`` (a send that fails leaves the delivery pending for
the outbox relay).

A replayed delivery keeps its row and its attempt history; it becomes ``pending``
and gets a fresh round of its route's retry policy.
"""

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import partial

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from eventhub.events import match
from eventhub.models import Delivery, Event, Replay, Route
from eventhub.outbox import ordering
from eventhub.outbox.background import send_after_commit
from eventhub.outbox.emit import build_delivery
from eventhub.outbox.message import Outgoing

logger = logging.getLogger(__name__)

REPLAY_PERMISSION = "eventhub.replay_delivery"
# Failed (still retrying) and dead deliveries can be replayed. A succeeded delivery is
# re-sent by replaying its event, which makes new deliveries and keeps the old record.
REPLAYABLE_STATUSES = (Delivery.Status.DEAD, Delivery.Status.RETRYING)
CHUNK = 500


def can_replay(user) -> bool:
    """Whether ``user`` may replay deliveries and events."""
    return bool(user is not None and user.is_active and user.has_perm(REPLAY_PERMISSION))


def check_can_replay(user) -> None:
    """Raise PermissionDenied unless ``user`` may replay."""
    if not can_replay(user):
        raise PermissionDenied("You do not have permission to replay deliveries.")


def replayable(deliveries: QuerySet[Delivery]) -> QuerySet[Delivery]:
    """The part of ``deliveries`` a replay would send (failed or dead ones)."""
    return deliveries.filter(status__in=REPLAYABLE_STATUSES)


def replay_deliveries(*, deliveries: Iterable[Delivery] | QuerySet[Delivery], user) -> int:
    """Send the chosen failed or dead deliveries again; returns how many were sent.

    Deliveries in any other status (pending, queued, running, succeeded) are left
    alone and not counted. Raises PermissionDenied without the replay permission.
    """
    check_can_replay(user)
    ids = _ids_of(deliveries)
    with transaction.atomic():
        record = _record(kind=Replay.Kind.DELIVERIES, user=user)
        count = _resend(ids, record)
    return count


def replay_event(*, event: Event, user) -> list[Delivery]:
    """Deliver ``event`` again through the routes enabled and matching today; returns the new deliveries.

    Makes one new delivery per route (old deliveries keep their records), even for
    routes that already delivered it successfully: this is how an operator re-sends.
    """
    check_can_replay(user)
    now, envelope = timezone.now(), event.envelope
    pairs = [
        (build_delivery(event=event, route=r, envelope=envelope, now=now), r)
        for r in matching_routes(event=event)
    ]
    with transaction.atomic():
        record = _record(kind=Replay.Kind.EVENT, user=user, event=event)
        ordering.number([d for d, _ in pairs])  # ordered routes: at the back of the key's line
        Delivery.objects.bulk_create([d for d, _ in pairs])
        record.deliveries.add(*[d for d, _ in pairs])
        _set_count(record, len(pairs))
        outgoing = [Outgoing.for_route(d.pk, r) for d, r in pairs]
        transaction.on_commit(partial(send_after_commit, outgoing))
    logger.info("%s replayed event %s through %d routes.", record.username, event.pk, len(pairs))
    return [d for d, _ in pairs]


def matching_routes(*, event: Event) -> list[Route]:
    """The routes enabled today whose filter matches ``event``: where a replay of it would go."""
    routes = Route.objects.filter(event_type_id=event.event_type_id, enabled=True).order_by("pk")
    envelope = event.envelope
    return [r for r in routes if match(r.filter, envelope)]


def matching(
    *,
    route: Route | int | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Delivery]:
    """The replayable deliveries a bulk replay with these filters would send.

    ``status`` is "dead" or "retrying" (None: both); ``since``/``until`` bound the
    delivery's creation time (since inclusive, until exclusive). ValueError for
    any other status.
    """
    if status is not None and status not in REPLAYABLE_STATUSES:
        allowed = ", ".join(REPLAYABLE_STATUSES)
        raise ValueError(f"Only {allowed} deliveries can be replayed, not {status!r}.")
    found = replayable(Delivery.objects.all())
    if route is not None:
        found = found.filter(route_id=route.pk if isinstance(route, Route) else route)
    if status is not None:
        found = found.filter(status=status)
    if since is not None:
        found = found.filter(created_at__gte=since)
    if until is not None:
        found = found.filter(created_at__lt=until)
    return found


def replay_matching(
    *,
    route: Route | int | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    user,
    dry_run: bool,
) -> int:
    """Bulk replay by route, status and time range; returns how many deliveries it sends.

    With ``dry_run=True`` nothing is sent or recorded: the count is what a confirmed
    replay would send now, for the operator to confirm. Raises PermissionDenied
    without the replay permission (even for a dry run) and ValueError for a status
    that cannot be replayed.
    """
    check_can_replay(user)
    found = matching(route=route, status=status, since=since, until=until)
    if dry_run:
        return found.count()
    criteria = {
        "route": route.pk if isinstance(route, Route) else route,
        "status": status,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
    }
    ids = list(found.order_by("pk").values_list("pk", flat=True))
    with transaction.atomic():
        record = _record(kind=Replay.Kind.BULK, user=user, criteria=criteria)
        count = _resend(ids, record)
    return count


def _ids_of(deliveries: Iterable[Delivery] | QuerySet[Delivery]) -> list[int]:
    if isinstance(deliveries, QuerySet):
        return list(deliveries.values_list("pk", flat=True))
    return [d.pk if isinstance(d, Delivery) else int(d) for d in deliveries]


def _record(*, kind: str, user, event: Event | None = None, criteria: dict | None = None) -> Replay:
    username = user.get_username() if user is not None else ""
    return Replay.objects.create(
        kind=kind,
        user=user if user is not None and user.pk else None,
        username=username,
        event=event,
        criteria=criteria or {},
    )


def _set_count(record: Replay, count: int) -> None:
    Replay.objects.filter(pk=record.pk).update(delivery_count=count)
    record.delivery_count = count


def _resend(ids: Sequence[int], record: Replay) -> int:
    """Flip the replayable ones among ``ids`` to pending and send them after commit."""
    outgoing: list[Outgoing] = []
    for start in range(0, len(ids), CHUNK):
        # Locked so that a worker finishing one of them at this moment can't race the flip.
        rows = list(
            replayable(Delivery.objects.filter(pk__in=ids[start : start + CHUNK]))
            .select_for_update(of=("self",))
            .select_related("route")
        )
        chosen = [d.pk for d in rows]
        ordering.renumber(rows)  # a replayed delivery of an ordered route goes to the back of its key's line
        Delivery.objects.filter(pk__in=chosen).update(
            status=Delivery.Status.PENDING, attempts_before_replay=F("attempts"), queued_at=None
        )
        record.deliveries.add(*chosen)
        outgoing += [Outgoing.for_route(d.pk, d.route) for d in rows]
    _set_count(record, len(outgoing))
    transaction.on_commit(partial(send_after_commit, outgoing))
    logger.info("%s replayed %d deliveries (replay %s).", record.username, len(outgoing), record.pk)
    return len(outgoing)
