"""Consul: the client, worker registration and heartbeats, healthy instances, live consumers.

Consul is the truth about consumers (worker processes); the database is the truth
about events and deliveries. Nothing here is on the delivery path except
:func:`healthy_instances`, which ``consul://`` webhooks read through a short cache.
"""

from eventhub.discovery import liveness
from eventhub.discovery.client import (
    ClientSettings,
    DiscoveryError,
    DiscoveryUnavailable,
    RegistrationLost,
    client_from_env,
    default_client,
    make_client,
    parse_addr,
    reset_default_client,
    settings_from_env,
)
from eventhub.discovery.consumers import ConsumerInfo, aggregate_status, list_consumers
from eventhub.discovery.instances import Instance, TTLCache, healthy_instances, invalidate_instances
from eventhub.discovery.liveness import LiveConsumers, Liveness, handler_liveness, live_consumers
from eventhub.discovery.middleware import ConsulRegistration, discovery_enabled
from eventhub.discovery.registration import (
    WORKER_TAG,
    Heartbeat,
    Registration,
    check_id,
    deregister,
    format_duration,
    heartbeat,
    register_worker,
    worker_registration,
    worker_tags,
)

__all__ = [
    "WORKER_TAG",
    "ClientSettings",
    "ConsulRegistration",
    "ConsumerInfo",
    "DiscoveryError",
    "DiscoveryUnavailable",
    "Heartbeat",
    "Instance",
    "LiveConsumers",
    "Liveness",
    "Registration",
    "RegistrationLost",
    "TTLCache",
    "aggregate_status",
    "check_id",
    "client_from_env",
    "default_client",
    "deregister",
    "discovery_enabled",
    "format_duration",
    "handler_liveness",
    "heartbeat",
    "healthy_instances",
    "invalidate_instances",
    "list_consumers",
    "live_consumers",
    "liveness",
    "make_client",
    "parse_addr",
    "register_worker",
    "reset_default_client",
    "settings_from_env",
    "worker_registration",
    "worker_tags",
]
