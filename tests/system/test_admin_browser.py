"""The operators' pages in a real browser at 1400 x 1000: the admin's lists and the dashboard's route
figures fit, the route form follows its kind, failing routes stand out.

Headless Chromium through Playwright (tests/support/browser.py); screenshots go to
artifacts/screenshots/.
"""

from datetime import timedelta

from django.contrib.auth.models import User

from eventhub.models import EventType, Route
from shop.demo import load_demo
from tests.support import factories
from tests.support.browser import MARKS, PASSWORD, SCREENSHOTS, log_in, playwright_sync
from tests.support.factories import make_delivery

pytestmark = MARKS

# Whether a changelist's table is wider than its box (scrolled or cut off), and which headers end
# beyond the box's right edge.
OVERFLOW = """(selector) => {
  const box = document.querySelector(selector);
  const right = box.getBoundingClientRect().right;
  const hidden = [...box.querySelectorAll("thead th")]
    .filter((th) => th.getBoundingClientRect().right > right + 1).map((th) => th.textContent.trim());
  return {scroll: box.scrollWidth, client: box.clientWidth, hidden};
}"""
# Lines a cell's text takes.
LINES = """(cell) => {
  const range = document.createRange(); range.selectNodeContents(cell);
  return Math.round(range.getBoundingClientRect().height / parseFloat(getComputedStyle(cell).lineHeight));
}"""
# The gaps between the texts of a table's headers, left to right.
HEADER_GAPS = """(table) => {
  const boxes = [...table.querySelectorAll("thead th")].map((th) => {
    const text = document.createTreeWalker(th, NodeFilter.SHOW_TEXT, (node) =>
      node.textContent.trim() ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_SKIP).nextNode();
    const range = document.createRange();
    range.selectNodeContents(text);
    return range.getBoundingClientRect();
  });
  return boxes.slice(1).map((box, i) => box.left - boxes[i].right);
}"""


def operator() -> User:
    return User.objects.create_superuser("operator", "op@example.com", PASSWORD)


def test_the_routes_and_hooks_lists_fit_a_1400_px_screen(page, live_server):
    operator()
    load_demo()
    Route.objects.create(
        name="billing webhook for the ERP",
        event_type=EventType.objects.get(name="order.paid"),
        destination_kind="webhook",
        target="https://erp.example.com/integrations/eventhub/webhooks/orders/paid?tenant=acme-industries",
        queue="webhooks-erp",
    )
    log_in(page, live_server.url, "/admin/eventhub/route/")

    for path, shot in (
        ("/admin/eventhub/route/", "admin-routes"),
        ("/admin/eventhub/signalhook/", "admin-hooks"),
    ):
        page.goto(live_server.url + path)
        page.screenshot(path=str(SCREENSHOTS / f"{shot}.png"), full_page=True)
        found = page.evaluate(OVERFLOW, "#changelist .results")
        assert found["scroll"] <= found["client"] + 1 and not found["hidden"], (path, found)

    # "When" in a few words, on one or two lines, not eight.
    for cell in page.locator("td.field-fires").all():
        assert page.evaluate(LINES, cell.element_handle()) <= 2, cell.inner_text()
    assert page.locator("tr", has_text="shop: order paid").locator("td.field-fires").inner_text() == (
        "status changed"
    )
    # The read-only table of hooks declared in code: its headers apart, as the admin's own are.
    gaps = page.evaluate(HEADER_GAPS, page.locator("#code-hooks-table").element_handle())
    assert len(gaps) == 6 and min(gaps) >= 8, gaps


def test_the_route_form_shows_each_destination_field_only_for_its_kind(page, live_server, handler):
    expect = playwright_sync.expect
    operator()
    _, name = handler()
    EventType.objects.create(name="invoice.requested")
    log_in(page, live_server.url, "/admin/eventhub/route/add/")
    rows = {
        field: page.locator(f".form-row.field-{field}") for field in ("handler", "target", "signing_secret")
    }

    for kind, shown in (
        ("handler", {"handler"}),
        ("webhook", {"target", "signing_secret"}),
        ("amqp", {"target"}),
    ):
        page.select_option("#id_destination_kind", kind)
        for field, row in rows.items():
            (expect(row).to_be_visible if field in shown else expect(row).to_be_hidden)()
        if kind == "webhook":
            page.screenshot(path=str(SCREENSHOTS / "admin-route-webhook.png"), full_page=True)

    page.select_option("#id_destination_kind", "handler")
    page.fill("#id_name", "log invoices")
    page.select_option("#id_event_type", label="invoice.requested")
    page.select_option("#id_handler", name)
    page.screenshot(path=str(SCREENSHOTS / "admin-route-handler.png"), full_page=True)
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")

    route = Route.objects.get(name="log invoices")
    assert (route.destination_kind, route.target) == ("handler", name)
    page.goto(f"{live_server.url}/admin/eventhub/route/{route.pk}/change/")
    expect(page.locator("#id_handler")).to_have_value(name)
    expect(rows["signing_secret"]).to_be_hidden()


def test_the_dashboards_route_figures_fit_and_a_failing_route_stands_out(page, live_server):
    operator()
    paid = EventType.objects.create(name="order.paid")
    failing = factories.route(paid, "h.billing", name="billing webhook for the ERP")
    fine = factories.route(paid, "h.mail", name="mailer")
    for minutes in range(0, 40, 2):
        make_delivery(fine, ago=timedelta(minutes=minutes))
        make_delivery(failing, ago=timedelta(minutes=minutes), latency_ms=1200)
    make_delivery(failing, status="dead", error="ConnectionError: refused", ago=timedelta(minutes=3))
    log_in(page, live_server.url)

    found = page.evaluate(OVERFLOW, "#figures")
    assert found["scroll"] <= found["client"] + 1 and not found["hidden"], found
    row = page.locator(f"#route-{failing.pk}")
    playwright_sync.expect(row.locator("a.failed-count")).to_have_text("1 failed")
    assert row.locator("svg.spark rect.failed").count() == 1
    assert page.locator(f"#route-{fine.pk} svg.spark rect.failed").count() == 0
    page.locator("#figures").screenshot(path=str(SCREENSHOTS / "dashboard-route-sparklines.png"))
