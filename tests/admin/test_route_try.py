"""The route admin: ordering key and transform validated on the form; try a route before saving it."""

import json

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from eventhub.destinations.signing import verify
from eventhub.models import Delivery, Route, RouteTransform, TrialDelivery
from eventhub.outbox import emit_many
from tests.admin.test_events import route_form
from tests.support import factories

pytestmark = pytest.mark.django_db

MATCH = reverse("admin:eventhub_route_try_match")
PREVIEW = reverse("admin:eventhub_route_try_transform")


def form_errors(response, field: str) -> str:
    return " ".join(response.context["adminform"].form.errors.get(field, []))


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"ordering_key": "{data.order_id"}, "ordering_key", "Invalid ordering key: unmatched '{'"),
        ({"ordering_key": "{order_id}"}, "ordering_key", "must start with an envelope attribute"),
        ({"ordering_key": "all"}, "ordering_key", "without a {placeholder}"),
        ({"transform": '{"body": "data"}'}, "transform", "Handlers always receive the envelope"),
        (
            {"destination_kind": "webhook", "target": "https://x.example/", "transform": '{"body": "xml"}'},
            "transform",
            'body must be "envelope" or "data"',
        ),
        (
            {
                "destination_kind": "webhook",
                "target": "https://x.example/",
                "transform": '{"headers": {"Host": "a"}}',
            },
            "transform",
            "cannot be overridden",
        ),
        (
            {
                "destination_kind": "webhook",
                "target": "https://x.example/",
                "transform": '{"headers": {"Webhook-Signature": "v1,x"}}',
            },
            "transform",
            "cannot be overridden",
        ),
        (
            {"destination_kind": "amqp", "target": "orders", "transform": '{"headers": {"X-A": "b"}}'},
            "transform",
            "Static headers apply to webhook routes only",
        ),
    ],
)
def test_a_bad_ordering_key_or_transform_is_refused_on_the_form(admin_client, overrides, field, message):
    paid = factories.event_type("order.paid")
    response = admin_client.post(reverse("admin:eventhub_route_add"), route_form(paid, **overrides))
    assert response.status_code == 200
    assert message in form_errors(response, field)
    assert not Route.objects.exists()


def test_each_changed_transform_is_a_new_version(admin_client):
    paid = factories.event_type("order.paid")
    webhook = {"destination_kind": "webhook", "target": "https://x.example/", "ordering_key": "{subject}"}
    form = route_form(paid, transform='{"body": "data"}', **webhook)
    admin_client.post(reverse("admin:eventhub_route_add"), form)  # then shows the new secret once
    route = Route.objects.get()
    assert (route.ordering_key, route.transform_version) == ("{subject}", 1)
    change = reverse("admin:eventhub_route_change", args=[route.pk])
    admin_client.post(change, form)  # saved again unchanged: same version
    assert Route.objects.get().transform_version == 1
    admin_client.post(change, {**form, "transform": '{"body": "data", "fields": {"id": "order_id"}}'})
    assert Route.objects.get().transform_version == 2
    assert list(RouteTransform.objects.values_list("version", "spec")) == [
        (2, {"body": "data", "fields": {"id": "order_id"}}),
        (1, {"body": "data"}),
    ]


def emit_orders(n: int = 6):
    """``n`` order.paid events with amounts 0..n-1, oldest first (a broker fixture must be active)."""
    factories.event_type("order.paid")
    return emit_many(
        [
            {
                "type": "order.paid",
                "data": {"amount": amount, "order_id": amount},
                "subject": f"order/{amount}",
            }
            for amount in range(n)
        ]
    )


def test_which_recent_events_an_unsaved_filter_matches(admin_client, stub_broker):
    events = emit_orders(6)
    factories.event_type("order.refunded")
    emit_many([{"type": "order.refunded", "data": {"amount": 99}}])  # the latest event, of another type

    body = {
        "event_type": events[0].event_type_id,
        "filter": '{"data": {"amount": [{"numeric": [">=", 3]}]}}',
        "ordering_key": "{data.order_id}",
        "limit": 5,
    }
    answer = admin_client.post(MATCH, body).json()
    assert answer["examined"] == 5 and answer["matched"] == 3  # amounts 5, 4, 3 among the latest five
    assert [e["subject"] for e in answer["examples"]] == ["order/5", "order/4", "order/3"]
    assert [e["ordering_key"] for e in answer["examples"]] == ["5", "4", "3"]
    assert answer["examples"][0]["url"] == events[5].get_absolute_url()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"filter": '{"data": {"amount": [{"numeric": [">", "x"]}]}}'}, "Invalid filter"),
        ({"filter": "{not json"}, "valid JSON"),
        ({"ordering_key": "{data"}, "Invalid ordering key"),
        ({"limit": 100_000}, "At most 1000 events"),
        ({"event_type": 999_999}, "event_type"),
    ],
)
def test_a_bad_try_is_refused_with_what_is_wrong(admin_client, stub_broker, changes, message):
    [event] = emit_orders(1)
    body = {"event_type": event.event_type_id, "filter": "{}", "ordering_key": "", "limit": 10, **changes}
    response = admin_client.post(MATCH, body)
    assert response.status_code == 400 and message in response.json()["error"]


def test_the_try_endpoints_need_post_csrf_and_the_route_permission(stub_broker):
    [event] = emit_orders(1)
    body = {"event_type": event.event_type_id, "filter": "{}", "limit": 10}
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_route"))
    client = Client()
    client.force_login(viewer)
    assert client.post(MATCH, body).status_code == 403
    route = factories.route(event.event_type, "h")
    assert (
        client.post(reverse("admin:eventhub_route_try_send", args=[route.pk]), {"data": "{}"}).status_code
        == 403
    )
    assert not TrialDelivery.objects.exists()

    admin = User.objects.create_superuser("boss", password="pw")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin)
    assert strict.post(MATCH, body).status_code == 403  # no CSRF token
    assert strict.get(MATCH).status_code == 405


def test_the_transform_preview_on_the_latest_event(admin_client, stub_broker):
    events = emit_orders(3)
    spec = json.dumps(
        {"body": "data", "fields": {"id": "order_id", "money.amount": "amount"}, "headers": {"X-Tenant": "a"}}
    )
    answer = admin_client.post(PREVIEW, {"event_type": events[0].event_type_id, "transform": spec}).json()
    assert answer == {
        "event_id": str(events[2].pk),
        "body": {"id": 2, "money": {"amount": 2}},
        "headers": {"X-Tenant": "a"},
    }

    refused = admin_client.post(PREVIEW, {"event_type": events[0].event_type_id, "transform": '{"run": "x"}'})
    assert refused.status_code == 400 and "unknown key(s) 'run'" in refused.json()["error"]
    empty = factories.event_type("order.none")
    missing = admin_client.post(PREVIEW, {"event_type": empty.pk, "transform": "{}"})
    assert missing.status_code == 404 and "No order.none event yet" in missing.json()["error"]


def test_a_test_event_goes_through_the_real_destination_and_counts_nowhere(
    admin_client, stub_broker, webhook_receiver
):
    hook = webhook_receiver(reply=b'{"accepted": true}')
    paid = factories.event_type("order.paid", schema={"type": "object", "required": ["order_id"]})
    route = factories.route(
        paid,
        f"{hook.url}/in",
        destination_kind="webhook",
        transform={"body": "data", "fields": {"order": "order_id"}, "headers": {"X-Tenant": "acme"}},
    )
    page = admin_client.get(reverse("admin:eventhub_route_change", args=[route.pk]))
    assert b"Send a test event" in page.content and b"Which would this filter match?" in page.content

    send = reverse("admin:eventhub_route_try_send", args=[route.pk])
    answer = admin_client.post(send, {"data": '{"order_id": 7, "secret_note": "x"}'}).json()
    assert answer["succeeded"] is True and answer["status"] == 200
    assert answer["excerpt"] == '{"accepted": true}' and answer["duration_ms"] > 0
    assert answer["transform_version"] == 1
    [request] = hook.requests
    assert json.loads(request.body) == {"order": 7}
    assert request.headers["X-Tenant"] == "acme"
    verify(secret=route.secret, headers=request.headers, body=request.body)

    trial = TrialDelivery.objects.get()
    assert trial.succeeded and trial.username == "admin" and trial.envelope["eventhubtest"] is True
    assert not Delivery.objects.exists()  # dashboard figures and /metrics read deliveries only
    metrics = admin_client.get("/metrics").content.decode()
    assert route.name not in metrics


def test_a_failing_or_invalid_test_event_is_shown_not_raised(admin_client, stub_broker, webhook_receiver):
    hook = webhook_receiver(status=503, reply=b"maintenance")
    paid = factories.event_type("order.paid", schema={"type": "object", "required": ["order_id"]})
    route = factories.route(paid, hook.url, destination_kind="webhook")
    send = reverse("admin:eventhub_route_try_send", args=[route.pk])

    refused = admin_client.post(send, {"data": '{"amount": 1}'})
    assert refused.status_code == 400 and "'order_id' is a required property" in refused.json()["error"]
    assert not hook.requests and not TrialDelivery.objects.exists()

    answer = admin_client.post(send, {"data": '{"order_id": 1}'}).json()
    assert answer["succeeded"] is False and "answered 503: maintenance" in answer["error"]
    assert "answered 503: maintenance" in TrialDelivery.objects.get().error
