"""Which queues and handlers have live consumers, as Consul sees eventhub's workers.

Consul is the truth about consumers: a worker counts as live while its TTL check
passes (see eventhub.discovery.registration). The admin's route form and the dashboard read
this; nothing on the delivery path does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from eventhub.conf import eventhub_settings
from eventhub.discovery.client import DiscoveryError, client_from_env
from eventhub.discovery.consumers import ConsumerInfo, list_consumers

# The admin and dashboard ask on every page view: a short timeout keeps a dead agent from
# stalling the page (py-consul's requests would otherwise wait for the default 10 s).
LOOKUP_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class LiveConsumers:
    """The passing workers registered in Consul; ``enabled`` is False when discovery is off."""

    enabled: bool
    workers: tuple[ConsumerInfo, ...] = ()  # the passing ones
    error: str = ""  # why the agent could not be asked, when it could not
    registered: tuple[ConsumerInfo, ...] = ()  # every registered worker, whatever its health

    @classmethod
    def from_consumers(cls, consumers: Iterable[ConsumerInfo]) -> LiveConsumers:
        """Keep every registered worker, and apart the ones whose checks all pass."""
        registered = tuple(consumers)
        return cls(
            enabled=True, workers=tuple(c for c in registered if c.status == "passing"), registered=registered
        )

    @property
    def known(self) -> bool:
        """True when discovery is on and the agent answered."""
        return self.enabled and not self.error

    @property
    def queues(self) -> set[str]:
        return {q for w in self.workers for q in w.queues}

    @property
    def handlers(self) -> list[str]:
        return sorted({h for w in self.workers for h in w.handlers})

    def serving(self, queue: str, handler: str | None = None) -> int:
        """How many passing workers consume ``queue`` (and have ``handler``, when given)."""
        wanted = [w for w in self.workers if queue in w.queues]
        return sum(1 for w in wanted if handler is None or handler in w.handlers)


def live_consumers() -> LiveConsumers:
    """Ask the agent named by CONSUL_HTTP_ADDR which workers pass; an unreachable agent is reported."""
    client = client_from_env(timeout=LOOKUP_TIMEOUT_SECONDS)
    if client is None:
        return LiveConsumers(enabled=False)
    try:
        found = list_consumers(client, eventhub_settings.CONSUL_SERVICE_NAME)
    except DiscoveryError as exc:
        return LiveConsumers(enabled=True, error=str(exc))
    return LiveConsumers.from_consumers(found)


@dataclass(frozen=True)
class Liveness:
    """What the route form says about a route's consumers: a level, a sentence, live handlers."""

    level: str  # "ok", "warning" or "unknown"
    message: str
    live_handlers: tuple[str, ...] = ()


def handler_liveness(*, route: Any = None, live: LiveConsumers | None = None) -> Liveness:
    """Whether ``route``'s queue (and handler, for a handler route) has a live consumer.

    Without a saved route, only the handlers of live workers are listed.
    """
    live = live if live is not None else live_consumers()
    if not live.enabled:
        return Liveness("unknown", "Discovery is off (CONSUL_HTTP_ADDR is not set): consumers are unknown.")
    if live.error:
        return Liveness("unknown", f"Consul could not be asked about live consumers: {live.error}")
    handlers = tuple(live.handlers)
    if route is None or route.pk is None:
        return Liveness("ok", f"{len(live.workers)} healthy worker(s) registered in Consul.", handlers)
    level, message = _route_liveness(route, live)
    return Liveness(level, message, handlers)


def _route_liveness(route: Any, live: LiveConsumers) -> tuple[str, str]:
    queue = route.queue
    if route.destination_kind != "handler":
        count = live.serving(queue)
        if count:
            return "ok", f"{count} healthy worker(s) consume queue {queue!r}."
        return "warning", f"No healthy worker consumes queue {queue!r}: deliveries wait until one does."
    handler = route.target
    count = live.serving(queue, handler)
    if count:
        return "ok", f"{count} healthy worker(s) consume queue {queue!r} with handler {handler!r}."
    if handler in live.handlers:
        return "warning", f"Handler {handler!r} has live workers, but none of them consumes queue {queue!r}."
    if live.serving(queue):
        return "warning", f"No healthy worker consuming queue {queue!r} has handler {handler!r}."
    return "warning", f"No healthy worker has handler {handler!r} or consumes queue {queue!r}."
