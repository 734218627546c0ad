"""App config: set up the Dramatiq broker and load consumer modules."""

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class EventhubConfig(AppConfig):
    name = "eventhub"
    verbose_name = "eventhub"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The broker must exist before any actor is declared; building it opens no connection.
        from eventhub import broker

        broker.setup()
        import eventhub.actors  # noqa: F401  (declares the delivery actor on that broker)

        # Handlers live in each app's `consumers` module, as admin classes live in `admin`.
        autodiscover_modules("consumers")

        # Signal hooks: admin and code hooks share these receivers (see eventhub/hooks.py).
        from eventhub import hooks

        hooks.connect_receivers()

        # emit() and the worker read event types and routes from a per-process copy.
        from eventhub import route_table

        route_table.connect_invalidation()
