"""The dashboard in a real browser: headless Chromium through Playwright, deliveries through RabbitMQ.

Needs Debian's chromium (/usr/bin/chromium) and the playwright package; skipped
without them. Screenshots go to artifacts/screenshots/.
"""

import threading

import pytest
from django.contrib.auth.models import User

from eventhub import emit
from tests.support import factories
from tests.support.browser import MARKS, SCREENSHOTS, log_in, playwright_sync

pytestmark = [*MARKS, pytest.mark.rabbitmq]


def create_route_in_admin(page, base: str, *, name: str, event_type: str, target: str, queue: str) -> None:
    page.goto(base + "/admin/eventhub/route/add/")
    page.fill("#id_name", name)
    page.select_option("#id_event_type", label=event_type)
    page.select_option("#id_handler", target)  # a handler route: its handler is chosen from a list
    page.fill("#id_queue", queue)
    page.fill("#id_max_attempts", "2")
    page.fill("#id_min_backoff_ms", "10")
    page.fill("#id_max_backoff_ms", "20")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")


def test_operator_watches_deliveries_live_and_replays_a_failure(
    page, live_server, rabbitmq_broker, queue_name, run_worker, handler
):
    expect = playwright_sync.expect
    User.objects.create_superuser("operator", "op@example.com", "a-long-test-password")
    factories.event_type("order.paid")
    broken = threading.Event()

    def billing(envelope):
        if broken.is_set():
            raise RuntimeError("card declined by the payment provider")

    calls, handler_name = handler(billing)
    run_worker([queue_name])
    base = live_server.url

    log_in(page, base)
    create_route_in_admin(
        page, base, name="billing", event_type="order.paid", target=handler_name, queue=queue_name
    )

    page.goto(base + "/eventhub/")
    page.evaluate("window.__notReloaded = true")
    emit("order.paid", data={"order_id": 1}, subject="order/1")
    first = page.locator("#deliveries tr", has_text="order/1")
    expect(first.locator(".status")).to_have_text("succeeded")

    broken.set()
    emit("order.paid", data={"order_id": 2}, subject="order/2")
    failed = page.locator("#problems tr", has_text="order/2")
    expect(failed.locator(".status")).to_have_text("dead")
    expect(failed.locator(".error")).to_contain_text("RuntimeError: card declined by the payment provider")
    expect(failed.locator("td.num").first).to_have_text("2")
    assert page.evaluate("window.__notReloaded") is True  # the rows arrived without a reload
    page.screenshot(path=str(SCREENSHOTS / "dashboard-failure.png"), full_page=True)

    broken.clear()
    failed.get_by_role("button", name="Replay").click()
    expect(page.locator(".messages")).to_contain_text("was sent again")
    replayed = page.locator("#deliveries tr", has_text="order/2")
    expect(replayed.locator(".status")).to_have_text("succeeded")
    expect(page.locator("#problems tr", has_text="order/2")).to_have_count(0)
    page.screenshot(path=str(SCREENSHOTS / "dashboard-replayed.png"), full_page=True)

    replayed.get_by_role("link", name="order.paid").click()
    page.wait_for_url("**/eventhub/events/**")
    attempts = page.locator("section.card table tbody tr")
    expect(attempts).to_have_count(3)
    expect(attempts.nth(0)).to_contain_text("card declined")
    expect(attempts.nth(2)).to_contain_text("succeeded")
    page.screenshot(path=str(SCREENSHOTS / "event-page.png"), full_page=True)
    assert len(calls) == 4  # order/1 once, order/2 twice failing and once after the replay


def test_non_staff_user_cannot_open_the_dashboard(page, live_server):
    User.objects.create_user("customer", password="a-long-test-password")
    page.goto(live_server.url + "/eventhub/")
    page.fill("#id_username", "customer")
    page.fill("#id_password", "a-long-test-password")
    page.click("input[type=submit]")
    playwright_sync.expect(page.locator(".errornote")).to_contain_text("staff account")
    assert "/admin/login/" in page.url


def test_operator_tries_a_route_before_saving_it(page, live_server, stub_broker, webhook_receiver):
    """Route page: an unsaved filter's matches, a transform preview, a test event through the webhook."""
    User.objects.create_superuser("operator", "op@example.com", "a-long-test-password")
    hook = webhook_receiver(reply=b"thanks")
    paid = factories.event_type("order.paid")
    for amount in (5, 50, 500):
        emit("order.paid", data={"order_id": amount, "amount": amount}, subject=f"order/{amount}")
    route = factories.route(paid, hook.url, destination_kind="webhook")
    path = f"/admin/eventhub/route/{route.pk}/change/"
    log_in(page, live_server.url, path)

    page.fill("#id_filter", '{"data": {"amount": [{"numeric": [">", 10]}]}}')  # typed, not saved
    page.fill("#id_ordering_key", "{data.order_id}")
    page.click("#try-match")
    page.wait_for_selector("#try-match-result:has-text('2 of the last 3 events match')")
    assert "key: 500" in page.inner_text("#try-match-result")

    page.fill("#id_transform", '{"body": "data", "fields": {"id": "order_id"}}')
    page.click("#try-transform")
    page.wait_for_selector("#try-transform-result:has-text('\"id\": 500')")

    page.click("#try-send")
    page.wait_for_selector("#try-send-result:has-text('succeeded')")
    assert "HTTP 200" in page.inner_text("#try-send-result") and "thanks" in page.inner_text(
        "#try-send-result"
    )
    assert len(hook.requests) == 1
    page.screenshot(path=str(SCREENSHOTS / "route-try.png"), full_page=True)
