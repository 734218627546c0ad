"""Webhooks cannot reach inside (issue 14, item 3): no redirects, internal addresses refused
after DNS, capped reads, one deadline per attempt, nothing taken from the environment.

Receivers are real servers on loopback. tests/settings.py allows loopback for the rest of the
suite; the tests here that are about internal addresses take that allowance away.
"""

import contextlib
import threading
import time

import pytest
from django.conf import settings
from django.test import override_settings

from eventhub import emit
from eventhub.destinations import HttpStatusError, safe_http, webhook
from eventhub.destinations.watchdog import Deadline
from eventhub.worker.deliver import DeliveryFailed, deliver
from tests.support import factories
from tests.support.http_receivers import RawServer, Receiver, read_request

pytestmark = pytest.mark.django_db


def no_internal_networks(**more):
    return override_settings(EVENTHUB={**settings.EVENTHUB, "WEBHOOK_ALLOWED_NETWORKS": [], **more})


def with_settings(**values):
    return override_settings(EVENTHUB={**settings.EVENTHUB, **values})


@pytest.fixture
def servers():
    started = []

    def start(serve=None, **kwargs):
        server = RawServer(serve) if serve is not None else Receiver(**kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def run_once(target: str, **route_fields):
    """Emit one event to a webhook route at ``target`` and run its delivery once; the delivery after."""
    factories.route(factories.event_type("order.paid"), target, destination_kind="webhook", **route_fields)
    delivery = emit("order.paid", data={"order_id": 1}).deliveries.get()
    with contextlib.suppress(DeliveryFailed):
        deliver(delivery.pk)
    delivery.refresh_from_db()
    return delivery


def answer(status_line: bytes, headers: bytes = b"", body: bytes = b""):
    def serve(conn):
        conn.sendall(status_line + b"\r\n" + headers + b"content-length: %d\r\n\r\n" % len(body) + body)

    return serve


@pytest.mark.parametrize("status", [b"302 Found", b"307 Temporary Redirect"])
def test_a_redirect_is_not_followed(stub_broker, servers, status):
    internal = servers(status=500, reply=b"internal secret: db password is hunter2")
    outside = servers(answer(b"HTTP/1.1 " + status, b"location: " + internal.url.encode() + b"/admin\r\n"))

    delivery = run_once(outside.url + "/hook", max_attempts=1)

    assert delivery.status == "dead"
    assert "answered " + status[:3].decode() + " (redirects are not followed" in delivery.last_error
    assert internal.requests == []  # neither the body nor the signature went there
    assert "hunter2" not in delivery.last_error


@pytest.mark.parametrize(
    ("host", "kind"), [("localhost", "loopback"), ("127.0.0.1", "loopback"), ("[::1]", "loopback")]
)
def test_internal_addresses_are_refused_after_resolution(stub_broker, servers, host, kind):
    receiver = servers(host="::1" if ":" in host else "127.0.0.1")
    with no_internal_networks():
        delivery = run_once(f"http://{host}:{receiver.port}/hook", max_attempts=3)
    assert delivery.status == "dead"  # no retry can help
    assert f"a {kind} address: webhooks may not reach it" in delivery.last_error
    assert receiver.requests == []


def test_the_metadata_service_is_refused_without_connecting(stub_broker):
    with no_internal_networks():
        started = time.monotonic()
        delivery = run_once("http://169.254.169.254/latest/meta-data/", max_attempts=3)
    assert delivery.status == "dead" and "a link-local address" in delivery.last_error
    assert time.monotonic() - started < 1


def test_only_a_few_kb_of_an_answer_are_read(stub_broker, servers):
    sent = []

    def flood(conn):
        conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 50000000\r\n\r\n")
        chunk = b"x" * 65536
        total = 0
        try:
            while total < 50_000_000:
                conn.sendall(chunk)
                total += len(chunk)
        finally:
            sent.append(total)

    server = servers(flood)
    started = time.monotonic()
    delivery = run_once(server.url, max_attempts=1)
    assert time.monotonic() - started < 3
    assert delivery.status == "dead" and "answered 500: xxxx" in delivery.last_error
    assert len(delivery.last_error) < 700
    deadline = time.monotonic() + 5
    while not sent and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sent and sent[0] < 10_000_000  # the worker closed the connection instead of reading it all


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_dripping_receiver_is_cut_at_the_attempts_deadline(stub_broker, servers, where):
    def drip(conn):
        if where == "body":
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for _ in range(100):
            conn.sendall(b"x" if where == "body" else b"x-drip: 1\r\n")
            time.sleep(0.3)

    server = servers(drip)
    with with_settings(WEBHOOK_TIMEOUT_SECONDS=1.0):
        started = time.monotonic()
        delivery = run_once(server.url, max_attempts=1)
        took = time.monotonic() - started
    assert delivery.status == "dead" and "deadline" in delivery.last_error
    assert took < 2.5, took


def test_the_route_time_limit_shortens_the_deadline(stub_broker, servers):
    server = servers(lambda conn: time.sleep(5))
    started = time.monotonic()
    delivery = run_once(server.url, max_attempts=1, time_limit_ms=500)
    assert time.monotonic() - started < 2
    assert "deadline" in delivery.last_error


def test_proxy_variables_in_the_environment_are_ignored(stub_broker, servers, monkeypatch):
    proxy = servers(answer(b"HTTP/1.1 200 OK"))
    receiver = servers()
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy.url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    delivery = run_once(receiver.url + "/hook")
    assert delivery.status == "succeeded"
    assert len(receiver.requests) == 1 and proxy.connections == 0


def test_a_failed_answer_carries_its_status_and_retry_after(stub_broker, servers):
    server = servers(answer(b"HTTP/1.1 503 Service Unavailable", b"retry-after: 120\r\n", b"busy"))
    route = factories.route(factories.event_type("order.paid"), server.url, destination_kind="webhook")
    delivery = emit("order.paid", data={}).deliveries.get()
    with pytest.raises(HttpStatusError) as info:
        webhook.send(route=route, envelope=delivery.event.envelope, delivery=delivery)
    assert (info.value.status, info.value.retry_after) == (503, "120")
    assert str(info.value).endswith("answered 503: busy")


def test_keep_alive_connections_are_reused_by_a_thread(servers):
    def two_answers(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        read_request(conn)
        conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    server = servers(two_answers)
    safe_http._forget("http", "127.0.0.1", int(server.url.rsplit(":", 1)[1]))
    statuses = [
        safe_http.post(server.url, body=b"{}", headers={}, deadline=Deadline.after(5)).status
        for _ in range(2)
    ]
    assert statuses == [200, 204] and server.connections == 1


def test_a_stale_keep_alive_connection_is_replaced_once(servers):
    def one_answer_then_close(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")

    server = servers(one_answer_then_close)
    for _ in range(3):
        assert safe_http.post(server.url, body=b"{}", headers={}, deadline=Deadline.after(5)).status == 200
    assert server.connections == 3


def test_the_watchdog_serves_many_threads_at_once(servers):
    server = servers(lambda conn: time.sleep(3))
    errors = []

    def call():
        try:
            safe_http.post(server.url, body=b"{}", headers={}, deadline=Deadline.after(0.5))
        except safe_http.DeadlineExceeded as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 8 and time.monotonic() - started < 1.5
