"""A process on the embedded broker finishes its deliveries at exit, or hands them back to the relay.

The processes are real: ``manage.py shell -c`` emits, as the README's one-liner does,
and exits; then ``manage.py eventhub_relay --once`` sends what it handed back.
"""

import pytest

from eventhub.models import Attempt, Delivery
from eventhub.worker.handback import HANDED_BACK
from tests.support import factories
from tests.support.process import command_env, run_manage
from tests.testapp.models import Effect, Switch

pytestmark = pytest.mark.django_db(transaction=True)


def shell(code: str, **env: str):
    """``manage.py shell -c code`` on the embedded broker (no BROKER_URL), on this test's database."""
    done = run_manage("shell", "-c", code, env=command_env(BROKER_URL="", **env), timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_an_emit_from_manage_py_shell_is_delivered_before_the_shell_exits():
    route = factories.route(factories.event_type("invoice.requested"), "testapp.slow")

    shell("from eventhub import emit; emit('invoice.requested', data={'sleep': 1.5})")

    delivery = Delivery.objects.get(route=route)
    assert (delivery.status, delivery.attempts) == ("succeeded", 1)
    assert Effect.objects.filter(event_id=str(delivery.event_id), handler="testapp.slow").count() == 1


def test_what_cannot_finish_at_exit_is_handed_back_and_the_relay_delivers_it():
    invoices = factories.event_type("invoice.requested")
    # A retry waiting out a minute's backoff, and a handler still running when the wait is over.
    waiting = factories.route(invoices, "testapp.flaky", min_backoff_ms=60_000, max_backoff_ms=60_000)
    running = factories.route(invoices, "testapp.slow")
    Switch.objects.create(name="broken", on=True)

    done = shell(
        "from eventhub import emit; emit('invoice.requested', data={'sleep': 4})",
        EVENTHUB_EMBEDDED_EXIT_SECONDS="1",
    )

    assert "handed back to the outbox relay" in done.stderr
    retried, cut_off = Delivery.objects.get(route=waiting), Delivery.objects.get(route=running)
    assert (retried.status, retried.attempts) == ("pending", 1)
    assert (cut_off.status, cut_off.attempts) == ("pending", 1)
    assert list(cut_off.attempt_log.values_list("number", "succeeded", "error")) == [(1, False, HANDED_BACK)]

    Switch.objects.filter(name="broken").update(on=False)
    embedded = command_env(BROKER_URL="")
    relayed = run_manage("eventhub_relay", "--once", "--after", "0", env=embedded, timeout=90)
    assert "relayed 2 pending deliveries" in relayed.stdout, relayed.stdout + relayed.stderr

    assert set(Delivery.objects.values_list("status", flat=True)) == {"succeeded"}
    assert Attempt.objects.filter(delivery=retried, succeeded=True).count() == 1
    assert Effect.objects.filter(handler="testapp.slow").count() == 1
