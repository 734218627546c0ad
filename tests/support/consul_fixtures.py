"""The ``consul_agent`` fixture: a Consul agent HTTP API for tests, stand-in or real.

By default each test gets a fresh stand-in (tests/support/consul_standin.py, a test stand-in
that follows Consul's documented HTTP API; it is not Consul) started with an ACL
token, so every test also proves that the token is sent. When ``CONSUL_HTTP_ADDR``
is set, the same tests run against that real agent instead, with Consul's own
variables (``CONSUL_HTTP_TOKEN``, ``CONSUL_HTTP_SSL``, ``CONSUL_CACERT``, ...);
tests that need powers only the stand-in has (``forget()``, ``stop()``/``start()``,
sub-minute DeregisterCriticalServiceAfter, the request log) call
``consul_agent.require_standin(why)`` and are skipped there.

tests/conftest.py makes the fixture available to every test module::

    from tests.support.consul_fixtures import consul_agent  # noqa: F401
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import consul
import pytest

from eventhub import discovery
from tests.support.consul_standin import ConsulStandin

_DEFAULT = object()
T = TypeVar("T")


@dataclass
class ConsulAgent:
    """Where the agent for this test listens, and clients for it."""

    host: str
    port: int
    token: str | None
    scheme: str = "http"
    verify: bool | str = True
    cert: tuple[str, str] | None = None
    standin: ConsulStandin | None = None
    names: list[str] = field(default_factory=list)

    @property
    def addr(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_standin(self) -> bool:
        return self.standin is not None

    def client(self, token: str | None | object = _DEFAULT) -> consul.Consul:
        """A py-consul client for this agent; ``token=None`` sends no token at all."""
        chosen = self.token if token is _DEFAULT else token
        return discovery.make_client(
            self.addr, token=chosen, scheme=self.scheme, verify=self.verify, cert=self.cert
        )

    def require_standin(self, why: str) -> ConsulStandin:
        """The stand-in, or skip this test when it runs against a real agent."""
        if self.standin is None:
            pytest.skip(f"needs the Consul stand-in ({why}); CONSUL_HTTP_ADDR points at a real agent")
        return self.standin

    def unique_name(self, base: str = "svc") -> str:
        """A service name no other test uses; on a real agent it is deregistered afterwards."""
        name = f"eh-test-{base}-{uuid.uuid4().hex[:8]}"
        self.names.append(name)
        return name

    def cleanup(self) -> None:
        """Deregister what this test registered (only needed on a real, shared agent)."""
        if self.standin is not None or not self.names:
            return
        client = self.client()
        for service_id, svc in (client.agent.services() or {}).items():
            if svc.get("Service") in self.names:
                client.agent.service.deregister(service_id)


def _real_agent() -> ConsulAgent | None:
    settings = discovery.settings_from_env()
    if settings is None:
        return None
    return ConsulAgent(
        host=settings.host,
        port=settings.port,
        token=settings.token,
        scheme=settings.scheme,
        verify=settings.verify,
        cert=settings.cert,
    )


@pytest.fixture
def consul_agent() -> Iterator[ConsulAgent]:
    """A Consul agent HTTP API: a fresh stand-in with an ACL token, or CONSUL_HTTP_ADDR's agent."""
    real = _real_agent() if os.environ.get("CONSUL_HTTP_ADDR") else None
    if real is not None:
        yield real
        real.cleanup()
        return
    token = f"test-{secrets.token_hex(8)}"
    standin = ConsulStandin(acl_token=token).start()
    try:
        yield ConsulAgent(host=standin.host, port=standin.port, token=token, standin=standin)
    finally:
        standin.stop()


def eventually(probe: Callable[[], T], *, timeout: float = 5.0, interval: float = 0.05) -> T:
    """Poll ``probe`` until it returns something truthy; fail the test after ``timeout`` seconds.

    A real agent writes to the catalog asynchronously (anti-entropy), so reads through
    the health and catalog endpoints may lag the agent endpoints by a moment.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() >= deadline:
            break
        time.sleep(interval)
    assert value, f"still {value!r} after {timeout}s"
    return value


def registration_for(agent, *, ttl=10.0, tags=(), address=None, port=None, name=None, suffix="a"):
    """A worker Registration under a service name of this test's own (unless ``name`` is given)."""
    name = name or agent.unique_name("worker")
    return discovery.Registration(
        service_name=name,
        service_id=f"{name}-{suffix}",
        tags=tuple(tags),
        meta={"host": "worker-host", "pid": "4242"},
        ttl_seconds=ttl,
        deregister_after="1m",
        address=address,
        port=port,
    )
