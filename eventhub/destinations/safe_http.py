"""The webhook transport: one HTTP POST that cannot be turned against the inside.

* No redirects: a 3xx is an answer like any other non-2xx (a 307 to an internal URL
  would re-post the body and its signature there).
* Every address is checked after DNS resolution, right before connecting
  (:mod:`eventhub.destinations.addresses`).
* At most ``EVENTHUB["WEBHOOK_MAX_RESPONSE_BYTES"]`` of any answer are read; a longer
  answer's connection is closed rather than drained.
* One deadline for the whole attempt (resolving, connecting, sending, headers and body),
  enforced by :mod:`eventhub.destinations.watchdog` however slowly the receiver drips.
* Nothing comes from the environment: no proxy variables, no .netrc, no cookies.

Each worker thread keeps its keep-alive connections (one per scheme, host and port) and
reuses them while the receiver allows it.
"""

import http.client
import socket
import ssl
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from eventhub.conf import eventhub_settings
from eventhub.destinations import addresses
from eventhub.destinations.errors import DestinationError, PermanentError
from eventhub.destinations.watchdog import Deadline, enforced

_local = threading.local()
# A reused keep-alive connection the receiver closed meanwhile fails like this before any answer.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class Unreachable(DestinationError):
    """Nothing was delivered: the host did not resolve, or no connection could be made."""


class DeadlineExceeded(DestinationError):
    """The attempt ran out of time; the request may or may not have arrived."""


@dataclass(frozen=True)
class Answer:
    """What a receiver answered: status, headers, and at most the first few KB of the body."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


class _Attempt:
    """The connection an attempt is using, so the watchdog can shut it."""

    def __init__(self) -> None:
        self.connection: http.client.HTTPConnection | None = None

    def abort(self) -> None:
        sock = getattr(self.connection, "sock", None)
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)


class _StaleConnection(Exception):
    """A reused keep-alive connection that the receiver had closed: try once more on a new one."""


def post(url: str, *, body: bytes, headers: dict[str, str], deadline: Deadline) -> Answer:
    """POST ``body`` to ``url`` and return the answer, whatever its status.

    Raises BlockedAddress (a PermanentError) for an internal address, Unreachable when
    nothing was sent, DeadlineExceeded when ``deadline`` passed first.
    """
    scheme, host, port, target = _parts(url)
    attempt = _Attempt()
    with enforced(deadline, attempt.abort):
        for fresh in (False, True):
            attempt.connection, reused = _connection(scheme, host, port, deadline, fresh=fresh)
            try:
                return _exchange(attempt.connection, target, body, headers, deadline, reused=reused)
            except _StaleConnection:
                _forget(scheme, host, port)
            except BaseException:
                _forget(scheme, host, port)
                raise
    raise AssertionError("a fresh connection is never stale")  # pragma: no cover


def _exchange(
    conn: http.client.HTTPConnection,
    target: str,
    body: bytes,
    headers: dict,
    deadline: Deadline,
    *,
    reused: bool,
) -> Answer:
    try:
        if conn.sock is not None:
            conn.sock.settimeout(max(deadline.remaining(), 0.001))
        conn.request("POST", target, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read(eventhub_settings.WEBHOOK_MAX_RESPONSE_BYTES)
        complete = response.isclosed()
    except _STALE as exc:
        if reused and not deadline.passed():
            raise _StaleConnection() from None
        raise _failure(exc, conn, deadline) from None
    except (OSError, http.client.HTTPException) as exc:
        raise _failure(exc, conn, deadline) from None
    if deadline.passed():  # the watchdog cut the body short: the answer is not complete
        raise DeadlineExceeded(f"no complete answer within the attempt's deadline (status {response.status})")
    if not complete or response.will_close:
        conn.close()  # unread bytes left, or the receiver will close: never reuse it
    return Answer(status=response.status, headers=response.headers, body=data)


def _failure(exc: BaseException, conn: http.client.HTTPConnection, deadline: Deadline) -> DestinationError:
    if deadline.passed():
        return DeadlineExceeded(f"no complete answer within the attempt's deadline ({_describe(exc)})")
    if conn.sock is None:
        return Unreachable(_describe(exc))
    return DestinationError(_describe(exc))


def _connection(scheme: str, host: str, port: int, deadline: Deadline, *, fresh: bool):
    """This thread's connection to the origin (new when ``fresh``), and whether it was reused."""
    pool: dict = _local.__dict__.setdefault("connections", {})
    key = (scheme, host, port, tuple(eventhub_settings.WEBHOOK_ALLOWED_NETWORKS))
    conn = None if fresh else pool.get(key)
    reused = conn is not None and conn.sock is not None
    if conn is None:
        if scheme == "https":
            conn = http.client.HTTPSConnection(host, port, context=_tls_context())
        else:
            conn = http.client.HTTPConnection(host, port)
        pool[key] = conn
    conn.timeout = max(deadline.remaining(), 0.001)
    conn._create_connection = lambda address, timeout=None, source_address=None: _open(host, port, deadline)
    return conn, reused


def _open(host: str, port: int, deadline: Deadline) -> socket.socket:
    """A socket connected to one of ``host``'s addresses, each checked before it is tried."""
    try:
        candidates = addresses.resolve_checked(host, port, timeout=deadline.remaining())
    except addresses.ResolveFailed as exc:
        raise Unreachable(str(exc)) from None
    error: OSError | None = None
    for family, sockaddr in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(deadline.remaining(), 0.001))
            sock.connect(sockaddr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise Unreachable(f"could not connect to {host}:{port}: {_describe(error)}")


def _forget(scheme: str, host: str, port: int) -> None:
    pool: dict = _local.__dict__.get("connections", {})
    for key in [k for k in pool if k[:3] == (scheme, host, port)]:
        pool.pop(key).close()


def _parts(url: str) -> tuple[str, str, int, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PermanentError(f"Not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, target


def _describe(exc: Any) -> str:
    if exc is None:
        return "no address to try"
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, DestinationError) else f"{type(exc).__name__}: {text}"
