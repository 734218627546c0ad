"""Consul service discovery: worker registration and heartbeats, healthy instances, consumers.

This is the one module of eventhub that talks to Consul, through py-consul (import
name ``consul``), exactly as production does. Tests point it at the agent stand-in
in tests/consul_standin.py, or at a real agent when ``CONSUL_HTTP_ADDR`` is set.

Discovery is optional: :func:`client_from_env` returns ``None`` when
``CONSUL_HTTP_ADDR`` is unset, and callers then skip registration and lookups.
It reads Consul's own variables (``CONSUL_HTTP_ADDR``, ``CONSUL_HTTP_TOKEN``,
``CONSUL_HTTP_TOKEN_FILE``, ``CONSUL_HTTP_SSL``, ``CONSUL_HTTP_SSL_VERIFY``,
``CONSUL_CACERT``, ``CONSUL_CLIENT_CERT``/``CONSUL_CLIENT_KEY``).

A worker is registered as one service instance with a TTL check that its
:class:`Heartbeat` thread passes every ttl/3; ``DeregisterCriticalServiceAfter``
makes Consul drop a worker that died without deregistering. Queues and handlers
are tags (``queue:<name>``, ``handler:<name>``); host, pid and start time are meta.

Nothing here imports Django models; the only Django access is the lazy settings
read in :func:`worker_registration`, so the module imports without settings.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import consul
import requests

log = logging.getLogger(__name__)

DEFAULT_HTTP_PORT = 8500
DEFAULT_TIMEOUT_SECONDS = 10.0  # py-consul's own default (30s) would stall a worker's shutdown
CACHE_TTL_SECONDS = 2.0
WORKER_TAG = "eventhub-worker"
QUEUE_TAG_PREFIX = "queue:"
HANDLER_TAG_PREFIX = "handler:"
_ALIVE_PREFIX = "eventhub worker alive at "
_ALIVE_AT = re.compile(re.escape(_ALIVE_PREFIX) + r"(\S+)")
_UNKNOWN_CHECK = ("Unknown check ID", "does not have associated TTL")  # Consul >= 1.9, and older
_STATUS_RANK = {"passing": 0, "warning": 1, "critical": 2, "maintenance": 3}


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
def _talking_to_consul(what: str) -> Iterator[None]:
    """Turn py-consul's and requests' errors into DiscoveryUnavailable, naming what failed."""
    try:
        yield
    except (requests.RequestException, consul.ConsulException) as exc:
        raise DiscoveryUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc


# -- registration and heartbeats ------------------------------------------------------------


def check_id(service_id: str) -> str:
    """The id of a worker's TTL check (Consul's own default id for a service's one check)."""
    return f"service:{service_id}"


def format_duration(value: float | str) -> str:
    """Seconds as a Consul duration ("15s", "1500ms"); a string is passed through unchanged."""
    if isinstance(value, str):
        return value
    if value <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    if float(value).is_integer():
        return f"{int(value)}s"
    return f"{round(value * 1000)}ms"


def register_worker(
    client: consul.Consul,
    *,
    service_name: str,
    service_id: str,
    tags: Iterable[str] = (),
    meta: Mapping[str, Any] | None = None,
    ttl_seconds: float = 15.0,
    deregister_after: float | str = "1m",
    address: str | None = None,
    port: int | None = None,
) -> None:
    """Register (or re-register, idempotently) one worker with a TTL check.

    The check starts critical, as Consul's do, until :func:`heartbeat` passes it (a
    status change, which Consul writes to the catalog at once). It turns critical when
    no heartbeat comes within ``ttl_seconds``; Consul removes the worker after
    ``deregister_after`` critical (one minute at least). Re-registering keeps the status.
    """
    check = _ttl_check(service_id, ttl_seconds, deregister_after)
    meta = {k: str(v) for k, v in (meta or {}).items()}  # Consul's meta values are strings
    with _talking_to_consul(f"registering {service_id}"):
        client.agent.service.register(
            service_name,
            service_id=service_id,
            address=address,
            port=port,
            tags=list(tags),
            meta=meta,
            check=check,
            replace_existing_checks=True,  # drops checks an older registration left behind
        )
    invalidate_instances(service_name)


def _ttl_check(service_id: str, ttl_seconds: float, deregister_after: float | str) -> dict[str, str]:
    return {
        "CheckID": check_id(service_id),
        "Name": "eventhub worker heartbeat",
        "Notes": "TTL check passed by the worker's heartbeat thread every ttl/3.",
        "TTL": format_duration(ttl_seconds),
        "DeregisterCriticalServiceAfter": format_duration(deregister_after),
    }


def heartbeat(client: consul.Consul, service_id: str, *, output: str | None = None) -> None:
    """Pass the worker's TTL check; raise RegistrationLost when the agent no longer knows it.

    The default output records the time, which :func:`list_consumers` reports as the
    last heartbeat.
    """
    note = output if output is not None else _alive_output()
    try:
        with _talking_to_consul(f"heartbeat of {service_id}"):
            passed = client.agent.check.ttl_pass(check_id(service_id), notes=note)
    except DiscoveryUnavailable as exc:
        if any(marker in str(exc) for marker in _UNKNOWN_CHECK):
            raise RegistrationLost(f"Consul no longer knows {service_id}: {exc}") from exc
        raise
    if not passed:  # py-consul answers Consul's 404 "Unknown check ID" with False
        raise RegistrationLost(f"Consul no longer knows the check of {service_id}")


def deregister(client: consul.Consul, service_id: str) -> None:
    """Remove a worker from the agent; a worker the agent does not know is not an error."""
    with _talking_to_consul(f"deregistering {service_id}"):
        client.agent.service.deregister(service_id)  # False (404) when already gone
    invalidate_instances()


def _alive_output() -> str:
    return _ALIVE_PREFIX + datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Registration:
    """Everything :func:`register_worker` needs, kept by a :class:`Heartbeat` to re-register."""

    service_name: str
    service_id: str
    tags: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict, hash=False)
    ttl_seconds: float = 15.0
    deregister_after: float | str = "1m"
    address: str | None = None
    port: int | None = None

    def register(self, client: consul.Consul) -> None:
        register_worker(client, **asdict(self))


def worker_tags(queues: Iterable[str] = (), handlers: Iterable[str] = ()) -> list[str]:
    """Tags that say what a worker consumes; :func:`list_consumers` reads them back."""
    return [
        WORKER_TAG,
        *(QUEUE_TAG_PREFIX + q for q in sorted(set(queues))),
        *(HANDLER_TAG_PREFIX + h for h in sorted(set(handlers))),
    ]


def worker_registration(
    *,
    queues: Iterable[str] = (),
    handlers: Iterable[str] = (),
    service_name: str | None = None,
    ttl_seconds: float | None = None,
    deregister_after: float | str | None = None,
    host: str | None = None,
    pid: int | None = None,
) -> Registration:
    """The registration of this worker process; unset values come from eventhub's settings."""
    host = host or socket.gethostname()
    pid = pid if pid is not None else os.getpid()
    if service_name is None or ttl_seconds is None or deregister_after is None:
        conf = _conf()
        service_name = service_name or conf.CONSUL_SERVICE_NAME
        ttl_seconds = ttl_seconds if ttl_seconds is not None else conf.CONSUL_CHECK_TTL_SECONDS
        deregister_after = deregister_after or conf.CONSUL_DEREGISTER_AFTER
    return Registration(
        service_name=service_name,
        service_id=f"{service_name}-{host}-{pid}",
        tags=tuple(worker_tags(queues, handlers)),
        meta={"host": host, "pid": str(pid), "started_at": datetime.now(UTC).isoformat(timespec="seconds")},
        ttl_seconds=float(ttl_seconds),
        deregister_after=deregister_after,
    )


def _conf() -> Any:
    # Imported here so this module never needs Django settings unless a default is wanted.
    from eventhub.conf import eventhub_settings

    return eventhub_settings


class Heartbeat:
    """Keeps one worker registered from a daemon thread; never raises out of it.

    Every ``interval`` (ttl/3 by default) it passes the TTL check. When the agent has
    forgotten the worker it registers again; when the agent cannot be reached it logs
    a warning and retries with exponential backoff (``min_backoff``..``max_backoff``).
    :meth:`stop` ends the thread and deregisters the worker.
    """

    def __init__(
        self,
        client: consul.Consul,
        registration: Registration,
        *,
        interval: float | None = None,
        min_backoff: float = 1.0,
        max_backoff: float = 30.0,
    ) -> None:
        self.client = client
        self.registration = registration
        self.interval = interval if interval is not None else registration.ttl_seconds / 3
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.failures = 0  # consecutive failed attempts; 0 once the agent answers again
        self.registrations = 0  # how many times this worker was (re-)registered
        self.last_beat: float | None = None  # time.monotonic() of the last passed check
        self._registered = False
        self._first_beat = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def service_id(self) -> str:
        return self.registration.service_id

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Heartbeat:
        """Start the thread; its first attempt (register + pass) happens at once."""
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"eventhub-heartbeat:{self.service_id}", daemon=True
        )
        self._thread.start()
        return self

    def wait_until_beating(self, timeout: float | None = None) -> bool:
        """Block until the first heartbeat has passed; False when ``timeout`` ran out first."""
        return self._first_beat.wait(timeout)

    def stop(self, *, deregister_worker: bool = True, timeout: float = 10.0) -> None:
        """End the thread, then deregister the worker (errors are logged, not raised)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None
        if not deregister_worker:
            return
        try:
            deregister(self.client, self.service_id)
        except DiscoveryError as exc:
            log.warning("Could not deregister %s from Consul: %s", self.service_id, exc)
        self._registered = False

    def beat(self) -> float:
        """One attempt: (re-)register if needed and pass the check. Returns seconds to wait."""
        try:
            self._register_and_pass()
        except Exception as exc:  # noqa: BLE001 - the thread must survive anything
            return self._backoff(exc)
        if self.failures:
            log.info("Consul heartbeat of %s recovered after %d failures", self.service_id, self.failures)
        self.failures = 0
        self.last_beat = time.monotonic()
        self._first_beat.set()
        return self.interval

    def _register_and_pass(self) -> None:
        if not self._registered:
            self._register()
        try:
            heartbeat(self.client, self.service_id)
        except RegistrationLost:
            log.warning("Consul forgot %s; registering it again", self.service_id)
            self._registered = False
            self._register()
            heartbeat(self.client, self.service_id)

    def _register(self) -> None:
        self.registration.register(self.client)
        self._registered = True
        self.registrations += 1

    def _backoff(self, exc: Exception) -> float:
        self.failures += 1
        delay = min(self.max_backoff, self.min_backoff * 2 ** (self.failures - 1))
        expected = isinstance(exc, DiscoveryError)
        log.warning(
            "Consul heartbeat of %s failed (%s); retrying in %.1fs",
            self.service_id,
            exc,
            delay,
            exc_info=not expected,
        )
        return delay

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.wait(delay):
            delay = self.beat()


# -- lookups --------------------------------------------------------------------------------


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
    with _talking_to_consul(f"looking up {service_name}"):
        _, entries = client.health.service(service_name, passing=True, tag=tag)
    found = tuple(_instance(entry) for entry in entries or [])
    instances_cache.put(key, found)
    return list(found)


def _instance(entry: Mapping[str, Any]) -> Instance:
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
    with _talking_to_consul(f"listing {service_name}"):
        _, entries = client.health.service(service_name)
    consumers = [_consumer(entry) for entry in entries or []]
    return sorted(consumers, key=lambda c: (c.host, c.id))


def _consumer(entry: Mapping[str, Any]) -> ConsumerInfo:
    instance = _instance(entry)
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
