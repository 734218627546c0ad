"""The webhook destination: a signed HTTP POST of the envelope to a URL or a Consul service.

``target`` is either a URL (``https://billing.example/hooks/eventhub``) or
``consul://<service>/<path>``, resolved to the service's healthy instances. Requests
to a service are spread over its instances in turn; an instance that just failed is
tried last for a while, so the next attempt goes elsewhere. Connection failures move
on to the next instance within the same attempt, since nothing was delivered.

The HTTP exchange itself is :mod:`eventhub.destinations.safe_http`: no redirects, internal
addresses refused after DNS resolution, capped reads and one deadline per attempt.
"""

import itertools
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from eventhub import discovery, tracing
from eventhub.conf import eventhub_settings
from eventhub.destinations import safe_http
from eventhub.destinations.addresses import BlockedAddress
from eventhub.destinations.errors import DestinationError, HttpStatusError, PermanentError
from eventhub.destinations.secrets import signing_secrets
from eventhub.destinations.signing import signed_headers
from eventhub.destinations.watchdog import Deadline
from eventhub.events import IDENTITY, Transform

BODY_EXCERPT = 500
FAILED_INSTANCE_PENALTY_SECONDS = 30.0

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


# The most an attempt's deadline stays under the route's time limit (see attempt_seconds).
TIME_LIMIT_MARGIN_SECONDS = 1.0


def send(*, route: Any, envelope: dict[str, Any], delivery: Any, transform: Transform = IDENTITY) -> Reply:
    """POST the envelope (reshaped by ``transform``), signed with the route's secrets.

    Returns the receiver's 2xx reply; raises DestinationError for any other answer.
    """
    body = json.dumps(transform.body(envelope), separators=(",", ":"), sort_keys=True).encode()
    # Static headers first: eventhub's own below always win (the transform refuses them anyway).
    headers = {**transform.headers, "content-type": "application/json", "user-agent": "eventhub-webhook/1"}
    headers.update(tracing.outgoing_headers(envelope))
    # One id per delivery, the same on each of its retries, so receivers can de-duplicate
    # (Standard Webhooks); the event's own id alone would collide across sources.
    secrets_in_use = signing_secrets(route)
    headers.update(signed_headers(secrets=secrets_in_use, msg_id=webhook_id(delivery), body=body))
    deadline = Deadline.after(attempt_seconds(route))
    endpoints = endpoints_for(route.target)
    last_error: Exception | None = None
    for endpoint in endpoints:
        try:
            answer = safe_http.post(endpoint.url, body=body, headers=headers, deadline=deadline)
        except BlockedAddress as exc:
            last_error = exc  # another instance of the service may be reachable
            continue
        except safe_http.Unreachable as exc:
            _penalise(endpoint)
            last_error = exc
            continue
        except DestinationError as exc:
            _penalise(endpoint)  # the request may have arrived: let the retry policy decide, don't fan out
            raise DestinationError(f"{endpoint.url}: {exc}") from None
        if 200 <= answer.status < 300:
            return Reply(answer.status, answer.body[:BODY_EXCERPT].decode("utf-8", errors="replace"))
        _penalise(endpoint)
        raise status_error(endpoint.url, answer)
    if isinstance(last_error, BlockedAddress):
        raise BlockedAddress(f"{endpoints[-1].url} refused: {last_error}")
    raise DestinationError(f"{endpoints[-1].url} unreachable: {last_error}")


def webhook_id(delivery: Any) -> str:
    """The ``webhook-id`` of a delivery: unique to it, the same on each of its attempts."""
    return f"{delivery.event_id}.{delivery.pk}"


def attempt_seconds(route: Any) -> float:
    """The whole attempt's deadline: WEBHOOK_TIMEOUT_SECONDS, or just under the route's time limit.

    Just under (a tenth, at most a second): an endpoint that hangs then ends the attempt
    itself, with time to record the outcome before Dramatiq's time limit (checked about
    once a second) interrupts the thread, perhaps inside the combined write other threads
    wait on (issue 18: a hanging route must not disturb the others).
    """
    limit = route.time_limit_ms / 1000
    return min(eventhub_settings.WEBHOOK_TIMEOUT_SECONDS, limit - min(TIME_LIMIT_MARGIN_SECONDS, limit / 10))


def status_error(url: str, answer: safe_http.Answer) -> HttpStatusError:
    """The failure for a non-2xx answer, with its status, Retry-After and the start of its body."""
    excerpt = answer.body[:BODY_EXCERPT].decode("utf-8", errors="replace")
    redirect = " (redirects are not followed: target the final URL)" if 300 <= answer.status < 400 else ""
    return HttpStatusError(
        f"{url} answered {answer.status}{redirect}: {excerpt}".rstrip(),
        status=answer.status,
        retry_after=answer.headers.get("Retry-After"),
    )


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
