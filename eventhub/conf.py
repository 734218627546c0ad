"""eventhub's settings: one object, read at access time so override_settings works in tests.

Projects set ``EVENTHUB = {...}`` in their settings; any key left out takes the
default below.
"""

import socket
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    # "" -> the embedded in-process broker and worker threads; "amqp://..." -> RabbitMQ; several
    # amqp:// URLs separated by commas -> the nodes of one RabbitMQ cluster, tried in order.
    "BROKER_URL": "",
    # "classic" (Dramatiq's own, right for one RabbitMQ node) or "quorum" (replicated over a
    # cluster's nodes): the type of the consumer queues and their .DQ and .XQ companions.
    "QUEUE_TYPE": "classic",
    # Quorum queues: a message handed out this many times without an acknowledgement (it kills its
    # worker) is dead-lettered to the .XQ queue rather than redelivered for ever.
    "QUEUE_DELIVERY_LIMIT": 20,
    # The CloudEvents `source` of events emitted by this project when the caller gives none.
    "DEFAULT_SOURCE": "/eventhub",
    # The queue a route uses unless it names its own consumer group.
    "DEFAULT_QUEUE": "eventhub",
    # Worker threads of the embedded broker (the README's run command uses it).
    "EMBEDDED_WORKER_THREADS": 2,
    # How long a process on the embedded broker waits at exit for its deliveries in progress; the
    # rest (and retries waiting out their backoff) are handed back to the outbox relay.
    "EMBEDDED_EXIT_SECONDS": 10.0,
    # emit() hands its committed deliveries to a background thread that sends them and waits for
    # RabbitMQ's confirms (see eventhub/outbox/background.py); False sends them before emit() returns.
    "SEND_IN_BACKGROUND": True,
    # Deliveries of one route emitted together (emit_many, a bulk save's hooks, an ingest batch)
    # travel in one message, at most this many per message; 1 sends one message per delivery.
    "MESSAGE_BATCH_MAX": 100,
    # How long a process waits at exit for deliveries it has not yet sent (the relay sends the rest).
    "SEND_FLUSH_SECONDS": 10.0,
    # A delivery still pending (never confirmed by the broker) this long after it was
    # written is sent again by the outbox relay.
    "RELAY_AFTER_SECONDS": 30,
    "RELAY_INTERVAL_SECONDS": 10,
    "RELAY_BATCH_SIZE": 500,
    # A delivery still "running" this long beyond its route's time limit lost its worker and
    # its message; the relay sends it again.
    "RELAY_STALE_RUNNING_SECONDS": 600,
    # The name this host goes by in Consul service ids and on deliveries' "worker" (empty: the
    # machine's host name). Set it where host names are not unique, e.g. containers.
    "HOSTNAME": "",
    # Consul registration of workers (CONSUL_HTTP_ADDR switches discovery on).
    "CONSUL_SERVICE_NAME": "eventhub-consumer",
    "CONSUL_CHECK_TTL_SECONDS": 15,
    "CONSUL_DEREGISTER_AFTER": "1m",
    # HTTP destinations: one deadline for a whole attempt (resolve, connect, send, answer); the most
    # of an answer that is read; networks webhooks may reach although they are not public (CIDRs,
    # e.g. ["10.20.0.0/16"] for consul:// services on a private network; empty: public addresses only).
    "WEBHOOK_TIMEOUT_SECONDS": 10.0,
    "WEBHOOK_MAX_RESPONSE_BYTES": 4096,
    "WEBHOOK_ALLOWED_NETWORKS": [],
    # Keys that encrypt webhook secrets at rest, newest first (any strings; empty: SECRET_KEY and
    # SECRET_KEY_FALLBACKS), and how long a rotated-out secret keeps signing by default.
    "SECRETS_KEYS": [],
    "WEBHOOK_SECRET_OVERLAP_SECONDS": 24 * 3600,
    # Event type schemas: the longest string (or property name) a pattern is matched against.
    "SCHEMA_MAX_MATCH_LENGTH": 10_000,
    # Ingest API: largest accepted request body.
    "INGEST_MAX_BYTES": 1024 * 1024,
    # Ingest API: the Retry-After of a 503 answered while the database is unreachable.
    "INGEST_RETRY_AFTER_SECONDS": 5,
    # Event types and routes: how long a process uses its copy before reading them again (edits
    # made in the same process take effect at once).
    "ROUTES_REFRESH_SECONDS": 1.0,
    # Signal hooks: models they may not watch besides auth, sessions, admin and contenttypes
    # ("app_label" or "app_label.Model"), and field names never sent besides the secret-like ones.
    "HOOKS_REFUSED_MODELS": [],
    "HOOKS_SECRET_FIELDS": [],
    # Signal hooks: how often a process asks the database whether hooks were edited.
    "HOOKS_REFRESH_SECONDS": 3.0,
    # /metrics: the window its database figures cover; a bearer token a scraper sends, or networks
    # (CIDRs) it may scrape from. With neither, /metrics answers only with DEBUG on.
    "METRICS_WINDOW_SECONDS": 300,
    "METRICS_TOKEN": "",
    "METRICS_ALLOWED_NETWORKS": [],
    # OpenTelemetry spans for emit, publish, deliver and attempts when opentelemetry-api is installed;
    # False never imports it. The W3C trace context travels with events either way.
    "TRACING_SPANS": True,
    # The route admin's "which recent events would match": how many events it reads at most.
    "TRY_RECENT_EVENTS_MAX": 1000,
    # Issue 18, docs/route-limits.md. In each worker process a slow route (attempts of this many seconds
    # or more on average, or hanging) runs on at most this share of the threads (at least one).
    "ROUTE_THREAD_SHARE": 0.5,
    "SLOW_ROUTE_SECONDS": 1.0,
    # ...and a route whose attempts nearly all fail starts at most this many a second in each process.
    "FAILING_ROUTE_STARTS_PER_SECOND": 5.0,
    # A delivery over its route's limits (or share) goes back to the queue for this long at least and
    # at most (its place in the route's line decides; a rate limit's reserved start is kept exactly).
    "LIMIT_RETRY_MIN_SECONDS": 0.05,
    "LIMIT_RETRY_MAX_SECONDS": 30.0,
    # A concurrency lease a killed worker never gave back expires this long after the route's time limit.
    "LIMIT_LEASE_GRACE_SECONDS": 10.0,
    # Ordering keys with nothing unfinished and no new event for this long are forgotten (upkeep).
    "ORDERING_KEY_IDLE_SECONDS": 86_400,
    # Endpoint health (docs/endpoint-health.md): how often a worker process re-reads the routes'
    # circuit and pause states; the longest a 429/503 Retry-After may delay a retry (a receiver
    # can't park a delivery for a year); how often the upkeep's releaser looks for held deliveries
    # to send again while there are some, and at most how many it sends per route and round.
    "HEALTH_REFRESH_SECONDS": 1.0,
    "RETRY_AFTER_MAX_SECONDS": 3600.0,
    "RELEASE_TICK_SECONDS": 0.1,
    "RELEASE_BATCH_SIZE": 200,
    # Retention (docs/retention.md): days finished work is kept, counted from when it finished.
    # Succeeded and dead deliveries with their attempts (event types may override both in the
    # admin); an event goes with its last delivery. Never shorter than a day (the dashboard
    # recomputes the last day's figures from the rows) nor than a route's longest retry window.
    "RETENTION_SUCCEEDED_DAYS": 14,
    "RETENTION_DEAD_DAYS": 90,
    # Hook failures and test deliveries (admin records of what went wrong or was tried).
    "RETENTION_HOOK_FAILURES_DAYS": 30,
    "RETENTION_TRIALS_DAYS": 30,
    # The dashboard's hourly rollups (its long-range figures), kept long after the rows they count.
    "RETENTION_ROLLUP_DAYS": 400,
    # How often the worker's upkeep prunes (one pruner at a time over all hosts); 0: never, run
    # manage.py eventhub_prune from cron instead. Rows deleted per short transaction.
    "PRUNE_INTERVAL_SECONDS": 300,
    "PRUNE_BATCH_SIZE": 5_000,
}


class EventhubSettings:
    """Attribute access to ``settings.EVENTHUB`` with defaults."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"unknown eventhub setting {name!r}")
        user = getattr(django_settings, "EVENTHUB", None) or {}
        return user.get(name, DEFAULTS[name])


eventhub_settings = EventhubSettings()


def host_name() -> str:
    """This host's name for Consul ids and delivery records: HOSTNAME, else the machine's."""
    return eventhub_settings.HOSTNAME or socket.gethostname()


def check_settings() -> None:
    """Refuse bad settings at start (called from the app's ``ready``), with the setting's name."""
    batch = eventhub_settings.MESSAGE_BATCH_MAX
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 10_000:
        raise ImproperlyConfigured(
            f"EVENTHUB['MESSAGE_BATCH_MAX'] must be a whole number from 1 to 10000, got {batch!r}."
        )
