"""The dashboard as operators see it: who may open it, each filter, figures, consumers, replay."""

import re
import uuid
from datetime import timedelta
from html import unescape

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from eventhub import discovery
from eventhub.dashboard import charts, selectors
from eventhub.models import Delivery, HookFailure, Replay
from tests.support import factories
from tests.support.factories import make_delivery

pytestmark = pytest.mark.django_db


VIEWER = ["view_event", "view_delivery", "view_hookfailure"]


def login(client, name: str, codenames: list[str]) -> Client:
    user = User.objects.create_user(name, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


@pytest.fixture
def staff(client) -> Client:
    """An operator who may view events, deliveries and hook failures."""
    return login(client, "op", VIEWER)


@pytest.fixture
def replayer(client) -> Client:
    return login(client, "replayer", [*VIEWER, "replay_delivery"])


def rows(response, section: str) -> str:
    """The HTML of one table body on the page (problems or deliveries)."""
    html = response.content.decode()
    start = html.index(f'<tbody id="{section}">')
    return html[start : html.index("</tbody>", start)]


# --- who may open it ---------------------------------------------------------------------------------

URLS = ["/eventhub/", "/eventhub/live/", f"/eventhub/events/{uuid.uuid4()}/"]


@pytest.mark.parametrize("url", URLS)
def test_anonymous_visitors_are_sent_to_the_admin_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/eventhub/")


@pytest.mark.parametrize("url", URLS)
def test_signed_in_users_who_are_not_staff_are_sent_to_the_admin_login(client, url):
    client.force_login(User.objects.create_user("customer", password="pw"))
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_staff_see_the_dashboard(staff):
    response = staff.get("/eventhub/")
    assert response.status_code == 200
    assert b"Failing, dead and stuck" in response.content and b"Recent deliveries" in response.content


def test_replay_endpoints_are_staff_only(client, two_routes):
    delivery = make_delivery(two_routes[0], status="dead", error="boom", attempts=5)
    client.force_login(User.objects.create_user("customer", password="pw"))
    response = client.post(f"/eventhub/deliveries/{delivery.pk}/replay/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert Delivery.objects.get(pk=delivery.pk).status == "dead"


# --- lists and filters -----------------------------------------------------------------------------


def test_failures_come_first_with_their_error_and_attempts(staff, two_routes):
    billing, _ = two_routes
    make_delivery(billing, status="succeeded", subject="order/1")
    make_delivery(billing, status="dead", subject="order/2", error="ValueError: card declined", attempts=5)
    response = staff.get("/eventhub/")
    problems = rows(response, "problems")
    assert "order/2" in problems and "ValueError: card declined" in problems
    assert '<td class="num">5</td>' in problems
    assert "order/1" not in problems
    html = response.content.decode()
    assert html.index('id="problems"') < html.index('id="deliveries"')


def test_filter_by_event_type(staff, two_routes):
    billing, mailer = two_routes
    make_delivery(billing, subject="order/paid")
    make_delivery(mailer, subject="order/shipped")
    body = rows(staff.get("/eventhub/?type=order.shipped"), "deliveries")
    assert "order/shipped" in body and "order/paid" not in body


def test_filter_by_route(staff, two_routes):
    billing, mailer = two_routes
    make_delivery(billing, subject="via-billing")
    make_delivery(mailer, subject="via-mailer")
    body = rows(staff.get(f"/eventhub/?route={billing.pk}"), "deliveries")
    assert "via-billing" in body and "via-mailer" not in body


@pytest.mark.parametrize(
    ("status", "shown"),
    [("dead", {"s-dead"}), ("queued", {"s-queued"}), ("problems", {"s-dead", "s-retrying"})],
)
def test_filter_by_status(staff, two_routes, status, shown):
    for s in ("succeeded", "dead", "retrying", "queued"):
        make_delivery(
            two_routes[0], status=s, subject=f"s-{s}", error="x" if s in ("dead", "retrying") else ""
        )
    body = rows(staff.get(f"/eventhub/?status={status}"), "deliveries")
    assert {f"s-{s}" for s in ("succeeded", "dead", "retrying", "queued") if f"s-{s}<" in body} == shown


def test_filter_by_time_range(staff, two_routes):
    make_delivery(two_routes[0], subject="just-now", ago=timedelta(minutes=1))
    make_delivery(two_routes[0], subject="this-morning", ago=timedelta(hours=3))
    make_delivery(two_routes[0], subject="last-week", ago=timedelta(days=3))
    assert "this-morning" not in rows(staff.get("/eventhub/?range=1h"), "deliveries")
    day = rows(staff.get("/eventhub/?range=24h"), "deliveries")
    assert "just-now" in day and "this-morning" in day and "last-week" not in day
    assert "last-week" in rows(staff.get("/eventhub/?range=7d"), "deliveries")


def test_search_by_subject_event_id_and_producer_id(staff, two_routes):
    wanted = make_delivery(two_routes[0], subject="order/42", external_id="producer-7")
    make_delivery(two_routes[0], subject="order/43")
    for q in ("order/42", str(wanted.event_id), "producer-7"):
        body = rows(staff.get("/eventhub/", {"q": q}), "deliveries")
        assert "order/42" in body and "order/43" not in body, q
    assert "No deliveries match" in rows(staff.get("/eventhub/?q=order/999"), "deliveries")


def test_filters_combine_and_apply_to_the_failure_list(staff, two_routes):
    billing, mailer = two_routes
    make_delivery(billing, status="dead", subject="billing-dead", error="e")
    make_delivery(mailer, status="dead", subject="mailer-dead", error="e")
    response = staff.get(f"/eventhub/?route={mailer.pk}&status=dead&range=1h")
    assert "mailer-dead" in rows(response, "problems") and "billing-dead" not in rows(response, "problems")
    assert "mailer-dead" in rows(response, "deliveries") and "billing-dead" not in rows(
        response, "deliveries"
    )


def test_unknown_filter_values_are_reported_not_fatal(staff):
    response = staff.get("/eventhub/?status=lost&range=forever&route=abc")
    assert response.status_code == 200
    for text in ("Unknown status", "Unknown time range", "Unknown route"):
        assert text in response.content.decode()


def test_live_endpoint_returns_the_lists_as_html_in_json(staff, two_routes):
    make_delivery(two_routes[0], status="dead", subject="order/live", error="boom")
    body = staff.get("/eventhub/live/?parts=deliveries,problems&status=dead").json()
    assert "order/live" in body["deliveries"] and "boom" in body["problems"]
    assert "figures" not in body and body["updated_at"]


# --- figures, chart, consumers -----------------------------------------------------------------------


def test_chart_counts_deliveries_per_minute_by_status(staff, two_routes):
    make_delivery(two_routes[0], status="dead", error="x", ago=timedelta(seconds=5))
    make_delivery(two_routes[0], status="succeeded", ago=timedelta(seconds=5))
    now = timezone.now()
    bars = charts.minute_bars(selectors.per_minute_counts(minutes=60, now=now), minutes=60, now=now)
    assert len(bars) == 60 and sum(b.total for b in bars) == 2
    assert sum(b.counts.get("dead", 0) for b in bars) == 1
    html = staff.get("/eventhub/").content.decode()
    assert "<svg" in html and "dead: 1</title>" in html


def test_each_route_has_a_sparkline_of_its_last_hour_where_failures_stand_out(staff, two_routes):
    billing, mailer = two_routes
    for _ in range(30):
        make_delivery(billing, ago=timedelta(minutes=5))
    make_delivery(billing, status="dead", error="x", ago=timedelta(minutes=5))
    make_delivery(mailer, ago=timedelta(minutes=20))
    make_delivery(mailer, ago=timedelta(hours=2))  # outside the hour

    html = staff.get("/eventhub/").content.decode()

    failing, fine = route_row(html, billing), route_row(html, mailer)
    assert 'class="failing"' in failing and 'class="failing"' not in fine
    assert 'aria-label="billing: 31 deliveries, 1 failed in the last hour"' in failing
    assert 'aria-label="mailer: 1 delivery, 0 failed in the last hour"' in fine
    # One failure among 31 in the same minute is still a visible red bar.
    (red,) = re.findall(r'<rect class="failed"[^>]*>', failing)
    assert f'fill="{charts.FAILED_COLOUR}"' in red and float(re.search(r'height="([\d.]+)"', red)[1]) >= 3
    assert "1 failed</a>" in failing and "failed</a>" not in fine
    assert '<rect class="failed"' not in fine


def route_row(html: str, route) -> str:
    start = html.index(f'<tr id="route-{route.pk}"')
    return html[start : html.index("</tr>", start)]


def test_the_two_durations_say_what_they_measure_and_are_rounded(staff, two_routes):
    delivery = make_delivery(two_routes[0], subject="order/7")
    Delivery.objects.filter(pk=delivery.pk).update(duration_ms=1.0933969999769033)

    html = staff.get("/eventhub/").content.decode()

    assert html.count("Last attempt took</th>") == 2
    # One per window: 5 minutes, an hour, a day, 30 days.
    assert html.count("emit → done</th>") == 4 and html.count('<th class="num">p95</th>') == 4
    assert '<th class="num">ms</th>' not in html and "p50 ms" not in html
    row = rows(staff.get("/eventhub/"), "deliveries")
    assert ">1.1 ms<" in row and "1.09339" not in row


def test_a_delivery_running_past_its_time_limit_is_shown_as_stuck_among_the_problems(staff, two_routes):
    billing, _ = two_routes
    stuck = make_delivery(billing, status="running", subject="order/stuck", ago=timedelta(minutes=6))
    fresh = make_delivery(billing, status="running", subject="order/fresh", ago=timedelta(seconds=5))
    now = timezone.now()
    Delivery.objects.filter(pk=stuck.pk).update(started_at=now - timedelta(minutes=5))
    Delivery.objects.filter(pk=fresh.pk).update(started_at=now - timedelta(seconds=5))

    problems = rows(staff.get("/eventhub/"), "problems")

    assert "order/stuck" in problems and "order/fresh" not in problems
    assert "stuck</span>" in problems
    assert "Running for 5 min, past the route's time limit of 60 s" in unescape(problems)


def test_discovery_off_is_said_plainly(staff, monkeypatch):
    monkeypatch.delenv("CONSUL_HTTP_ADDR", raising=False)
    assert "Discovery off" in staff.get("/eventhub/").content.decode()


def test_consumers_with_health_and_routes_without_a_healthy_consumer(
    staff,
    consul_agent,
    monkeypatch,
    settings,
):
    service = consul_agent.unique_name("workers")
    settings.EVENTHUB = {**settings.EVENTHUB, "CONSUL_SERVICE_NAME": service}
    monkeypatch.setenv("CONSUL_HTTP_ADDR", consul_agent.addr)
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", consul_agent.token or "")
    client = consul_agent.client()
    for sid, queue, alive in (("w-alive", "q-served", True), ("w-stuck", "q-orphan", False)):
        discovery.register_worker(
            client,
            service_name=service,
            service_id=f"{service}-{sid}",
            tags=discovery.worker_tags([queue]),
            meta={"host": sid, "pid": 7},
        )
        if alive:
            discovery.heartbeat(client, f"{service}-{sid}")
    kind = factories.event_type("order.paid")
    factories.route(kind, "h.a", name="served-route", queue="q-served")
    factories.route(kind, "h.b", name="orphan-route", queue="q-orphan")
    html = staff.get("/eventhub/").content.decode()
    consumers = html[html.index('id="consumers"') :]
    assert "w-alive:7" in consumers and "passing" in consumers
    alive = consumers[consumers.index("w-alive:7") : consumers.index("</tr>", consumers.index("w-alive:7"))]
    assert re.search(r">\d+(\.\d)? s ago<", alive), alive  # a 5 s heartbeat reads in seconds, not "0 minutes"
    assert "w-stuck:7" in consumers and "critical" in consumers
    banner = consumers[consumers.index("No healthy consumer") : consumers.index("</div>")]
    assert "orphan-route (queue q-orphan)" in banner and "served-route" not in banner


# --- event page and replay ----------------------------------------------------------------------------


def test_event_page_shows_envelope_deliveries_and_attempts(staff, two_routes):
    delivery = make_delivery(
        two_routes[0], status="dead", subject="order/9", error="TimeoutError: slow", attempts=3
    )
    html = unescape(staff.get(f"/eventhub/events/{delivery.event_id}/").content.decode())
    assert '"subject": "order/9"' in html and '"specversion": "1.0"' in html
    assert "billing" in html and "3 attempts" in html
    assert html.count("TimeoutError: slow") == 4  # the delivery's last error and each of 3 attempts


def test_unknown_event_is_404(staff):
    assert staff.get(f"/eventhub/events/{uuid.uuid4()}/").status_code == 404


def test_replay_buttons_need_the_permission(staff, two_routes):
    delivery = make_delivery(two_routes[0], status="dead", error="x", attempts=5)
    assert b"Replay" not in staff.get(f"/eventhub/events/{delivery.event_id}/").content
    assert staff.post(f"/eventhub/deliveries/{delivery.pk}/replay/").status_code == 403
    assert Delivery.objects.get(pk=delivery.pk).status == "dead"


def test_replay_is_post_only_and_csrf_protected(replayer, two_routes):
    delivery = make_delivery(two_routes[0], status="dead", error="x", attempts=5)
    assert replayer.get(f"/eventhub/deliveries/{delivery.pk}/replay/").status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(User.objects.get(username="replayer"))
    assert strict.post(f"/eventhub/deliveries/{delivery.pk}/replay/").status_code == 403
    assert Delivery.objects.get(pk=delivery.pk).status == "dead"


def test_replay_a_dead_delivery_from_the_dashboard(replayer, two_routes, stub_broker):
    delivery = make_delivery(two_routes[0], status="dead", error="x", attempts=5)
    html = replayer.get("/eventhub/").content.decode()
    assert f"/eventhub/deliveries/{delivery.pk}/replay/" in html
    response = replayer.post(
        f"/eventhub/deliveries/{delivery.pk}/replay/", {"next": "/eventhub/?status=dead"}
    )
    assert response.status_code == 302 and response["Location"] == "/eventhub/?status=dead"
    assert list(Replay.objects.get().deliveries.all()) == [delivery]
    assert "was sent again" in replayer.get("/eventhub/").content.decode()


def test_replay_redirects_only_to_this_site(replayer, two_routes, stub_broker):
    delivery = make_delivery(two_routes[0], status="dead", error="x", attempts=5)
    response = replayer.post(f"/eventhub/deliveries/{delivery.pk}/replay/", {"next": "https://evil.example/"})
    assert response["Location"] == f"/eventhub/events/{delivery.event_id}/"


def test_replay_an_event_makes_new_deliveries(replayer, two_routes, stub_broker):
    delivery = make_delivery(two_routes[0], status="succeeded")
    response = replayer.post(f"/eventhub/events/{delivery.event_id}/replay/")
    assert response.status_code == 302
    assert Delivery.objects.filter(event_id=delivery.event_id).count() == 2


# --- admin links between objects -----------------------------------------------------------------------


def test_admin_links_event_route_and_delivery(client, two_routes):
    client.force_login(User.objects.create_superuser("root", password="pw"))
    delivery = make_delivery(two_routes[0], status="dead", subject="order/5", error="x")
    event_page = client.get(f"/admin/eventhub/event/{delivery.event_id}/change/").content.decode()
    assert f"/admin/eventhub/delivery/?event__id__exact={delivery.event_id}" in event_page
    route_page = unescape(client.get(f"/admin/eventhub/route/{two_routes[0].pk}/change/").content.decode())
    assert f"/admin/eventhub/delivery/?route__id__exact={two_routes[0].pk}&status__exact=dead" in route_page
    assert f"/eventhub/?route={two_routes[0].pk}&status=problems" in route_page
    delivery_page = client.get(f"/admin/eventhub/delivery/{delivery.pk}/change/").content.decode()
    assert f"/admin/eventhub/event/{delivery.event_id}/change/" in delivery_page
    assert f"/eventhub/events/{delivery.event_id}/#delivery-{delivery.pk}" in delivery_page
    failures = client.get(f"/admin/eventhub/delivery/?route__id__exact={two_routes[0].pk}&status__exact=dead")
    assert "order/5" in failures.content.decode()


def test_signal_hooks_that_could_not_emit_are_listed(staff):
    HookFailure.objects.create(
        hook_name="order-paid-hook",
        event_type="order.paid",
        model="shop.order",
        object_pk="7",
        error="data.amount: 'x' is not of type 'integer'",
    )
    html = unescape(staff.get("/eventhub/").content.decode())
    section = html[html.index('id="hook-failures"') :]
    assert (
        "order-paid-hook" in section and "shop.order 7" in section and "is not of type 'integer'" in section
    )
