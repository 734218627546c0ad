"""Checks of a route's target when an operator saves it (Route.clean), one per destination kind.

Nothing here touches the network: a host name's addresses are checked when a webhook
connects (eventhub.destinations.addresses), because DNS may answer differently later and
resolving here could hang the admin. What can be refused without it is refused here.
"""

import re
from urllib.parse import urlsplit

from eventhub.destinations.addresses import BlockedAddress, check_host

# RabbitMQ's own rules for exchange names, less the default exchange (which routes by queue
# name, so a route could write into eventhub's own queues) and the broker's internal ones.
EXCHANGE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,255}$")
RESERVED_EXCHANGES = ("amq.default",)
RESERVED_EXCHANGE_PREFIXES = ("amq.rabbitmq.",)
SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class InvalidTarget(ValueError):
    """A route's target that eventhub may not or cannot deliver to; the message says why."""


def check_target(kind: str, target: str) -> None:
    """Raise InvalidTarget when ``target`` is not a valid destination of ``kind``."""
    target = (target or "").strip()
    if not target:
        raise InvalidTarget("Name the destination.")
    if kind == "webhook":
        _check_webhook(target)
    elif kind == "amqp":
        _check_exchange(target)


def _check_webhook(target: str) -> None:
    parts = urlsplit(target)
    if parts.scheme == "consul":
        if not SERVICE_NAME.match(parts.netloc):
            raise InvalidTarget(f"consul://<service>/<path>: {parts.netloc!r} is not a Consul service name.")
        return
    if parts.scheme not in ("http", "https"):
        raise InvalidTarget("A webhook target is an http(s):// URL or consul://service/path.")
    try:
        host, _port = parts.hostname, parts.port
    except ValueError as exc:
        raise InvalidTarget(f"The URL's port is not valid: {exc}.") from None
    if not host:
        raise InvalidTarget("The URL names no host.")
    if parts.username or parts.password:
        raise InvalidTarget("Put no credentials in the URL: it is shown to everyone who may view routes.")
    if parts.fragment:
        raise InvalidTarget("A webhook URL has no #fragment (it is never sent).")
    try:
        check_host(host)
    except BlockedAddress as exc:
        raise InvalidTarget(str(exc)) from None


def _check_exchange(target: str) -> None:
    exchange, _, routing_key = target.partition("/")
    if not EXCHANGE_NAME.match(exchange):
        raise InvalidTarget(
            "An AMQP target is an exchange name (letters, digits, '-', '_', '.', ':'), optionally "
            "followed by /routing.key, e.g. orders or orders/billing.all."
        )
    if exchange in RESERVED_EXCHANGES or exchange.startswith(RESERVED_EXCHANGE_PREFIXES):
        raise InvalidTarget(f"The exchange {exchange!r} is RabbitMQ's own; name an exchange of yours.")
    if len(routing_key.encode()) > 255 or any(ord(c) < 32 for c in routing_key):
        raise InvalidTarget("The routing key is at most 255 bytes of printable characters.")
