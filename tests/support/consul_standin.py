"""A test stand-in for the Consul agent's HTTP API. It is not Consul.

There is no Consul binary on the machines that run this project's tests, so this
module serves the part of the agent HTTP API that eventhub uses, following
Consul's documented requests and responses (developer.hashicorp.com/consul/api-docs
and the agent's own handlers) closely enough that py-consul cannot tell the
difference for these endpoints:

    PUT /v1/agent/service/register[?replace-existing-checks]
    PUT /v1/agent/service/deregister/<service-id>
    PUT /v1/agent/check/pass|warn|fail/<check-id>[?note=]
    PUT /v1/agent/check/update/<check-id>         {"Status": ..., "Output": ...}
    GET /v1/agent/services, /v1/agent/checks, /v1/agent/self
    GET /v1/health/service/<name>[?passing][&tag=...]   (blocking queries too)
    GET /v1/catalog/services, /v1/catalog/service/<name>[?tag=...]
    GET /v1/status/leader

Behaviour kept from Consul: checks start critical unless the definition gives a
Status; a TTL check turns critical with "TTL expired ..." output when not updated
within its TTL; re-registering a service keeps its checks' status and output;
DeregisterCriticalServiceAfter removes a service whose check has been critical
that long; output-only check changes reach the catalog (health/catalog endpoints)
after check_update_interval while status changes reach it at once; ACL tokens
come from ?token=, X-Consul-Token or "Authorization: Bearer"; an unknown token is
refused with 403 "ACL not found", the anonymous token is refused writes with 403
"Permission denied: ..." and sees empty lists on reads, as under a default-deny
policy; errors are plain text with Consul's status codes and messages.

Deliberate deviations (so tests stay fast and honest):

* Only TTL checks are accepted; a script/HTTP/TCP/gRPC check is refused with 400
  because the stand-in cannot run it.
* DeregisterCriticalServiceAfter may be shorter than Consul's 1 minute minimum
  (``min_deregister_after`` restores the clamp), and services are reaped when
  the stand-in is next asked anything instead of by a 30 second reaper.
* The deferred catalog write of output-only changes happens exactly
  ``check_update_interval`` after the first pending change (Consul staggers it
  randomly between half and one and a half times that interval).
* One node, one datacenter; ?filter= expressions are refused with 400, ?near is
  ignored; a single management token when ACLs are on (no policies or roles).
* ``forget()`` (an agent restarted without its data dir) and ``stop()``/``start()``
  (the agent unreachable on the same port, its state and clocks kept) exist only
  here, for tests.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

STATUSES = ("passing", "warning", "critical")
ANONYMOUS_ACCESSOR_ID = "00000000-0000-0000-0000-000000000002"
CHECK_BUF_SIZE = 4 * 1024  # Consul truncates check output to 4 KiB
DEFAULT_CHECK_UPDATE_INTERVAL = 300.0  # Consul's check_update_interval default: 5m
DEFAULT_BLOCKING_WAIT = 300.0  # a blocking query without ?wait waits 5 minutes
MAX_BLOCKING_WAIT = 600.0  # and never longer than 10 minutes
STANDIN_VERSION = "0.0.0-standin"
_POLL_SECONDS = 0.05  # how often a blocking query re-evaluates TTLs while it waits
_META_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"((?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_NON_TTL_CHECK_KEYS = (
    "http",
    "tcp",
    "args",
    "scriptargs",
    "script",
    "grpc",
    "dockercontainerid",
    "h2ping",
    "udp",
    "aliasservice",
    "aliasnode",
    "osservice",
)


def parse_duration(text: str | int | float) -> float:
    """Seconds in a Go duration ("10s", "1m30s", "500ms", "1.5h"), as Consul parses them.

    A JSON number is nanoseconds, as Consul's decoder treats it. Raises ValueError with
    Go's ``time: invalid duration "..."`` message otherwise.
    """
    if isinstance(text, bool):
        raise ValueError(f"time: invalid duration {json.dumps(str(text))}")
    if isinstance(text, int | float):
        return float(text) / 1e9
    sign, body = (-1.0, text[1:]) if text[:1] == "-" else (1.0, text.removeprefix("+"))
    if body == "0":
        return 0.0
    if not _DURATION.fullmatch(body):
        if body and body.replace(".", "").isdigit():
            raise ValueError(f"time: missing unit in duration {json.dumps(text)}")
        raise ValueError(f"time: invalid duration {json.dumps(text)}")
    return sign * sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(body))


def _go_bool(value: str) -> bool:
    """strconv.ParseBool: the spellings Consul accepts for boolean query parameters."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(value)


def _folded(obj: Any) -> dict[str, Any]:
    """Keys lower-cased without underscores: Consul decodes "TTL", "ttl" and snake_case alike."""
    if not isinstance(obj, dict):
        return {}
    return {str(k).lower().replace("_", ""): v for k, v in obj.items()}


class ApiError(Exception):
    """An HTTP error answered in plain text, as Consul answers its errors."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Response:
    status: int = 200
    body: Any = None  # JSON-serialisable, or None for an empty 200
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None


@dataclass
class RecordedRequest:
    """One request the stand-in answered, for tests that assert what a client sent."""

    method: str
    path: str
    query: dict[str, list[str]]
    token: str


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes
    token: str

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise ApiError(400, f"Request decode failed: {exc}") from exc


@dataclass
class _Service:
    id: str
    name: str
    tags: list[str]
    meta: dict[str, str]
    address: str
    port: int
    weights: dict[str, int]
    enable_tag_override: bool
    create_index: int
    modify_index: int


@dataclass
class _Check:
    check_id: str
    name: str
    service_id: str
    service_name: str
    notes: str
    ttl: float
    deregister_after: float | None
    status: str
    output: str = ""  # what the agent knows (agent endpoints)
    catalog_output: str = ""  # what the catalog knows (health/catalog endpoints)
    expires_at: float | None = None
    critical_since: float | None = None
    sync_due: float | None = None
    create_index: int = 0
    modify_index: int = 0


def _expired_output(last: str) -> str:
    # The same wording as Consul's CheckTTL, so consumers can tell "stopped reporting" apart.
    prefix = "TTL expired"
    return f"{prefix} (last output before timeout follows): {last}" if last else prefix


def _truncate(output: str) -> str:
    total = len(output)
    if total <= CHECK_BUF_SIZE:
        return output
    return f"{output[:CHECK_BUF_SIZE]} ... (captured {CHECK_BUF_SIZE} of {total} bytes)"


class _AgentState:
    """Services and checks of the one node, with the catalog's index. Callers hold ``cond``."""

    def __init__(
        self, *, check_update_interval: float, min_deregister_after: float, clock: Callable[[], float]
    ) -> None:
        self.cond = threading.Condition()
        self.services: dict[str, _Service] = {}
        self.checks: dict[str, _Check] = {}
        self.index = 10  # a fresh cluster has already made a few raft writes
        self.check_update_interval = check_update_interval
        self.min_deregister_after = min_deregister_after
        self.clock = clock

    def bump(self) -> int:
        self.index += 1
        self.cond.notify_all()
        return self.index

    def advance(self) -> None:
        """Apply what time has done: expired TTLs, deferred catalog writes, reaping."""
        now = self.clock()
        for check in list(self.checks.values()):
            if check.expires_at is not None and now >= check.expires_at:
                # Like Consul's TTL timer: it fires once and is re-armed by the next update.
                check.expires_at = None
                self.set_status(check, "critical", _expired_output(check.output), rearm=False)
            if check.sync_due is not None and now >= check.sync_due:
                self._sync(check)
        self._reap(now)

    def set_status(self, check: _Check, status: str, output: str, *, rearm: bool = True) -> None:
        now = self.clock()
        if rearm:
            check.expires_at = now + check.ttl
        check.output = _truncate(output)
        if status != check.status:
            check.status = status
            check.critical_since = now if status == "critical" else None
            self._sync(check)  # status changes are written to the catalog at once
        elif check.output != check.catalog_output:
            if self.check_update_interval <= 0:
                self._sync(check)
            elif check.sync_due is None:
                check.sync_due = now + self.check_update_interval

    def _sync(self, check: _Check) -> None:
        check.catalog_output = check.output
        check.sync_due = None
        check.modify_index = self.bump()

    def _reap(self, now: float) -> None:
        for check in list(self.checks.values()):
            if check.deregister_after is None or check.critical_since is None:
                continue
            timeout = max(check.deregister_after, self.min_deregister_after)
            if now - check.critical_since >= timeout and check.service_id in self.services:
                self.remove_service(check.service_id)

    def remove_service(self, service_id: str) -> None:
        self.services.pop(service_id, None)
        for cid in [c.check_id for c in self.checks.values() if c.service_id == service_id]:
            del self.checks[cid]
        self.bump()

    def add_service(self, svc: _Service, checks: list[_Check], *, replace: bool) -> None:
        old = self.services.get(svc.id)
        svc.create_index = old.create_index if old else self.index + 1
        svc.modify_index = self.bump()
        self.services[svc.id] = svc
        new_ids = {c.check_id for c in checks}
        for check in checks:
            self._add_check(check, self.checks.get(check.check_id))
        if replace:
            stale = [c.check_id for c in self.checks.values() if c.service_id == svc.id]
            for cid in stale:
                if cid not in new_ids:
                    del self.checks[cid]

    def _add_check(self, check: _Check, previous: _Check | None) -> None:
        now = self.clock()
        if previous is not None:
            # Consul restores status and output from the check it replaces.
            check.status, check.output = previous.status, previous.output
            check.catalog_output = previous.catalog_output
            check.critical_since = previous.critical_since
            check.create_index = previous.create_index
        if check.status == "critical" and check.critical_since is None:
            check.critical_since = now
        check.expires_at = now + check.ttl
        check.create_index = check.create_index or self.index + 1
        check.modify_index = self.bump()
        self.checks[check.check_id] = check

    def forget(self) -> None:
        self.services.clear()
        self.checks.clear()
        self.bump()


class _Node:
    """The one node this stand-in's agent runs on, and the views built from it."""

    def __init__(self, *, name: str, address: str, datacenter: str) -> None:
        self.name = name
        self.address = address
        self.datacenter = datacenter
        self.id = str(uuid.uuid4())
        # Servers register the "consul" service in the catalog (not on the agent).
        self.consul_service = _Service(
            "consul", "consul", [], {}, "", 8300, {"Passing": 1, "Warning": 1}, False, 5, 5
        )

    def tagged_addresses(self) -> dict[str, str]:
        a = self.address
        return {"lan": a, "lan_ipv4": a, "wan": a, "wan_ipv4": a}

    def node_json(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Node": self.name,
            "Address": self.address,
            "Datacenter": self.datacenter,
            "TaggedAddresses": self.tagged_addresses(),
            "Meta": {"consul-network-segment": ""},
            "CreateIndex": 5,
            "ModifyIndex": 5,
        }

    def serf_check(self) -> dict[str, Any]:
        return {
            "Node": self.name,
            "CheckID": "serfHealth",
            "Name": "Serf Health Status",
            "Status": "passing",
            "Notes": "",
            "Output": "Agent alive and reachable",
            "ServiceID": "",
            "ServiceName": "",
            "ServiceTags": [],
            "Type": "",
            "Interval": "",
            "Timeout": "",
            "ExposedPort": 0,
            "Definition": {},
            "CreateIndex": 5,
            "ModifyIndex": 5,
        }

    def check_json(self, check: _Check, tags: list[str], *, catalog: bool) -> dict[str, Any]:
        return {
            "Node": self.name,
            "CheckID": check.check_id,
            "Name": check.name,
            "Status": check.status,
            "Notes": check.notes,
            "Output": check.catalog_output if catalog else check.output,
            "ServiceID": check.service_id,
            "ServiceName": check.service_name,
            "ServiceTags": list(tags),
            "Type": "ttl",
            "Interval": "",
            "Timeout": "",
            "ExposedPort": 0,
            "Definition": {},
            "CreateIndex": check.create_index,
            "ModifyIndex": check.modify_index,
        }

    def agent_service_json(self, svc: _Service) -> dict[str, Any]:
        return {
            "ID": svc.id,
            "Service": svc.name,
            "Tags": list(svc.tags),
            "Meta": dict(svc.meta),
            "Port": svc.port,
            "Address": svc.address,
            "Weights": dict(svc.weights),
            "EnableTagOverride": svc.enable_tag_override,
            "Datacenter": self.datacenter,
        }

    def service_json(self, svc: _Service) -> dict[str, Any]:
        return {
            "ID": svc.id,
            "Service": svc.name,
            "Tags": list(svc.tags),
            "Address": svc.address,
            "Meta": dict(svc.meta),
            "Port": svc.port,
            "Weights": dict(svc.weights),
            "EnableTagOverride": svc.enable_tag_override,
            "Proxy": {"Mode": "", "MeshGateway": {}, "Expose": {}},
            "Connect": {},
            "CreateIndex": svc.create_index,
            "ModifyIndex": svc.modify_index,
        }

    def catalog_entry(self, svc: _Service) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Node": self.name,
            "Address": self.address,
            "Datacenter": self.datacenter,
            "TaggedAddresses": self.tagged_addresses(),
            "NodeMeta": {"consul-network-segment": ""},
            "ServiceKind": "",
            "ServiceID": svc.id,
            "ServiceName": svc.name,
            "ServiceTags": list(svc.tags),
            "ServiceAddress": svc.address,
            "ServiceWeights": dict(svc.weights),
            "ServiceMeta": dict(svc.meta),
            "ServicePort": svc.port,
            "ServiceEnableTagOverride": svc.enable_tag_override,
            "ServiceProxy": {"Mode": "", "MeshGateway": {}, "Expose": {}},
            "ServiceConnect": {},
            "CreateIndex": svc.create_index,
            "ModifyIndex": svc.modify_index,
        }


class _Acl:
    """One management token, default-deny for everyone else, as Consul with ACLs enabled."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    @property
    def enabled(self) -> bool:
        return self.token is not None

    def can_read(self, token: str) -> bool:
        """Reads by the anonymous token are filtered to nothing; unknown tokens are refused."""
        return self.resolve(token)

    def require(self, token: str, permission: str, resource: str) -> None:
        if not self.resolve(token):
            raise ApiError(
                403,
                (
                    f"Permission denied: token with AccessorID '{ANONYMOUS_ACCESSOR_ID}' lacks permission "
                    f"'{permission}' on {json.dumps(resource)}. The anonymous token is used implicitly "
                    "when a request does not specify a token."
                ),
            )

    def resolve(self, token: str) -> bool:
        """True for a token with every permission, False for anonymous, 403 for unknown ones."""
        if not self.enabled or token == self.token:
            return True
        if token == "" or token == "anonymous":
            return False
        raise ApiError(403, "ACL not found")


def _service_matches(svc: _Service, tags: list[str]) -> bool:
    # Consul compares tags case-insensitively, and several ?tag= must all be present.
    have = {t.lower() for t in svc.tags}
    return all(t.lower() in have for t in tags)


class _Api:
    """The HTTP endpoints, as functions of a parsed request."""

    def __init__(self, state: _AgentState, node: _Node, acl: _Acl, stopping: threading.Event) -> None:
        self.state = state
        self.node = node
        self.acl = acl
        self.stopping = stopping
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Response]]] = [
            ("PUT", re.compile(r"/v1/agent/service/register"), self.register),
            ("PUT", re.compile(r"/v1/agent/service/deregister/(?P<service_id>.+)"), self.deregister),
            ("PUT", re.compile(r"/v1/agent/check/(?P<verb>pass|warn|fail)/(?P<check_id>.+)"), self.ttl_verb),
            ("PUT", re.compile(r"/v1/agent/check/update/(?P<check_id>.+)"), self.check_update),
            ("GET", re.compile(r"/v1/agent/services"), self.agent_services),
            ("GET", re.compile(r"/v1/agent/checks"), self.agent_checks),
            ("GET", re.compile(r"/v1/agent/self"), self.agent_self),
            ("GET", re.compile(r"/v1/health/service/(?P<name>.+)"), self.health_service),
            ("GET", re.compile(r"/v1/catalog/services"), self.catalog_services),
            ("GET", re.compile(r"/v1/catalog/service/(?P<name>.+)"), self.catalog_service),
            ("GET", re.compile(r"/v1/status/leader"), self.status_leader),
        ]

    def handle(self, req: _Request) -> Response:
        for method, pattern, endpoint in self.routes:
            match = pattern.fullmatch(req.path)
            if match is None:
                continue
            if req.method != method:
                raise ApiError(405, f"method {req.method} not allowed", {"Allow": f"OPTIONS,{method}"})
            args = {k: unquote(v) for k, v in match.groupdict().items()}
            with self.state.cond:
                self.state.advance()
                return endpoint(req, **args)
        raise ApiError(404, "Invalid URL path: not a recognized HTTP API endpoint")

    # -- writes -------------------------------------------------------------------------

    def register(self, req: _Request) -> Response:
        body = _folded(req.json())
        try:
            svc = self._decode_service(body)
            defs = self._check_defs(body)
            checks = [self._decode_check(c, svc, i, len(defs)) for i, c in enumerate(defs)]
        except (TypeError, ValueError, AttributeError) as exc:  # e.g. "Port": "eighty"
            raise ApiError(400, f"Request decode failed: {exc}") from exc
        _validate_meta(svc.meta)
        self.acl.require(req.token, "service:write", svc.name)
        replace = _bool_arg(req, "replace-existing-checks", "Invalid value for ?replace-existing-checks")
        self.state.add_service(svc, checks, replace=replace)
        return Response()

    def _check_defs(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        # Consul's CheckTypes(): the single Check first (when given), then Checks.
        defs = [_folded(body["check"])] if _folded(body.get("check")) else []
        return defs + [_folded(c) for c in body.get("checks") or []]

    def _decode_service(self, body: dict[str, Any]) -> _Service:
        name = body.get("name") or ""
        if not name:
            raise ApiError(400, "Missing service name")
        address = body.get("address") or ""
        if address in ("0.0.0.0", "::", "[::]"):
            raise ApiError(400, "Invalid service address")
        weights = _folded(body.get("weights"))
        return _Service(
            id=body.get("id") or name,
            name=name,
            tags=list(body.get("tags") or []),
            meta=dict(body.get("meta") or {}),
            address=address,
            port=int(body.get("port") or 0),
            weights={"Passing": int(weights.get("passing", 1)), "Warning": int(weights.get("warning", 1))},
            enable_tag_override=bool(body.get("enabletagoverride")),
            create_index=0,
            modify_index=0,
        )

    def _decode_check(self, raw: dict[str, Any], svc: _Service, i: int, count: int) -> _Check:
        status = raw.get("status") or "critical"
        if status not in STATUSES:
            raise ApiError(400, "Status for checks must 'passing', 'warning', 'critical'")
        kinds = [k for k in _NON_TTL_CHECK_KEYS if raw.get(k)]
        if kinds:
            raise ApiError(400, f"The Consul test stand-in runs TTL checks only; this check has {kinds[0]!r}")
        if not raw.get("ttl"):
            raise ApiError(400, "Must provide TTL or Script/DockerContainerID/HTTP/TCP and Interval")
        ttl, dereg = _duration_field(raw, "ttl"), _duration_field(raw, "deregistercriticalserviceafter")
        # Consul names unnamed service checks "service:<id>", numbered when there are several.
        default_id = f"service:{svc.id}" + (f":{i + 1}" if count > 1 else "")
        return _Check(
            check_id=raw.get("checkid") or raw.get("id") or default_id,
            name=raw.get("name") or f"Service '{svc.name}' check",
            service_id=svc.id,
            service_name=svc.name,
            notes=raw.get("notes") or "",
            ttl=ttl or 0.0,
            deregister_after=dereg,
            status=status,
        )

    def deregister(self, req: _Request, service_id: str) -> Response:
        svc = self.state.services.get(service_id)
        self.acl.resolve(req.token)  # an unknown token is refused before anything is looked up
        if svc is None:
            raise ApiError(
                404,
                f"Unknown service ID {json.dumps(service_id)}. "
                "Ensure that the service ID is passed, not the service name.",
            )
        self.acl.require(req.token, "service:write", svc.name)
        self.state.remove_service(service_id)
        return Response()

    def ttl_verb(self, req: _Request, verb: str, check_id: str) -> Response:
        status = {"pass": "passing", "warn": "warning", "fail": "critical"}[verb]
        return self._update(req, check_id, status, req.arg("note") or "")

    def check_update(self, req: _Request, check_id: str) -> Response:
        body = req.json()
        update = _folded(body)
        status = update.get("status") or ""
        if status not in STATUSES:
            raise ApiError(400, f"Invalid check status: '{status}'")
        return self._update(req, check_id, status, str(update.get("output") or ""))

    def _update(self, req: _Request, check_id: str, status: str, output: str) -> Response:
        self.acl.resolve(req.token)
        check = self.state.checks.get(check_id)
        if check is None:
            raise ApiError(
                404,
                f"Unknown check ID {json.dumps(check_id)}. "
                "Ensure that the check ID is passed, not the check name.",
            )
        self.acl.require(req.token, "service:write", check.service_name)
        self.state.set_status(check, status, output)
        return Response()

    # -- agent reads ----------------------------------------------------------------------

    def agent_services(self, req: _Request) -> Response:
        _refuse_filter(req)
        if not self.acl.can_read(req.token):
            return Response(body={})
        return Response(body={s.id: self.node.agent_service_json(s) for s in self.state.services.values()})

    def agent_checks(self, req: _Request) -> Response:
        _refuse_filter(req)
        if not self.acl.can_read(req.token):
            return Response(body={})
        checks = self.state.checks.values()
        return Response(body={c.check_id: self._check_json(c, catalog=False) for c in checks})

    def agent_self(self, req: _Request) -> Response:
        self.acl.require(req.token, "agent:read", self.node.name)
        n = self.node
        config = {
            "Datacenter": n.datacenter,
            "PrimaryDatacenter": n.datacenter,
            "NodeName": n.name,
            "NodeID": n.id,
            "Server": True,
            "Version": STANDIN_VERSION,
            "Revision": "standin",
        }
        member = {
            "Name": n.name,
            "Addr": n.address,
            "Port": 8301,
            "Status": 1,
            "Tags": {"dc": n.datacenter, "role": "consul", "id": n.id, "build": STANDIN_VERSION},
        }
        return Response(
            body={
                "Config": config,
                "DebugConfig": {},
                "Coord": None,
                "Member": member,
                "Stats": {},
                "Meta": {"consul-network-segment": ""},
            }
        )

    def status_leader(self, req: _Request) -> Response:
        return Response(body=f"{self.node.address}:8300")

    # -- catalog reads (blocking queries, X-Consul-Index) ------------------------------------

    def health_service(self, req: _Request, name: str) -> Response:
        passing = _bool_arg(req, "passing", "Invalid value for ?passing")

        def entries() -> list[dict[str, Any]]:
            found = [self._health_entry(s) for s in self._catalog_services(req, name)]
            if passing:
                found = [e for e in found if all(c["Status"] == "passing" for c in e["Checks"])]
            return found

        return self._query(req, entries, [])

    def _health_entry(self, svc: _Service) -> dict[str, Any]:
        checks = [self.node.serf_check()] + [
            self._check_json(c, catalog=True) for c in self.state.checks.values() if c.service_id == svc.id
        ]
        return {"Node": self.node.node_json(), "Service": self.node.service_json(svc), "Checks": checks}

    def catalog_services(self, req: _Request) -> Response:
        def names() -> dict[str, list[str]]:
            out: dict[str, set[str]] = {}
            for svc in [self.node.consul_service, *self.state.services.values()]:
                out.setdefault(svc.name, set()).update(svc.tags)
            return {k: sorted(v) for k, v in sorted(out.items())}

        return self._query(req, names, {})

    def catalog_service(self, req: _Request, name: str) -> Response:
        def entries() -> list[dict[str, Any]]:
            return [self.node.catalog_entry(s) for s in self._catalog_services(req, name)]

        return self._query(req, entries, [])

    def _catalog_services(self, req: _Request, name: str) -> list[_Service]:
        everything = [self.node.consul_service, *self.state.services.values()]
        tags = req.query.get("tag", [])
        return [s for s in everything if s.name == name and _service_matches(s, tags)]

    def _query(self, req: _Request, build: Callable[[], Any], empty: Any) -> Response:
        """Answer a catalog/health read: ACL filtering, ?dc, blocking on ?index, meta headers."""
        _refuse_filter(req)
        dc = req.arg("dc")
        if dc and dc != self.node.datacenter:
            raise ApiError(500, "No path to datacenter")
        readable = self.acl.can_read(req.token)
        self._block(req)
        body = build() if readable else empty
        headers = {
            "X-Consul-Index": str(self.state.index),
            "X-Consul-KnownLeader": "true",
            "X-Consul-LastContact": "0",
            "X-Consul-Effective-Consistency": _consistency(req),
        }
        if not readable:
            headers["X-Consul-Results-Filtered-By-ACLs"] = "true"
        return Response(body=body, headers=headers)

    def _block(self, req: _Request) -> None:
        """Hold a blocking query (?index=N) until the index moves past N or ?wait runs out."""
        raw_index, raw_wait = req.arg("index"), req.arg("wait")
        try:
            min_index = int(raw_index) if raw_index else 0
        except ValueError as exc:
            raise ApiError(400, "Invalid index") from exc
        try:
            wait = parse_duration(raw_wait) if raw_wait else DEFAULT_BLOCKING_WAIT
        except ValueError as exc:
            raise ApiError(400, "Invalid wait time") from exc
        deadline = time.monotonic() + min(wait, MAX_BLOCKING_WAIT)
        while min_index and self.state.index <= min_index and not self.stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.state.cond.wait(min(remaining, _POLL_SECONDS))
            self.state.advance()

    def _check_json(self, check: _Check, *, catalog: bool) -> dict[str, Any]:
        svc = self.state.services.get(check.service_id)
        return self.node.check_json(check, svc.tags if svc else [], catalog=catalog)


def _duration_field(raw: dict[str, Any], key: str) -> float | None:
    value = raw.get(key)
    if value in (None, ""):
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ApiError(400, f"Request decode failed: {exc}") from exc


def _validate_meta(meta: dict[str, Any]) -> None:
    """Consul's limits on service meta: 64 pairs, keys [A-Za-z0-9_-]{1,128}, values <= 512 chars."""
    if len(meta) > 64:
        raise ApiError(400, "Invalid Service Meta: metadata cannot contain more than 64 key/value pairs")
    for key, value in meta.items():
        problem = None
        if not isinstance(value, str):
            problem = "Value must be a string"
        elif not key or len(key) > 128 or not _META_KEY.match(key):
            problem = "Key contains invalid characters" if key else "Key cannot be blank"
        elif key.startswith("consul-"):
            problem = "Key prefix 'consul-' is reserved for internal use"
        elif len(value) > 512:
            problem = "Value is too long (limit: 512 characters)"
        if problem:
            pair = f"('{key}', '{value}')"
            raise ApiError(400, f"Invalid Service Meta: Couldn't load metadata pair {pair}: {problem}")


def _bool_arg(req: _Request, name: str, error: str) -> bool:
    """Consul's getBoolQueryParam: present without a value means true."""
    if name not in req.query:
        return False
    value = req.arg(name) or ""
    try:
        return value == "" or _go_bool(value)
    except ValueError as exc:
        raise ApiError(400, error) from exc


def _refuse_filter(req: _Request) -> None:
    if req.arg("filter"):
        raise ApiError(400, "The Consul test stand-in does not evaluate ?filter= expressions")


def _consistency(req: _Request) -> str:
    if "stale" in req.query:
        return "stale"
    return "consistent" if "consistent" in req.query else "leader"


def _token(query: dict[str, list[str]], headers: Any) -> str:
    """Consul's order: ?token=, then X-Consul-Token, then "Authorization: Bearer <token>"."""
    if query.get("token", [""])[0]:
        return query["token"][0]
    if headers.get("X-Consul-Token"):
        return headers["X-Consul-Token"]
    parts = (headers.get("Authorization") or "").split()
    if len(parts) > 1 and parts[0].lower() == "bearer":
        return parts[1]
    return ""


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that can also drop its open keep-alive connections (an outage)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], standin: ConsulStandin) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.standin = standin
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that went away mid-answer (e.g. during stop()) is not worth a traceback

    def drop_connections(self) -> None:
        with self._connections_lock:
            connections, self._connections = self._connections, set()
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Consul and requests' sessions use
    server_version = "consul-standin"  # never claims to be Consul
    disable_nagle_algorithm = True  # headers and body go out as separate writes; don't wait 40ms
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        return  # quiet test output; RecordedRequest keeps what matters

    def do_GET(self) -> None:
        self._serve()

    do_PUT = do_POST = do_DELETE = do_GET

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        response = self.server.standin._answer(self.command, self.path, self.headers, body)
        self._send(response)

    def _send(self, response: Response) -> None:
        if response.text is not None:
            payload, ctype = response.text.encode(), "text/plain; charset=utf-8"
        elif response.body is not None:
            payload, ctype = json.dumps(response.body).encode(), "application/json"
        else:
            payload, ctype = b"", "text/plain; charset=utf-8"
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class ConsulStandin:
    """A stand-in Consul agent HTTP API on a background thread, for tests.

    ``ConsulStandin(port=0).start()`` listens on a free port; ``.addr`` is "host:port".
    With ``acl_token`` set, that token may do anything and every other caller is
    treated as Consul treats an unknown or anonymous token under a default-deny policy.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        acl_token: str | None = None,
        datacenter: str = "dc1",
        node_name: str = "consul-standin",
        check_update_interval: float = DEFAULT_CHECK_UPDATE_INTERVAL,
        min_deregister_after: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = port
        self.acl_token = acl_token
        self.requests: list[RecordedRequest] = []
        self._state = _AgentState(
            check_update_interval=check_update_interval,
            min_deregister_after=min_deregister_after,
            clock=clock,
        )
        node_address = "127.0.0.1" if host in ("", "0.0.0.0", "localhost") else host
        self._node = _Node(name=node_name, address=node_address, datacenter=datacenter)
        self._stopping = threading.Event()
        self._api = _Api(self._state, self._node, _Acl(acl_token), self._stopping)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def addr(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> ConsulStandin:
        """Listen (again) on the same port; the first start picks a free port when port is 0."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"consul-standin:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering: the port refuses connections and open ones are dropped. State is kept."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        with self._state.cond:
            self._state.cond.notify_all()  # release blocking queries
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    close = stop

    def forget(self) -> None:
        """Lose every registered service and check, as an agent restarted without its data dir."""
        with self._state.cond:
            self._state.forget()

    reset = forget

    def __enter__(self) -> ConsulStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inspection for tests (the agent's own view, like /v1/agent/*) ------------------------

    def service_ids(self) -> list[str]:
        with self._state.cond:
            self._state.advance()
            return sorted(self._state.services)

    def check_status(self, check_id: str) -> str | None:
        with self._state.cond:
            self._state.advance()
            check = self._state.checks.get(check_id)
            return check.status if check else None

    def tokens_seen(self) -> list[str]:
        return [r.token for r in self.requests]

    # -- the HTTP side -----------------------------------------------------------------------

    def _answer(self, method: str, raw_path: str, headers: Any, body: bytes) -> Response:
        split = urlsplit(raw_path)
        query = parse_qs(split.query, keep_blank_values=True)
        token = _token(query, headers)
        self.requests.append(RecordedRequest(method, split.path, query, token))
        policy = {"X-Consul-Default-ACL-Policy": "deny" if self.acl_token is not None else "allow"}
        try:
            response = self._api.handle(_Request(method, split.path, query, body, token))
        except ApiError as exc:
            response = Response(status=exc.status, text=exc.message, headers=dict(exc.headers))
        except Exception as exc:  # an answer, never a dropped connection, for a stand-in bug
            response = Response(status=500, text=f"stand-in error: {exc!r}")
        response.headers.update(policy)
        return response
