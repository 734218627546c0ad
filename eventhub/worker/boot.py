"""The module every Dramatiq worker process of ``manage.py eventhub_worker`` imports.

It sets Django up (which builds the broker and declares the delivery actor) and
declares the queues this worker consumes. Importing it has these effects on
purpose: Dramatiq's worker processes take a module path, not a function.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from eventhub.worker import lifecycle  # noqa: E402 - needs Django set up

lifecycle.prepare()
