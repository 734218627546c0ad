"""The Consul client: how to reach the local agent, from Consul's own environment variables.

This package is the one part of eventhub that talks to Consul, through py-consul
(import name ``consul``), exactly as production does. Tests point it at the agent
stand-in in tests/support/consul_standin.py, or at a real agent when
``CONSUL_HTTP_ADDR`` is set.

Discovery is optional: :func:`client_from_env` returns ``None`` when
``CONSUL_HTTP_ADDR`` is unset, and callers then skip registration and lookups.
It reads Consul's own variables (``CONSUL_HTTP_ADDR``, ``CONSUL_HTTP_TOKEN``,
``CONSUL_HTTP_TOKEN_FILE``, ``CONSUL_HTTP_SSL``, ``CONSUL_HTTP_SSL_VERIFY``,
``CONSUL_CACERT``, ``CONSUL_CLIENT_CERT``/``CONSUL_CLIENT_KEY``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import consul
import requests

log = logging.getLogger(__name__)

DEFAULT_HTTP_PORT = 8500
DEFAULT_TIMEOUT_SECONDS = 10.0  # py-consul's own default (30s) would stall a worker's shutdown


class DiscoveryError(Exception):
    """Base class of this module's errors."""


class DiscoveryUnavailable(DiscoveryError):
    """The agent could not be reached, or refused the request (ACL, bad request, server error)."""


class RegistrationLost(DiscoveryError):
    """The agent no longer knows this worker's check (agent restarted, or service reaped)."""


# -- clients --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientSettings:
    """How to reach the local Consul agent, as Consul's environment variables describe it."""

    host: str
    port: int
    scheme: str = "http"
    token: str | None = None
    verify: bool | str = True
    cert: tuple[str, str] | None = None

    @property
    def addr(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_addr(addr: str) -> tuple[str | None, str, int]:
    """Split ``host:port``, ``https://host:8501`` or ``[::1]:8500`` into (scheme, host, port).

    The scheme is None when the address has none; the port defaults to 8500.
    """
    text = addr.strip().rstrip("/")
    scheme = None
    if "://" in text:
        scheme, text = text.split("://", 1)
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError(f"unsupported Consul address {addr!r}: use http://, https:// or host:port")
    parts = urlsplit("//" + text)
    try:
        port = parts.port or DEFAULT_HTTP_PORT
    except ValueError as exc:
        raise ValueError(f"invalid port in Consul address {addr!r}") from exc
    if not parts.hostname:
        raise ValueError(f"no host in Consul address {addr!r}")
    return scheme, parts.hostname, port


def make_client(
    addr: str,
    token: str | None = None,
    scheme: str | None = None,
    ca: str | None = None,
    verify: bool | str | None = None,
    *,
    cert: tuple[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> consul.Consul:
    """A py-consul client for ``addr``; explicit arguments win over the environment.

    ``scheme`` overrides the address's own; ``ca`` is a CA bundle path; ``verify=False``
    turns certificate checks off. ``timeout`` bounds every request (seconds).
    """
    addr_scheme, host, port = parse_addr(addr)
    if verify is False:
        verify_arg: bool | str = False
    else:
        verify_arg = ca or (verify if isinstance(verify, str) else True)
    client = consul.Consul(
        host=f"[{host}]" if ":" in host else host,  # py-consul pastes host into its URLs as is
        port=port,
        token=token,
        scheme=scheme or addr_scheme or "http",
        verify=verify_arg,
        cert=cert,
        connections_timeout=timeout,
    )
    # py-consul lets CONSUL_HTTP_TOKEN override the token it is given; the caller's choice wins.
    client.token = token
    return client


def settings_from_env(environ: Mapping[str, str] | None = None) -> ClientSettings | None:
    """Consul's own variables as :class:`ClientSettings`; None when CONSUL_HTTP_ADDR is unset."""
    env = os.environ if environ is None else environ
    addr = (env.get("CONSUL_HTTP_ADDR") or "").strip()
    if not addr:
        return None
    addr_scheme, host, port = parse_addr(addr)
    # As Consul's own client: CONSUL_HTTP_SSL=true forces https; an https:// address is https anyway.
    scheme = "https" if _env_bool(env, "CONSUL_HTTP_SSL", False) else (addr_scheme or "http")
    verify: bool | str = False
    if _env_bool(env, "CONSUL_HTTP_SSL_VERIFY", True):
        verify = env.get("CONSUL_CACERT") or True
    cert_file, key_file = env.get("CONSUL_CLIENT_CERT"), env.get("CONSUL_CLIENT_KEY")
    cert = (cert_file, key_file) if cert_file and key_file else None
    return ClientSettings(host, port, scheme, token=_env_token(env), verify=verify, cert=cert)


def client_from_env(
    environ: Mapping[str, str] | None = None, *, timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> consul.Consul | None:
    """A client for the agent named by CONSUL_HTTP_ADDR, or None: discovery is off."""
    settings = settings_from_env(environ)
    if settings is None:
        return None
    return make_client(
        settings.addr,
        token=settings.token,
        scheme=settings.scheme,
        verify=settings.verify,
        cert=settings.cert,
        timeout=timeout,
    )


_default_client: consul.Consul | None = None
_default_client_loaded = False
_default_client_lock = threading.Lock()


def default_client() -> consul.Consul | None:
    """This process's client from the environment (built once), or None: discovery is off."""
    global _default_client, _default_client_loaded
    with _default_client_lock:
        if not _default_client_loaded:
            _default_client = client_from_env()
            _default_client_loaded = True
        return _default_client


def reset_default_client() -> None:
    """Forget the client :func:`default_client` built, e.g. after the environment changed in a test."""
    global _default_client, _default_client_loaded
    with _default_client_lock:
        _default_client, _default_client_loaded = None, False


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = (env.get(name) or "").strip()
    if not value:
        return default
    # The spellings of Go's strconv.ParseBool, which Consul uses for these variables.
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f"{name}={value!r} is not a boolean (true/false)")


def _env_token(env: Mapping[str, str]) -> str | None:
    token = (env.get("CONSUL_HTTP_TOKEN") or "").strip()
    if token:
        return token
    path = (env.get("CONSUL_HTTP_TOKEN_FILE") or "").strip()
    if path:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip() or None
    return None


@contextmanager
def talking_to_consul(what: str) -> Iterator[None]:
    """Turn py-consul's and requests' errors into DiscoveryUnavailable, naming what failed."""
    try:
        yield
    except (requests.RequestException, consul.ConsulException) as exc:
        raise DiscoveryUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc
