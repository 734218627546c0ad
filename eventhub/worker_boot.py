"""The module every Dramatiq worker process of ``manage.py eventhub_worker`` imports.

It sets Django up (which builds the broker and declares the delivery actor) and
declares the queues this worker consumes.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from eventhub import worker_setup  # noqa: E402  (needs Django set up)

worker_setup.prepare()
