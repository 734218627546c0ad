"""eventhub's workers as Consul lists them: who, where, what they consume, and their health.

Consumers here are worker processes registered by eventhub.discovery.registration
(not the Python handlers of eventhub.destinations.registry).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import consul

from eventhub.discovery.client import talking_to_consul
from eventhub.discovery.instances import instance_from_entry
from eventhub.discovery.registration import ALIVE_PREFIX, HANDLER_TAG_PREFIX, QUEUE_TAG_PREFIX, check_id

_ALIVE_AT = re.compile(re.escape(ALIVE_PREFIX) + r"(\S+)")
_STATUS_RANK = {"passing": 0, "warning": 1, "critical": 2, "maintenance": 3}


@dataclass(frozen=True)
class ConsumerInfo:
    """A worker as the dashboard shows it: who, where, what it consumes, and its health."""

    id: str
    service: str
    node: str
    host: str
    pid: int | None
    queues: tuple[str, ...]
    handlers: tuple[str, ...]
    status: str  # passing, warning, critical (or maintenance)
    output: str  # the TTL check's output, as the catalog last recorded it
    last_heartbeat: datetime | None
    address: str = ""
    port: int = 0
    tags: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)


def list_consumers(client: consul.Consul, service_name: str) -> list[ConsumerInfo]:
    """Every registered worker of ``service_name``, healthy or not, sorted by host then id.

    ``last_heartbeat`` comes from the check output: Consul writes a status change to
    the catalog at once but an output-only change only after ``check_update_interval``
    (5 minutes by default), so for a passing worker it may lag by that much.
    Raises DiscoveryUnavailable.
    """
    with talking_to_consul(f"listing {service_name}"):
        _, entries = client.health.service(service_name)
    consumers = [_consumer(entry) for entry in entries or []]
    return sorted(consumers, key=lambda c: (c.host, c.id))


def _consumer(entry: Mapping[str, Any]) -> ConsumerInfo:
    instance = instance_from_entry(entry)
    checks = entry.get("Checks") or []
    own = next((c for c in checks if c.get("CheckID") == check_id(instance.id)), None)
    output = (own or {}).get("Output", "")
    meta = instance.meta
    return ConsumerInfo(
        id=instance.id,
        service=instance.service,
        node=instance.node,
        host=meta.get("host") or instance.node,
        pid=int(meta["pid"]) if str(meta.get("pid", "")).isdigit() else None,
        queues=_named(instance.tags, QUEUE_TAG_PREFIX, meta.get("queues")),
        handlers=_named(instance.tags, HANDLER_TAG_PREFIX, meta.get("handlers")),
        status=aggregate_status(checks),
        output=output,
        last_heartbeat=_heartbeat_time(output),
        address=instance.address,
        port=instance.port,
        tags=instance.tags,
        meta=meta,
    )


def aggregate_status(checks: Iterable[Mapping[str, Any]]) -> str:
    """The worst status among checks, as Consul aggregates them (node checks included)."""
    worst = "passing"
    for check in checks:
        cid = str(check.get("CheckID", ""))
        status = "maintenance" if cid.startswith(("_node_maintenance", "_service_maintenance:")) else None
        status = status or str(check.get("Status", "critical"))
        if _STATUS_RANK.get(status, 2) > _STATUS_RANK[worst]:
            worst = status if status in _STATUS_RANK else "critical"
    return worst


def _named(tags: Iterable[str], prefix: str, fallback: str | None) -> tuple[str, ...]:
    # Tags are the convention (no length limit); comma-separated meta is accepted too.
    found = [t[len(prefix) :] for t in tags if t.startswith(prefix)]
    if not found and fallback:
        found = [part.strip() for part in fallback.split(",") if part.strip()]
    return tuple(found)


def _heartbeat_time(output: str) -> datetime | None:
    # Also finds it in "TTL expired (last output before timeout follows): eventhub worker alive at ..."
    match = _ALIVE_AT.search(output or "")
    if match is None:
        return None
    try:
        return datetime.fromisoformat(match.group(1))
    except ValueError:
        return None
