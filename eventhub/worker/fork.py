"""The upkeep process that Dramatiq forks beside ``eventhub_worker``'s worker processes.

Dramatiq forks it (``--fork-function eventhub.worker.fork:upkeep``) from its main
process, which has not set Django up, so this module does that before importing
anything that uses the models. SIGTERM (sent by Dramatiq when the worker stops)
ends the loop after its current round.
"""

import os
import signal
import threading

import django

UPKEEP_FORK = "eventhub.worker.fork:upkeep"


def upkeep() -> int:
    """Set Django up and run the upkeep loop until SIGTERM; returns the exit status."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from eventhub.worker.upkeep import run_upkeep  # uses the models: only after django.setup()

    stop = threading.Event()
    # Replaces Dramatiq's handler, which exits at once (possibly mid-send): finish the round instead.
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    run_upkeep(stop=stop, prune=True)
    return 0
