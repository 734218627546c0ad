"""eventhub_worker --prometheus: Dramatiq's own metrics reach /metrics beside eventhub's."""

import itertools
import signal
import socket
import subprocess
import urllib.request

import pytest
from django.db import connection
from django.urls import reverse

from eventhub import emit
from eventhub.models import Attempt, Delivery
from tests.support import factories
from tests.support.process import command_env, start_worker
from tests.support.waiting import wait_for
from tests.testapp.models import Switch

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.rabbitmq]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_worker_metrics_are_served_by_dramatiq_and_by_metrics(
    rabbitmq_broker, queue_name, tmp_path, admin_client, monkeypatch, settings
):
    settings.EVENTHUB = {**settings.EVENTHUB, "METRICS_ALLOWED_NETWORKS": ["127.0.0.0/8"]}
    route = factories.route(factories.event_type("order.paid"), "testapp.record", queue=queue_name)
    port = free_port()
    env = command_env(
        dramatiq_prom_db=str(tmp_path), dramatiq_prom_port=str(port), dramatiq_prom_host="127.0.0.1"
    )
    worker = start_worker(
        queue_name,
        "--prometheus",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # One at a time: a route's first deliveries on a 2-thread worker run one at a time until it is
        # known to be fast (eventhub.worker.share); the others would be sent back, each one more message.
        done = Delivery.objects.filter(route=route, status="succeeded")
        for n in range(3):
            emit("order.paid", data={"n": n})
            wait_for(lambda n=n: done.count() == n + 1, timeout=30)
        exposed = wait_for(lambda: _scrape(f"http://127.0.0.1:{port}/"), timeout=15)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=30)
    assert (
        f'dramatiq_messages_total{{actor_name="eventhub.deliver",queue_name="{queue_name}"}} 3.0' in exposed
    )

    monkeypatch.setenv("dramatiq_prom_db", str(tmp_path))
    page = admin_client.get(reverse("eventhub:metrics")).content.decode()
    assert f'dramatiq_messages_total{{actor_name="eventhub.deliver",queue_name="{queue_name}"}} 3.0' in page
    assert "eventhub_deliveries_window" in page


def _scrape(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            body = response.read().decode()
    except OSError:
        return ""
    return body if "dramatiq_messages_total{" in body else ""


def test_a_worker_process_reloads_its_route_copy_in_a_background_thread_until_it_stops(settings):
    import threading

    from eventhub.outbox import route_table
    from eventhub.worker.lifecycle import FreshRouteCopy, lifecycle_middleware

    settings.EVENTHUB = {**settings.EVENTHUB, "ROUTES_REFRESH_SECONDS": 0.1}
    middleware = next(m for m in lifecycle_middleware() if isinstance(m, FreshRouteCopy))
    route = factories.route(factories.event_type("fresh.copy"), "tests.record")
    middleware.after_worker_boot(None, None)
    try:
        assert route_table.route(route.pk).target == "tests.record"
        # Another process edits the route (a queryset update sends no signal to this one).
        type(route).objects.filter(pk=route.pk).update(target="tests.other")
        wait_for(lambda: route_table._cache.value.routes[route.pk].target == "tests.other", timeout=5)
        assert any(t.name == "eventhub-refresh-routes" for t in threading.enumerate())
    finally:
        middleware.before_worker_shutdown(None, None)
    assert not any(t.name == "eventhub-refresh-routes" for t in threading.enumerate())


def test_a_worker_runs_a_retry_soon_after_its_short_backoff(rabbitmq_broker, queue_name):
    """A retry waits in Dramatiq's delay queue: the worker's consumer must hand it on when it is due,
    not when it next wakes (Dramatiq's default: after a second idle, which every retry here waited).

    The pace of a failing route (FAILING_ROUTE_STARTS_PER_SECOND, 5 by default) would send each retry
    back once more, through the delay queue again, and the gaps would measure that pace, not the
    consumer: it is lifted here (a loaded CI machine saw a gap of 1.05 s with it)."""
    Switch.objects.create(name="broken", on=True)
    route = factories.route(
        factories.event_type("order.paid"),
        "testapp.flaky",
        queue=queue_name,
        max_attempts=4,
        min_backoff_ms=20,
        max_backoff_ms=50,
    )
    worker = start_worker(
        queue_name,
        env=command_env(EVENTHUB_FAILING_ROUTE_STARTS_PER_SECOND="1000"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        emit("order.paid", data={})
        delivery = wait_for(lambda: Delivery.objects.filter(route=route, status="dead").first(), timeout=60)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    attempts = list(Attempt.objects.filter(delivery=delivery).order_by("number"))
    assert [a.number for a in attempts] == [1, 2, 3, 4]
    gaps = [(b.started_at - a.finished_at).total_seconds() for a, b in itertools.pairwise(attempts)]
    assert max(gaps) < 0.6, f"retries started {gaps} s after the attempt before them (backoff at most 0.05 s)"


def _prepared_worker_connections() -> int:
    """Other sessions on this database whose last statement was the worker's claim and outcome write."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND query LIKE 'WITH attempts AS (%%'"
        )
        return cursor.fetchone()[0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the prepared statement is PostgreSQL's")
def test_each_worker_thread_connects_and_prepares_its_write_before_its_first_delivery(queue_name):
    """A worker started under traffic must not have all its threads connect and prepare at once on
    their first deliveries (that made the first deliveries after a start wait tens of milliseconds)."""
    before = _prepared_worker_connections()  # sessions other tests' threads may have left open
    worker = start_worker(queue_name, threads=3, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # No event emitted: only the threads' start can have run the statement.
        wait_for(lambda: _prepared_worker_connections() >= before + 3, timeout=60)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    wait_for(lambda: _prepared_worker_connections() <= before, timeout=10)


def test_a_worker_thread_starts_when_its_database_is_unreachable(monkeypatch, caplog):
    from django.db import OperationalError

    from eventhub.worker import lifecycle

    def unreachable() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(lifecycle.writes, "prepare_connection", unreachable)
    monkeypatch.setattr(lifecycle.sqlbatch, "supported", lambda: True)
    lifecycle.ReadyConnections().after_worker_thread_boot(None, None)  # must not raise
    assert "could not prepare its database connection: connection refused" in caplog.text
