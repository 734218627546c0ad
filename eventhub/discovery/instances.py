"""Healthy instances of a service, as Consul's health endpoint reports them, cached for a moment.

``consul://service/path`` webhooks read these on every delivery; a two-second cache
keeps a burst of deliveries from asking the agent each time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import consul

from eventhub.discovery.client import talking_to_consul

CACHE_TTL_SECONDS = 2.0


@dataclass(frozen=True)
class Instance:
    """One healthy instance of a service, as Consul's health endpoint reports it."""

    id: str
    service: str
    address: str
    port: int
    tags: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    node: str = ""

    def base_url(self, scheme: str = "http") -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{scheme}://{host}:{self.port}"


class TTLCache:
    """A small thread-safe cache whose entries expire ``ttl`` seconds after they were stored."""

    def __init__(self, ttl: float = CACHE_TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or self.clock() - entry[0] >= self.ttl:
                self._entries.pop(key, None)
                return None
            return entry[1]

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._entries[key] = (self.clock(), value)

    def invalidate(self, match: Callable[[Hashable], bool] | None = None) -> None:
        """Drop every entry, or those whose key ``match`` accepts."""
        with self._lock:
            for key in [k for k in self._entries if match is None or match(k)]:
                del self._entries[key]


instances_cache = TTLCache()


def invalidate_instances(service_name: str | None = None) -> None:
    """Forget cached :func:`healthy_instances` answers, for one service or for all."""
    if service_name is None:
        instances_cache.invalidate()
    else:
        instances_cache.invalidate(lambda key: isinstance(key, tuple) and key[2] == service_name)


def healthy_instances(
    client: consul.Consul, service_name: str, *, tag: str | None = None, use_cache: bool = True
) -> list[Instance]:
    """Instances of ``service_name`` whose checks all pass, cached for ~2 seconds.

    The cache key is the agent's address, the service and the tag, so webhook
    deliveries in a burst do not each ask Consul. Raises DiscoveryUnavailable.
    """
    key = (client.http.base_uri, client.dc, service_name, tag)
    cached = instances_cache.get(key) if use_cache else None
    if cached is not None:
        return list(cached)
    with talking_to_consul(f"looking up {service_name}"):
        _, entries = client.health.service(service_name, passing=True, tag=tag)
    found = tuple(instance_from_entry(entry) for entry in entries or [])
    instances_cache.put(key, found)
    return list(found)


def instance_from_entry(entry: Mapping[str, Any]) -> Instance:
    svc, node = entry["Service"], entry.get("Node") or {}
    return Instance(
        id=svc["ID"],
        service=svc["Service"],
        # An empty service address means "the node's address", as in Consul's DNS answers.
        address=svc.get("Address") or node.get("Address", ""),
        port=int(svc.get("Port") or 0),
        tags=tuple(svc.get("Tags") or ()),
        meta=dict(svc.get("Meta") or {}),
        node=node.get("Node", ""),
    )
