"""Endpoint health: a route's trouble stays with its route (docs/endpoint-health.md).

``gate`` holds a delivery of an open or paused route before its claim; ``circuit``
counts attempts' outcomes, opens, probes and closes a route's circuit; ``pause``
is the operator's pause and resume; ``release`` sends held deliveries again at each
route's pace, from the worker's upkeep; ``retry_after`` reads a receiver's
Retry-After; ``states`` is each process's copy of the routes' health and the record
of its changes.
"""

from eventhub.health import states
from eventhub.health.circuit import after_attempt
from eventhub.health.gate import gate
from eventhub.health.pause import PAUSE_PERMISSION, can_pause, check_can_pause, pause_route, resume_route
from eventhub.health.release import Round, release_once, run_releaser, start_releaser
from eventhub.health.retry_after import retry_after_seconds

__all__ = [
    "PAUSE_PERMISSION",
    "Round",
    "after_attempt",
    "can_pause",
    "check_can_pause",
    "gate",
    "pause_route",
    "release_once",
    "resume_route",
    "retry_after_seconds",
    "run_releaser",
    "start_releaser",
    "states",
]
