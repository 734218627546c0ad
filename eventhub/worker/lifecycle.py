"""What a worker process needs before it consumes: its queues and lifecycle middleware."""

import logging
import os

from django.db import connection
from dramatiq.middleware import Middleware

from eventhub import broker, discovery, health
from eventhub.conf import eventhub_settings
from eventhub.db import sqlbatch
from eventhub.destinations import handler_names
from eventhub.models import Route
from eventhub.outbox import route_table
from eventhub.worker import share, writes
from eventhub.worker.actor import RejectMalformed

logger = logging.getLogger(__name__)

QUEUES_ENV = "EVENTHUB_WORKER_QUEUES"
PROMETHEUS_ENV = "EVENTHUB_WORKER_PROMETHEUS"


def queues_to_consume(named: list[str] | None = None) -> list[str]:
    """The queues named (on the command line), or every queue an enabled route uses."""
    named = named or [q for q in os.environ.get(QUEUES_ENV, "").split(",") if q]
    if named:
        return named
    queues = set(Route.objects.filter(enabled=True).values_list("queue", flat=True))
    queues.add(eventhub_settings.DEFAULT_QUEUE)
    return sorted(queues)


def prepare() -> None:
    """Declare this worker's queues and install the worker lifecycle middleware."""
    share.check_settings()  # issue 18: refuse a bad thread share or limit setting before consuming
    queues = queues_to_consume()
    broker.declare_queues(queues)
    for middleware in lifecycle_middleware():
        broker.get_broker().add_middleware(middleware)
    logger.info("eventhub worker consuming %s", ", ".join(queues))


def check_queues(named: list[str] | None = None) -> None:
    """Declare the worker's queues on RabbitMQ before any worker starts.

    A queue RabbitMQ holds with another type than QUEUE_TYPE raises QueueTypeMismatch
    here, once, rather than in every consumer thread of every process. RabbitMQ not
    answering is no reason to refuse: the workers wait for it as they always did.
    """
    try:
        broker.declare_queues(queues_to_consume(named), ensure=True)
    except broker.QueueTypeMismatch:
        raise
    except Exception as exc:  # noqa: BLE001 - the workers connect (and retry) on their own
        logger.warning("eventhub worker: could not declare the queues before starting: %s", exc)


def lifecycle_middleware() -> list:
    """Middleware that runs with the worker's lifecycle (registration, metrics)."""
    # Bad messages are dead-lettered before they reach an actor (the relay runs as a fork process).
    middleware = [RejectMalformed(), FreshRouteCopy(), ReadyConnections()]
    if discovery.discovery_enabled():  # CONSUL_HTTP_ADDR set: register, heartbeat, deregister
        middleware.append(discovery.ConsulRegistration(handlers=handler_names))
    if os.environ.get(PROMETHEUS_ENV):
        # Dramatiq's own metrics: per-process files in $dramatiq_prom_db, served by its exposition
        # server ($dramatiq_prom_port, 9191) and by the web process's /metrics on the same host.
        # Imported only with --prometheus: it sets up prometheus_client's multiprocess directory.
        from dramatiq.middleware.prometheus import Prometheus

        middleware.append(Prometheus())
    return middleware


class FreshRouteCopy(Middleware):
    """Each worker process reloads its route copy in a background thread, never in a delivery's.

    Reloaded by a worker thread, it would stall that thread's combined write and so
    every thread of the process waiting on it, once per ROUTES_REFRESH_SECONDS.
    """

    def after_worker_boot(self, broker, worker):
        route_table.refresh_in_background()
        health.states.refresh_in_background()  # issue 18: the routes' circuit and pause states

    def before_worker_shutdown(self, broker, worker):
        route_table.stop_refreshing_in_background()
        health.states.stop_refreshing_in_background()


class ReadyConnections(Middleware):
    """Each worker thread connects to the database and prepares its hot statement as it starts.

    Otherwise every thread does it on its first delivery, all at once when a worker
    starts under traffic (eventhub.worker.writes.prepare_connection). A failure here
    (the database is down) only logs: the first delivery connects again, as before.
    """

    def after_worker_thread_boot(self, broker, thread):
        if not sqlbatch.supported():
            return
        try:
            writes.prepare_connection()
        except Exception as exc:  # noqa: BLE001 - a worker thread must start whatever the database does
            logger.warning("eventhub worker thread could not prepare its database connection: %s", exc)
            connection.close()
