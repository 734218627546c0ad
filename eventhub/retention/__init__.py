"""Retention: how long finished work is kept, and the pruner that deletes the rest.

``policy`` holds the settings, the per-event-type overrides and the checks that refuse a
retention shorter than a route's retry window; ``prune`` deletes in small batches under
an advisory lock (one pruner across all hosts); ``schedule`` runs it on a timer in the
worker's upkeep process. ``manage.py eventhub_prune`` runs it by hand. docs/retention.md.

It sits beside ``outbox`` in the layers: it uses the models and the database plumbing,
and the worker, dashboard, admin and commands use it.
"""

from eventhub.retention.policy import (
    Retention,
    RetentionTooShort,
    check_routes,
    check_settings,
    retention_of,
    route_window,
    too_short,
)
from eventhub.retention.prune import KINDS, PruneReport, deleted_totals, last_run, prune
from eventhub.retention.schedule import run_pruner, start_pruner

__all__ = [
    "KINDS",
    "PruneReport",
    "Retention",
    "RetentionTooShort",
    "check_routes",
    "check_settings",
    "deleted_totals",
    "last_run",
    "prune",
    "retention_of",
    "route_window",
    "run_pruner",
    "start_pruner",
    "too_short",
]
