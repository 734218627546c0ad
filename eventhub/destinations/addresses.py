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
import socket
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from eventhub.conf import eventhub_settings
from eventhub.destinations.errors import PermanentError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
_resolvers: dict[int, ThreadPoolExecutor] = {}


def _resolver() -> ThreadPoolExecutor:
    # getaddrinfo() has no timeout of its own: it runs in these threads so a caller can stop waiting
    # for it. One pool per process: a pool inherited across fork() has no threads behind it.
    pid = os.getpid()
    if pid not in _resolvers:
        _resolvers.clear()
        _resolvers[pid] = ThreadPoolExecutor(max_workers=4, thread_name_prefix="eventhub-resolve")
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
    future = _resolver().submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=timeout)
    except FutureTimeout:
        raise ResolveFailed(f"resolving {host} took longer than {timeout:.1f} s") from None
    except socket.gaierror as exc:
        raise ResolveFailed(f"{host} does not resolve: {exc.strerror or exc}") from None
    found = []
    for family, _type, _proto, _name, sockaddr in infos:
        check_address(ipaddress.ip_address(sockaddr[0].split("%")[0]), host=host)
        found.append((family, sockaddr))
    return found
