"""WSGI entry point."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# Reload eventhub's copy of event types and routes in a background thread, not in requests that emit.
from eventhub.outbox import route_table  # noqa: E402 - needs Django set up

route_table.refresh_in_background()
