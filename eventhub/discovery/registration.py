"""Worker registration in the Consul agent, and the heartbeat thread that keeps it passing.

A worker is registered as one service instance with a TTL check that its
:class:`Heartbeat` thread passes every ttl/3; ``DeregisterCriticalServiceAfter``
makes Consul drop a worker that died without deregistering. Queues and handlers
are tags (``queue:<name>``, ``handler:<name>``); host, pid and start time are meta.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import consul

from eventhub.conf import eventhub_settings, host_name
from eventhub.discovery.client import (
    DiscoveryError,
    DiscoveryUnavailable,
    RegistrationLost,
    talking_to_consul,
)
from eventhub.discovery.instances import invalidate_instances

log = logging.getLogger(__name__)

WORKER_TAG = "eventhub-worker"
QUEUE_TAG_PREFIX = "queue:"
HANDLER_TAG_PREFIX = "handler:"
ALIVE_PREFIX = "eventhub worker alive at "
_UNKNOWN_CHECK = ("Unknown check ID", "does not have associated TTL")  # Consul >= 1.9, and older


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
    with talking_to_consul(f"registering {service_id}"):
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
        with talking_to_consul(f"heartbeat of {service_id}"):
            passed = client.agent.check.ttl_pass(check_id(service_id), notes=note)
    except DiscoveryUnavailable as exc:
        if any(marker in str(exc) for marker in _UNKNOWN_CHECK):
            raise RegistrationLost(f"Consul no longer knows {service_id}: {exc}") from exc
        raise
    if not passed:  # py-consul answers Consul's 404 "Unknown check ID" with False
        raise RegistrationLost(f"Consul no longer knows the check of {service_id}")


def deregister(client: consul.Consul, service_id: str) -> None:
    """Remove a worker from the agent; a worker the agent does not know is not an error."""
    with talking_to_consul(f"deregistering {service_id}"):
        client.agent.service.deregister(service_id)  # False (404) when already gone
    invalidate_instances()


def _alive_output() -> str:
    return ALIVE_PREFIX + datetime.now(UTC).isoformat(timespec="seconds")


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
    host = host or host_name()
    pid = pid if pid is not None else os.getpid()
    if service_name is None or ttl_seconds is None or deregister_after is None:
        conf = eventhub_settings
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
