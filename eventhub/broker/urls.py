"""BROKER_URL: one amqp:// URL, or the nodes of one RabbitMQ cluster separated by commas.

Every node of a cluster serves the same vhosts and users, so a list whose URLs
name different vhosts, users or schemes is a mistake (half the processes would
publish where the other half never consume): it is refused before anything
connects.
"""

import re
from urllib.parse import unquote, urlsplit

import pika
from django.core.exceptions import ImproperlyConfigured

# Commas separate the nodes; spaces and newlines around them are ignored, so a long list may be
# written over several lines. A comma inside a password must be percent-encoded (%2C).
_SEPARATOR = re.compile(r"\s*,\s*|\s+")


def split_broker_urls(value: str) -> list[str]:
    """The URLs listed in a BROKER_URL value, in order; [] for the embedded broker ("" or stub://)."""
    value = value.strip()
    if not value or value.startswith("stub:"):
        return []
    return [url for url in _SEPARATOR.split(value) if url]


def broker_parameters(value: str) -> list[pika.URLParameters]:
    """pika parameters for each node of BROKER_URL, in the order they are tried.

    Raises ImproperlyConfigured, naming the offending URLs, for a URL that is not
    amqp(s):// or a list that mixes schemes, vhosts or users.
    """
    urls = split_broker_urls(value)
    for url in urls:
        if not url.startswith(("amqp://", "amqps://")):
            raise ImproperlyConfigured(
                f"BROKER_URL must be empty (embedded broker) or amqp:// URLs separated by commas; "
                f"got {_redacted(url)!r}."
            )
    if len(urls) > 1:
        _refuse_mixed(urls)
    return [pika.URLParameters(url) for url in urls]


def _refuse_mixed(urls: list[str]) -> None:
    for what, part in (("vhost", _vhost), ("user", _user), ("scheme (amqp/amqps)", _scheme)):
        seen = {part(url) for url in urls}
        if len(seen) > 1:
            listed = ", ".join(_redacted(url) for url in urls)
            raise ImproperlyConfigured(
                f"BROKER_URL lists nodes of one RabbitMQ cluster, so every URL must name the same {what}; "
                f"these differ: {listed}."
            )


def _scheme(url: str) -> str:
    return urlsplit(url).scheme


def _vhost(url: str) -> str:
    # pika's rule: no path is "/", else the path without its leading slash, percent-decoded.
    path = urlsplit(url).path
    return "/" if path in ("", "/") else unquote(path[1:])


def _user(url: str) -> str:
    return unquote(urlsplit(url).username or "guest")


def _redacted(url: str) -> str:
    """The URL without its password, for error messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
