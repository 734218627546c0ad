"""eventhub.outbox.background: emit returns at commit; a sender thread publishes and marks queued."""

import logging
import threading
import time

import pytest

from eventhub import emit
from eventhub.models import Delivery
from eventhub.outbox import background, send
from tests.support import factories
from tests.support.process import command_env, run_manage
from tests.support.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def held_sender(monkeypatch):
    """The sender thread's sends wait until the test releases them."""
    release = threading.Event()
    real = background.start_send

    def held(items):
        release.wait(10)
        return real(items)

    monkeypatch.setattr(background, "start_send", held)
    yield release
    release.set()
    background.flush()


def test_emit_returns_before_the_confirm_and_flush_waits_for_it(rabbitmq_broker, queue_name, held_sender):
    factories.route(factories.event_type("order.paid"), "h", queue=queue_name)
    emit("order.paid", data={"order_id": 1})
    assert list(Delivery.objects.values_list("status", flat=True)) == ["pending"]
    assert background.flush(timeout=0.2) is False  # still held: flush says so rather than lying
    held_sender.set()
    assert background.flush()
    assert list(Delivery.objects.values_list("status", flat=True)) == ["queued"]


def test_without_background_sending_emit_returns_after_the_confirm(rabbitmq_broker, queue_name, settings):
    settings.EVENTHUB = {**settings.EVENTHUB, "SEND_IN_BACKGROUND": False}
    factories.route(factories.event_type("order.paid"), "h", queue=queue_name)
    emit("order.paid", data={"order_id": 1})
    assert list(Delivery.objects.values_list("status", flat=True)) == ["queued"]


def test_many_single_emits_go_out_in_few_batches(rabbitmq_broker, queue_name, monkeypatch):
    factories.route(factories.event_type("order.paid"), "h", queue=queue_name)
    batches = []
    real = background.start_send
    monkeypatch.setattr(background, "start_send", lambda items: batches.append(len(items)) or real(items))
    for i in range(200):
        emit("order.paid", data={"order_id": i})
    assert background.flush()
    assert sum(batches) == 200 and len(batches) < 200  # what gathered meanwhile went as one batch
    assert set(Delivery.objects.values_list("status", flat=True)) == {"queued"}


def test_emits_close_together_are_gathered_and_a_lone_emit_goes_out_at_once(
    rabbitmq_broker, queue_name, monkeypatch
):
    """Single emits handed over less than GATHER_GAP_SECONDS apart share a publish; one after a pause
    is published without waiting for company."""
    # Wide, so that the test does not depend on how fast an emit is (SQLite's commits are slower):
    # emits up to 50 ms apart are gathered, for 0.3 s.
    monkeypatch.setattr(background, "GATHER_GAP_SECONDS", 0.05)
    monkeypatch.setattr(background, "GATHER_SECONDS", 0.3)
    factories.route(factories.event_type("order.paid"), "h", queue=queue_name)
    published = []
    real = background.start_send
    monkeypatch.setattr(
        background,
        "start_send",
        lambda items: published.append((time.monotonic(), len(items))) or real(items),
    )
    spaced = []
    for i in range(3):  # further apart than GATHER_GAP_SECONDS: each goes alone, at once
        time.sleep(background.GATHER_GAP_SECONDS * 4)
        spaced.append(time.monotonic())
        emit("order.paid", data={"order_id": i})
        wait_for(lambda i=i: len(published) == i + 1, timeout=10)
    assert [count for _, count in published] == [1, 1, 1]
    # Published without waiting out the gathering time.
    assert all(
        at - emitted < background.GATHER_SECONDS for (at, _), emitted in zip(published, spaced, strict=True)
    )
    for i in range(20):  # back to back: the sender waits GATHER_SECONDS and takes them together
        emit("order.paid", data={"order_id": 100 + i})
    assert background.flush()
    gathered = [count for _, count in published[3:]]
    # The first few may still go alone (a first emit of a test is slow: more than the gap apart).
    assert sum(gathered) == 20 and len(gathered) <= 5 and max(gathered) >= 10, gathered
    assert set(Delivery.objects.values_list("status", flat=True)) == {"queued"}


def test_past_the_hand_over_limit_deliveries_stay_pending_for_the_relay(
    rabbitmq_broker, queue_name, held_sender, monkeypatch, caplog
):
    monkeypatch.setattr(background, "MAX_WAITING", 3)
    factories.route(factories.event_type("order.paid"), "h", queue=queue_name)
    with caplog.at_level(logging.WARNING, logger="eventhub.outbox.background"):
        emit("order.paid", data={"order_id": 0})
        # The publisher takes the first one and is held sending it; only then is the hand-over
        # queue's length up to the emits (a publisher slow to wake took several in its first batch).
        wait_for(lambda: not background._sender.waiting, timeout=10, what="the first emit taken")
        for i in range(1, 8):
            emit("order.paid", data={"order_id": i})
    held_sender.set()
    assert background.flush()
    statuses = list(Delivery.objects.order_by("pk").values_list("status", flat=True))
    # One being sent, MAX_WAITING waiting: sent; the 4 past the limit are left for the relay.
    assert statuses == ["queued"] * 4 + ["pending"] * 4
    assert sum("stay pending for the relay" in r.message for r in caplog.records) == 1  # said once


def test_a_short_process_sends_what_it_emitted_before_exiting(rabbitmq_broker, queue_name):
    factories.route(factories.event_type("order.paid"), "h", queue=queue_name)
    code = "from eventhub import emit; emit('order.paid', data={'order_id': 7})"
    result = run_manage("shell", "-c", code, env=command_env())
    assert result.returncode == 0, result.stderr
    assert list(Delivery.objects.values_list("status", flat=True)) == ["queued"]


def test_the_next_batch_is_published_while_the_last_one_is_being_marked_queued(
    rabbitmq_broker, queue_name, monkeypatch
):
    """Marking waits for the database; the sender must not make new messages wait with it."""
    from tests.conftest import RABBITMQ_URL

    factories.route(factories.event_type("order.paid"), "h", queue=queue_name)
    release, marking = threading.Event(), threading.Event()
    real = send.mark_queued

    def slow_mark(ids):
        marking.set()
        release.wait(10)
        real(ids)

    monkeypatch.setattr(send, "mark_queued", slow_mark)
    emit("order.paid", data={"order_id": 1})
    assert marking.wait(10)  # the first batch is confirmed; its mark is held
    emit("order.paid", data={"order_id": 2})
    try:
        wait_for(lambda: ready_messages(RABBITMQ_URL, queue_name) == 2, timeout=5, what="2nd published")
        assert background.flush(timeout=0.2) is False  # not done until marked
    finally:
        release.set()
    assert background.flush()
    assert list(Delivery.objects.values_list("status", flat=True)) == ["queued", "queued"]


def ready_messages(url: str, queue: str) -> int:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


def test_single_emits_at_a_steady_pace_are_marked_queued_in_few_writes(
    rabbitmq_broker, queue_name, monkeypatch
):
    """Each emit is published as soon as it comes; marking each alone was a second write per emit."""
    factories.route(factories.event_type("order.paid"), "h", queue=queue_name)
    published, marks = [], []
    real_send, real_mark = background.start_send, send.mark_queued
    monkeypatch.setattr(
        background, "start_send", lambda items: published.append(len(items)) or real_send(items)
    )
    monkeypatch.setattr(send, "mark_queued", lambda ids: marks.append(len(ids)) or real_mark(ids))
    for i in range(40):
        emit("order.paid", data={"order_id": i})
        time.sleep(0.005)  # slower than a publish: each goes out alone
    assert background.flush()
    assert set(Delivery.objects.values_list("status", flat=True)) == {"queued"}
    assert sum(marks) == 40 and len(published) > 2 * len(marks)
