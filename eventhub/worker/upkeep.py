"""The worker's upkeep process: the outbox relay and the rescue of stuck deliveries, on a timer,
and the releaser of held deliveries (eventhub.health.release) and the pruner (eventhub.retention)
in threads of their own.

``manage.py eventhub_worker`` has Dramatiq fork it beside the worker processes
(see eventhub.worker.fork); ``manage.py eventhub_relay`` runs the same loop on its own,
without the pruner.
"""

import logging
import threading
import time

from django.db import close_old_connections

from eventhub import health
from eventhub.conf import eventhub_settings
from eventhub.outbox import ordering, relay_once
from eventhub.retention import start_pruner
from eventhub.worker.rescue import rescue_stale

logger = logging.getLogger(__name__)


def run_upkeep(
    *,
    interval: float | None = None,
    after_seconds: float | None = None,
    batch_size: int | None = None,
    stop: threading.Event | None = None,
    prune: bool = False,
) -> None:
    """Relay until ``stop`` is set (or the process is told to exit), every ``interval`` seconds.

    A full batch is followed at once by the next; errors (database or broker away)
    are logged and retried on the next round, never ending the loop. With ``prune``,
    the pruner runs beside it in a thread (a long prune never holds up the relay).
    """
    pause = eventhub_settings.RELAY_INTERVAL_SECONDS if interval is None else interval
    size = batch_size or eventhub_settings.RELAY_BATCH_SIZE
    stop = stop or threading.Event()
    after = eventhub_settings.RELAY_AFTER_SECONDS if after_seconds is None else after_seconds
    logger.info("Relay started: every %ss, pending for more than %ss.", pause, after)
    # Issue 18: its own thread, at its own pace: held deliveries go out a few at a time.
    releaser = health.start_releaser(stop)
    if prune:
        start_pruner(stop=stop)
    while not stop.is_set():
        sent = _round(after_seconds=after_seconds, batch_size=size)
        if sent < size:
            stop.wait(pause)
    releaser.join(timeout=30)
    logger.info("Relay stopped.")


def _round(*, after_seconds: float | None, batch_size: int) -> int:
    close_old_connections()
    try:
        ordering.prune_idle_keys()  # issue 19: at most every ten minutes
        return relay_once(after_seconds=after_seconds, batch_size=batch_size) + rescue_stale(
            batch_size=batch_size
        )
    except Exception:
        logger.exception("Relay round failed; trying again next round.")
        time.sleep(1)  # don't spin when the failure is immediate
        return 0
