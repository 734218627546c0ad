"""manage.py eventhub_relay: send deliveries the broker never confirmed (the outbox relay)."""

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from eventhub import broker
from eventhub.conf import eventhub_settings
from eventhub.outbox import relay
from eventhub.worker import rescue_stale, run_upkeep


class Command(BaseCommand):
    help = (
        "Send deliveries still pending (never confirmed by the broker) after the grace period, and "
        "deliveries stuck running long past their time limit. Runs until SIGTERM/Ctrl-C, or once with "
        "--once. eventhub_worker already runs a relay; this command is for running it on its own."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Relay what is due now, then exit.")
        parser.add_argument(
            "--after",
            type=float,
            default=None,
            metavar="SECONDS",
            help="Grace period: send deliveries pending longer than this "
            f"(default: EVENTHUB RELAY_AFTER_SECONDS = {eventhub_settings.RELAY_AFTER_SECONDS}).",
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            metavar="SECONDS",
            help="Pause between rounds "
            f"(default: EVENTHUB RELAY_INTERVAL_SECONDS = {eventhub_settings.RELAY_INTERVAL_SECONDS}).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="Deliveries per batch "
            f"(default: EVENTHUB RELAY_BATCH_SIZE = {eventhub_settings.RELAY_BATCH_SIZE}).",
        )

    def handle(self, *args, once, after, interval, batch_size, **options):
        if (after is not None and after < 0) or (batch_size is not None and batch_size < 1):
            raise CommandError("--after must be >= 0 and --batch-size >= 1.")
        if once:
            self._once(after=after, batch_size=batch_size)
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        run_upkeep(interval=interval, after_seconds=after, batch_size=batch_size, stop=stop)

    def _once(self, *, after, batch_size) -> None:
        total = 0
        while True:
            sent = relay.relay_once(after_seconds=after, batch_size=batch_size)
            total += sent
            if sent < (batch_size or eventhub_settings.RELAY_BATCH_SIZE):
                break
        stale = rescue_stale(batch_size=batch_size)
        self.stdout.write(f"relayed {total} pending deliveries; re-sent {stale} stuck running")
        broker.drain_embedded()
