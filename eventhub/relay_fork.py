"""The outbox relay as a process beside ``eventhub_worker``'s Dramatiq workers.

Dramatiq forks it (``--fork-function eventhub.relay_fork:main``) from its main
process, which has not set Django up, so this module does that first. SIGTERM
(sent by Dramatiq when the worker stops) ends the relay after its current round.
"""

import os
import signal
import threading

RELAY_FORK = "eventhub.relay_fork:main"


def main() -> int:
    """Set Django up and relay until SIGTERM; returns the exit status."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from eventhub import relay

    stop = threading.Event()
    # Replaces Dramatiq's handler, which exits at once (possibly mid-send): finish the round instead.
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    relay.run(stop=stop)
    return 0
