"""The pruner on a timer, in a thread of the worker's upkeep process (eventhub/worker/upkeep.py).

Every host's upkeep runs one; the advisory lock lets one of them prune at a time, and a
run is started only when no run on any host finished within the interval.
"""

import logging
import threading
from datetime import timedelta

from django.db import close_old_connections
from django.utils import timezone

from eventhub.conf import eventhub_settings
from eventhub.models import PruneRun
from eventhub.retention.prune import prune

logger = logging.getLogger(__name__)


def due(*, interval: float) -> bool:
    """True when no prune run, on any host, finished within the last ``interval`` seconds."""
    recent = timezone.now() - timedelta(seconds=interval)
    return not PruneRun.objects.filter(finished_at__gte=recent).exists()


def run_pruner(*, stop: threading.Event, interval: float | None = None) -> None:
    """Prune whenever due until ``stop`` is set; errors are logged and retried next interval."""
    pause = eventhub_settings.PRUNE_INTERVAL_SECONDS if interval is None else interval
    if not pause:
        logger.info("Pruner off (PRUNE_INTERVAL_SECONDS is 0): run manage.py eventhub_prune instead.")
        return
    logger.info("Pruner started: every %ss.", pause)
    while not stop.is_set():
        close_old_connections()
        try:
            if due(interval=pause):
                prune(stop=stop)
        except Exception:
            logger.exception("Prune failed; trying again in %ss.", pause)
        finally:
            close_old_connections()
        stop.wait(min(pause, 60.0))


def start_pruner(*, stop: threading.Event, interval: float | None = None) -> threading.Thread:
    """Run :func:`run_pruner` in a daemon thread; it ends when ``stop`` is set."""
    thread = threading.Thread(
        target=run_pruner, kwargs={"stop": stop, "interval": interval}, name="eventhub-pruner", daemon=True
    )
    thread.start()
    return thread
