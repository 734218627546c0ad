"""Worker registration in Consul, run by Dramatiq's worker lifecycle (never AppConfig.ready()).

Each Dramatiq worker process of ``manage.py eventhub_worker`` registers itself once
its consumers are running (``after_worker_boot``) and deregisters as soon as it is
asked to stop (``before_worker_shutdown``), before its in-flight deliveries finish,
so nothing new is routed to a worker on its way out. In between,
:class:`eventhub.discovery.registration.Heartbeat` keeps the TTL check passing from a daemon
thread and registers the worker again when the agent forgot it.

Consul is never on the delivery path: an agent that cannot be reached is logged and
retried with backoff while the worker goes on consuming.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from importlib import metadata
from typing import Any

from dramatiq import Middleware
from dramatiq.common import q_name

from eventhub.discovery.client import client_from_env, settings_from_env
from eventhub.discovery.registration import Heartbeat, Registration, worker_registration

logger = logging.getLogger(__name__)

# Seconds a request to the agent may take; a stop waits for at most one of them.
AGENT_TIMEOUT_SECONDS = 5.0


def discovery_enabled() -> bool:
    """True when CONSUL_HTTP_ADDR is set; a malformed address raises ValueError (fail at start)."""
    return settings_from_env() is not None


def eventhub_version() -> str:
    """The installed eventhub distribution's version, or "unknown" when run from a bare checkout."""
    try:
        return metadata.version("eventhub")
    except metadata.PackageNotFoundError:
        return "unknown"


def consumed_queues(worker: Any) -> list[str]:
    """The queues a booted Dramatiq worker consumes, without the delay-queue companions."""
    names = {q_name(name) for name in getattr(worker, "consumers", {})}
    return sorted(names or (getattr(worker, "consumer_whitelist", None) or ()))


def build_registration(*, queues: list[str], handlers: list[str], threads: int | None = None) -> Registration:
    """This process's registration: queues and handlers as tags; host, pid, version as meta."""
    registration = worker_registration(queues=queues, handlers=handlers)
    meta = {**registration.meta, "version": eventhub_version()}
    if threads is not None:
        meta["threads"] = str(threads)
    return replace(registration, meta=meta)


def start_heartbeat(registration: Registration) -> Heartbeat | None:
    """Start keeping ``registration`` alive in the agent named by CONSUL_HTTP_ADDR; None when off."""
    client = client_from_env(timeout=AGENT_TIMEOUT_SECONDS)
    if client is None:
        return None
    # Never back off for longer than one TTL: after an outage the worker is passing again
    # within about a TTL, and a worker's retries stay as cheap as its heartbeats.
    max_backoff = max(1.0, min(30.0, registration.ttl_seconds))
    heartbeat = Heartbeat(client, registration, max_backoff=max_backoff)
    return heartbeat.start()


class ConsulRegistration(Middleware):
    """Registers the worker process in Consul while it runs, with a heartbeat; deregisters on stop."""

    def __init__(self, *, handlers: Callable[[], list[str]] = list) -> None:
        # Called at boot, once every app's handlers are registered: the names to advertise.
        self.handlers = handlers
        self.heartbeat: Heartbeat | None = None

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        try:
            registration = build_registration(
                queues=consumed_queues(worker),
                handlers=self.handlers(),
                threads=getattr(worker, "worker_threads", None),
            )
            self.heartbeat = start_heartbeat(registration)
        except Exception:  # a discovery problem must never keep the worker from consuming
            logger.exception("Could not start the Consul registration of this worker; consuming anyway")
            return
        if self.heartbeat is not None:
            logger.info(
                "Registering in Consul as %s (service %s, tags %s)",
                registration.service_id,
                registration.service_name,
                ", ".join(registration.tags),
            )

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        heartbeat, self.heartbeat = self.heartbeat, None
        if heartbeat is not None:
            heartbeat.stop(timeout=AGENT_TIMEOUT_SECONDS)
            logger.info("Stopped the Consul registration of %s", heartbeat.service_id)
