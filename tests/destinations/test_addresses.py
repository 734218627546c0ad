"""Host name lookups for webhooks: a lookup that hangs costs the caller its deadline, and nothing more."""

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from eventhub.destinations import addresses

ROOT = Path(__file__).resolve().parents[2]


class HangingDns:
    """getaddrinfo() that hangs until released, as with an unresponsive DNS server; counts its calls."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.calls: list[str] = []

    def __call__(self, host, *args, **kwargs):
        self.calls.append(host)
        self.released.wait(30)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")


@pytest.fixture
def hanging_dns(monkeypatch):
    dns = HangingDns()
    monkeypatch.setattr(socket, "getaddrinfo", dns)
    yield dns
    dns.released.set()


def test_a_lookup_that_hangs_fails_at_the_callers_deadline(hanging_dns):
    started = time.monotonic()
    with pytest.raises(addresses.ResolveFailed, match="resolving hangs.example took longer than 0.3 s"):
        addresses.resolve_checked("hangs.example", 443, timeout=0.3)
    assert time.monotonic() - started < 2.0


def test_lookups_beyond_the_hanging_ones_fail_in_time_and_are_dropped(hanging_dns):
    # Every resolver thread is taken by a lookup that hangs: the next callers still get their answer
    # at their deadline, and their lookups are dropped rather than run later for nobody.
    time.sleep(0.1)  # the previous test's lookup, released, frees its thread
    names = [f"hangs-{n}.example" for n in range(addresses.RESOLVER_THREADS + 2)]
    for name in names:
        started = time.monotonic()
        with pytest.raises(addresses.ResolveFailed, match="took longer than"):
            addresses.resolve_checked(name, 443, timeout=0.2)
        assert time.monotonic() - started < 2.0
    hanging_dns.released.set()
    time.sleep(0.3)  # the threads come free and find the last two lookups cancelled
    assert sorted(hanging_dns.calls) == sorted(names[: addresses.RESOLVER_THREADS])


def test_a_lookup_that_hangs_does_not_hold_up_the_process_exit():
    # A worker told to stop must not wait for the DNS timeout: run in a process of its own.
    script = textwrap.dedent(
        """
        import socket, time
        import django

        django.setup()
        from eventhub.destinations import addresses

        socket.getaddrinfo = lambda *args, **kwargs: time.sleep(60)
        try:
            addresses.resolve_checked("hangs.example", 443, timeout=0.2)
        except addresses.ResolveFailed as exc:
            print("refused:", exc)
        """
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert "refused: resolving hangs.example took longer than 0.2 s" in done.stdout
    assert time.monotonic() - started < 15  # Django's start-up included; the lookup would hang 60 s
