"""The webhook destination: a signed HTTP POST of the envelope to a URL or a Consul service.

``target`` is either a URL (``https://billing.example/hooks/eventhub``) or
``consul://<service>/<path>``, resolved to the service's healthy instances. Requests
to a service are spread over its instances in turn; an instance that just failed is
tried last for a while, so the next attempt goes elsewhere. Connection failures move
on to the next instance within the same attempt, since nothing was delivered.
"""

import itertools
import json
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from eventhub import discovery, tracing
from eventhub.conf import eventhub_settings
from eventhub.destinations.errors import DestinationError, PermanentError
from eventhub.destinations.signing import signed_headers
from eventhub.events import IDENTITY, Transform

BODY_EXCERPT = 500
FAILED_INSTANCE_PENALTY_SECONDS = 30.0

_local = threading.local()
_rotation = itertools.count()
_failed_until: dict[str, float] = {}


@dataclass(frozen=True)
class Reply:
    """A receiver's 2xx answer: its status and the start of its body (shown by the route's test send)."""

    status: int
    excerpt: str


@dataclass(frozen=True)
class Endpoint:
    """One URL to try, and the instance it belongs to (for the failure penalty)."""

    url: str
    instance: str


def send(*, route: Any, envelope: dict[str, Any], delivery: Any, transform: Transform = IDENTITY) -> Reply:
    """POST the envelope (reshaped by ``transform``), signed with the route's secret.

    Returns the receiver's 2xx reply; raises DestinationError for any other answer.
    """
    body = json.dumps(transform.body(envelope), separators=(",", ":"), sort_keys=True).encode()
    # Static headers first: eventhub's own below always win (the transform refuses them anyway).
    headers = {**transform.headers, "content-type": "application/json", "user-agent": "eventhub-webhook/1"}
    headers.update(tracing.outgoing_headers(envelope))
    # The same id on every retry lets receivers de-duplicate (Standard Webhooks).
    headers.update(signed_headers(secret=route.secret, msg_id=f"{envelope['id']}.{route.pk}", body=body))
    endpoints = endpoints_for(route.target)
    last_error: Exception | None = None
    for endpoint in endpoints:
        try:
            response = _session().post(
                endpoint.url, data=body, headers=headers, timeout=eventhub_settings.WEBHOOK_TIMEOUT_SECONDS
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            _penalise(endpoint)
            last_error = exc
            if isinstance(exc, requests.ReadTimeout):
                break  # the request may have arrived: let the retry policy decide, don't fan out
            continue
        if 200 <= response.status_code < 300:
            return Reply(response.status_code, response.text[:BODY_EXCERPT])
        _penalise(endpoint)
        raise DestinationError(
            f"{endpoint.url} answered {response.status_code}: {response.text[:BODY_EXCERPT]}".rstrip()
        )
    raise DestinationError(f"{endpoints[-1].url} unreachable: {last_error}")


def endpoints_for(target: str) -> list[Endpoint]:
    """The URLs to try for ``target``, best first."""
    parts = urlsplit(target)
    if parts.scheme in ("http", "https"):
        return [Endpoint(target, target)]
    if parts.scheme != "consul":
        raise PermanentError(f"Webhook target must be http(s):// or consul://service/path, got {target!r}")
    return _service_endpoints(parts.netloc, parts.path, parts.query)


def _service_endpoints(service: str, path: str, query: str) -> list[Endpoint]:
    client = discovery.default_client()
    if client is None:
        raise PermanentError(f"consul://{service} needs discovery: set CONSUL_HTTP_ADDR.")
    instances = discovery.healthy_instances(client, service)
    if not instances:
        raise DestinationError(f"Consul service {service!r} has no healthy instance.")
    start = next(_rotation) % len(instances)
    ordered = instances[start:] + instances[:start]
    now = time.monotonic()
    ordered.sort(key=lambda i: _failed_until.get(i.id, 0.0) > now)  # stable: penalised ones last
    suffix = path + (f"?{query}" if query else "")
    # base_url brackets IPv6 addresses ("http://[::1]:8080"); pasting the address in would not.
    return [Endpoint(i.base_url(_scheme(i)) + suffix, i.id) for i in ordered]


def _scheme(instance: Any) -> str:
    return (instance.meta or {}).get("scheme", "http")


def _penalise(endpoint: Endpoint) -> None:
    _failed_until[endpoint.instance] = time.monotonic() + FAILED_INSTANCE_PENALTY_SECONDS


def _session() -> requests.Session:
    # One session per worker thread: connections are reused, never shared across threads.
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session
