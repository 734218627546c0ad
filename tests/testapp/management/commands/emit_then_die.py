"""manage.py emit_then_die TYPE --count N: emit N events, then die between commit and send.

An on_commit hook registered before eventhub's SIGKILLs this process, so the
transaction is committed (events and pending deliveries stored) but no message
is ever sent: the situation the outbox relay exists for.
"""

import os
import signal

from django.core.management.base import BaseCommand
from django.db import transaction

from eventhub import emit


class Command(BaseCommand):
    help = "Emit --count events of TYPE in one transaction and get SIGKILLed after commit, before sending."

    def add_arguments(self, parser):
        parser.add_argument("type")
        parser.add_argument("--count", type=int, default=1)

    def handle(self, *args, type, count, **options):
        with transaction.atomic():
            transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
            for n in range(count):
                emit(type, data={"n": n})
