"""A route's rate and concurrency limits, shared by every worker process and host through PostgreSQL.

A limited route has one :class:`~eventhub.models.RouteGate` row. Admitting a delivery is
one statement on it: the row is locked, the decision is made on its latest version, and
the row is updated, so two workers anywhere never both take the last place.

- Rate (``Route.rate_limit``, deliveries per second): GCRA, a token bucket kept as one
  number, ``next_at``, the next start the rate allows. A start is allowed while
  ``next_at`` is at most one second's burst ahead of now; each start moves it on by
  ``1 / rate``. A delivery over the rate *reserves* its start: ``next_at`` moves on for
  it too, and it is told when its turn is, so that it comes back once, at its turn,
  instead of asking again and again.
- Concurrency (``Route.max_in_flight``): ``leases`` maps a token to its expiry. A start
  adds one while fewer than K are live; the worker removes it when the attempt ends.
  A lease that a killed worker never gave back expires after the route's time limit
  and ``LIMIT_LEASE_GRACE_SECONDS``.

Time is the database's clock, the one clock every host shares. SQLite (one host) runs
the same decision in Python inside an IMMEDIATE transaction, which takes the write lock.
"""

import functools
import time
import uuid
from dataclasses import dataclass

from django.db import connection, transaction

from eventhub.conf import eventhub_settings
from eventhub.models import Route, RouteGate


@dataclass(frozen=True)
class Decision:
    """What the gate said: ``lease`` to give back when admitted; else ``wait`` seconds, and why."""

    admitted: bool
    lease: str = ""
    wait: float = 0.0  # over the rate: seconds until the start it reserved
    reserved: bool = False  # the refused delivery reserved a start under the rate limit
    in_flight: int = 0  # live leases before this decision


def limited(route: Route) -> bool:
    """Whether the route has a rate or concurrency limit (the route copy tells; no query)."""
    return route.rate_limit is not None or route.max_in_flight is not None


def burst_seconds(rate: float) -> float:
    """How far ahead of now ``next_at`` may be for a start to be allowed: one second's worth, less one."""
    return max(0.0, (max(1.0, rate) - 1.0) / rate)


def lease_seconds(route: Route) -> float:
    """How long a lease lives if never given back: the route's time limit and a grace period."""
    return route.time_limit_ms / 1000 + eventhub_settings.LIMIT_LEASE_GRACE_SECONDS


def admit(route: Route, *, reserved: bool = False) -> Decision:
    """Take a start (and a lease) for one delivery of ``route``, or say how long to wait.

    ``reserved``: the delivery already reserved its start under the rate limit (it comes
    back at its turn), so only the concurrency limit is checked.
    """
    token = uuid.uuid4().hex[:16]
    if connection.vendor == "postgresql":
        row = _admit_sql(route, token=token, reserved=reserved)
        if row is None:  # the route's first limited delivery: make its row, then decide
            RouteGate.objects.get_or_create(route_id=route.pk)
            row = _admit_sql(route, token=token, reserved=reserved)
        rate_ok, slot_ok, next_at, now, live = row
    else:
        rate_ok, slot_ok, next_at, now, live = _admit_python(route, token=token, reserved=reserved)
    if rate_ok and slot_ok:
        return Decision(True, lease=token if route.max_in_flight is not None else "", in_flight=live)
    if not rate_ok:
        rate = route.rate_limit
        wait = max(0.0, next_at - 1.0 / rate - burst_seconds(rate) - now)
        return Decision(False, wait=wait, reserved=True, in_flight=live)
    return Decision(False, in_flight=live)


def give_back(route_id: int, lease: str) -> None:
    """End a lease (the attempt is over); a lease not given back expires by itself."""
    if not lease:
        return
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(RouteGate._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET leases = leases - %s WHERE route_id = %s", [lease, route_id])
        return
    with transaction.atomic():
        gate = RouteGate.objects.filter(route_id=route_id).first()
        if gate is not None and gate.leases.pop(lease, None) is not None:
            gate.save(update_fields=["leases"])


def in_flight(route_ids: list[int]) -> dict[int, int]:
    """Live leases per route (routes with an in-flight limit); the dashboard counts running deliveries."""
    now = time.time()
    gates = RouteGate.objects.filter(route_id__in=route_ids).values_list("route_id", "leases")
    return {
        route_id: sum(1 for expiry in (leases or {}).values() if expiry > now) for route_id, leases in gates
    }


def _admit_sql(route: Route, *, token: str, reserved: bool) -> tuple | None:
    rate, k = route.rate_limit, route.max_in_flight
    params = {
        "route": route.pk,
        "rate": rate,
        "tau": burst_seconds(rate) if rate else 0.0,
        "paid": reserved or rate is None,
        "k": k,
        "token": token,
        "ttl": lease_seconds(route),
    }
    with connection.cursor() as cursor:
        cursor.execute(_admit_statement(), params)
        return cursor.fetchone()


@functools.cache
def _admit_statement() -> str:
    table = connection.ops.quote_name(RouteGate._meta.db_table)
    # "old" locks the row (after waiting, on its latest version); "d" decides with the clock read
    # after the lock; the UPDATE writes the decision. The SET of a refused start keeps what it has.
    return f"""
WITH old AS (
    SELECT route_id, next_at, leases FROM {table} WHERE route_id = %(route)s FOR UPDATE
), clock AS (
    SELECT old.*, extract(epoch FROM clock_timestamp())::float8 AS now FROM old
), live AS (
    SELECT clock.*,
        (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{{}}'::jsonb)
           FROM jsonb_each(clock.leases) e WHERE (e.value)::float8 > clock.now) AS kept
    FROM clock
), d AS (
    SELECT live.*,
        (%(paid)s OR live.next_at - live.now <= %(tau)s) AS rate_ok,
        (%(k)s::int IS NULL OR (SELECT count(*) FROM jsonb_object_keys(live.kept)) < %(k)s::int) AS slot_ok,
        (SELECT count(*) FROM jsonb_object_keys(live.kept))::int AS live_count
    FROM live
)
UPDATE {table} g SET
    next_at = CASE
        WHEN %(paid)s OR (d.rate_ok AND NOT d.slot_ok) THEN d.next_at
        ELSE greatest(d.next_at, d.now) + 1.0 / %(rate)s::float8 END,
    leases = CASE
        WHEN %(k)s::int IS NULL THEN '{{}}'::jsonb
        WHEN d.rate_ok AND d.slot_ok
            THEN d.kept || jsonb_build_object(%(token)s::text, d.now + %(ttl)s::float8)
        ELSE d.kept END
FROM d WHERE g.route_id = d.route_id
RETURNING d.rate_ok, d.slot_ok, g.next_at, d.now, d.live_count
"""


def _admit_python(route: Route, *, token: str, reserved: bool) -> tuple:
    """The statement above, for SQLite: the same decision inside one write transaction."""
    rate, k = route.rate_limit, route.max_in_flight
    paid = reserved or rate is None
    with transaction.atomic():
        gate, _ = RouteGate.objects.get_or_create(route_id=route.pk)
        now = time.time()
        kept = {key: expiry for key, expiry in (gate.leases or {}).items() if expiry > now}
        rate_ok = paid or gate.next_at - now <= burst_seconds(rate)
        slot_ok = k is None or len(kept) < k
        if not (paid or (rate_ok and not slot_ok)):
            gate.next_at = max(gate.next_at, now) + 1.0 / rate
        if rate_ok and slot_ok and k is not None:
            kept[token] = now + lease_seconds(route)
        gate.leases = kept if k is not None else {}
        gate.save()
    return rate_ok, slot_ok, gate.next_at, now, len(kept) - (1 if token in kept else 0)
