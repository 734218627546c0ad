"""App config: set up the Dramatiq broker, load handler modules, connect signal receivers."""

import atexit

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class EventhubConfig(AppConfig):
    name = "eventhub"
    verbose_name = "eventhub"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, as Django requires: these modules use the models, which load after this one.
        from eventhub import broker, hooks, retention, worker
        from eventhub.conf import check_settings
        from eventhub.outbox import route_table

        # Settings that make no sense stop every process at start, with the reason.
        check_settings()
        retention.check_settings()

        # The broker must exist before any actor is declared; building it opens no connection.
        broker.setup()
        import eventhub.worker.actor  # noqa: F401 - declares the delivery actor on that broker

        # Handlers live in each app's `consumers` module, as admin classes live in `admin`.
        autodiscover_modules("consumers")

        # Signal hooks: admin and code hooks share these receivers (see eventhub/hooks/receivers.py).
        hooks.connect_receivers()

        # emit() and the worker read event types and routes from a per-process copy.
        route_table.connect_invalidation()

        # A process that ran the embedded worker finishes its deliveries at exit, or hands them back.
        atexit.register(worker.finish_embedded_work)
