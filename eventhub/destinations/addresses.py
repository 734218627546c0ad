"""Which network addresses a webhook may reach: public ones, and those an operator allowed.

Route targets are typed by operators, and ``consul://`` targets take their addresses from
whoever controls the Consul catalog: neither may make a worker POST to the machine itself,
the private network or a cloud metadata service (169.254.169.254). Every address a host
name resolves to is checked right before connecting (so DNS cannot swap a checked name for
an internal address later); loopback, private, link-local, multicast and every other
non-global address is refused unless a network of ``EVENTHUB["WEBHOOK_ALLOWED_NETWORKS"]``
holds it.
"""

import ipaddress
import os
import queue
import socket
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from eventhub.conf import eventhub_settings
from eventhub.destinations.errors import PermanentError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
RESOLVER_THREADS = 4


class _Resolver:
    """getaddrinfo() in a few daemon threads: it has no timeout of its own, so a caller stops waiting
    at its deadline, and a lookup that hangs never holds up the process's exit (the threads of a
    ThreadPoolExecutor are joined at exit: a worker told to stop waited for the DNS timeout)."""

    def __init__(self, threads: int) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        for n in range(threads):
            threading.Thread(target=self._serve, name=f"eventhub-resolve-{n}", daemon=True).start()

    def submit(self, host: str, port: int) -> Future:
        future: Future = Future()
        self._jobs.put((future, host, port))
        return future

    def _serve(self) -> None:
        while True:
            future, host, port = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller waiting on the future
                future.set_exception(exc)


_resolvers: dict[int, _Resolver] = {}


def _resolver() -> _Resolver:
    # One per process: threads do not survive fork(), so a child starts its own. (No lock, which a
    # child could inherit held: two threads racing here the first time make one spare set of threads.)
    pid = os.getpid()
    if pid not in _resolvers:
        _resolvers.clear()
        _resolvers[pid] = _Resolver(RESOLVER_THREADS)
    return _resolvers[pid]


class BlockedAddress(PermanentError):
    """A webhook target that is, or resolves to, an address webhooks may not reach."""


class ResolveFailed(OSError):
    """The host name did not resolve (in time)."""


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks of ``EVENTHUB["WEBHOOK_ALLOWED_NETWORKS"]``."""
    return [ipaddress.ip_network(n, strict=False) for n in eventhub_settings.WEBHOOK_ALLOWED_NETWORKS]


def why_blocked(address: IPAddress) -> str:
    """What kind of internal address ``address`` is; empty when webhooks may reach it."""
    if any(address in network for network in allowed_networks()):
        return ""
    mapped = getattr(address, "ipv4_mapped", None)
    checked = mapped or address
    for kind in ("unspecified", "loopback", "link_local", "multicast", "private", "reserved"):
        if getattr(checked, f"is_{kind}"):
            return kind.replace("_", "-")
    return "" if checked.is_global else "not globally routable"


def check_address(address: IPAddress, *, host: str) -> None:
    """Raise BlockedAddress when webhooks may not reach ``address`` (which ``host`` names)."""
    kind = why_blocked(address)
    if kind:
        named = f"{host} resolves to {address}" if host != str(address) else f"{address}"
        raise BlockedAddress(
            f"{named}, a {kind} address: webhooks may not reach it unless "
            "EVENTHUB['WEBHOOK_ALLOWED_NETWORKS'] names its network."
        )


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is one (brackets allowed), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_host(host: str) -> None:
    """What can be checked without the network: a literal address, or a name for this machine."""
    address = literal_address(host)
    if address is not None:
        check_address(address, host=host)
    elif host.lower().rstrip(".") in LOCAL_NAMES or host.lower().rstrip(".").endswith(".localhost"):
        check_address(ipaddress.ip_address("127.0.0.1"), host=host)


def resolve_checked(host: str, port: int, *, timeout: float) -> list[tuple]:
    """The socket addresses of ``host``, every one checked; BlockedAddress if any is internal."""
    address = literal_address(host)
    if address is not None:
        check_address(address, host=host)
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        return [(family, (str(address), port))]
    future = _resolver().submit(host, port)
    try:
        infos = future.result(timeout=timeout)
    except FutureTimeout:
        future.cancel()  # not started yet (the threads are all busy with lookups that hang): never will
        raise ResolveFailed(f"resolving {host} took longer than {timeout:.1f} s") from None
    except socket.gaierror as exc:
        raise ResolveFailed(f"{host} does not resolve: {exc.strerror or exc}") from None
    found = []
    for family, _type, _proto, _name, sockaddr in infos:
        check_address(ipaddress.ip_address(sockaddr[0].split("%")[0]), host=host)
        found.append((family, sockaddr))
    return found
