"""Replay: services (permission, what is sent, the record) and the admin actions and bulk page."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from eventhub import broker as brokers
from eventhub import emit
from eventhub.models import Delivery, Replay
from eventhub.outbox.replay import replay_deliveries, replay_event, replay_matching
from tests.support import factories

pytestmark = pytest.mark.django_db(transaction=True)


def make_user(name: str = "operator", *, can_replay: bool = True) -> User:
    user = User.objects.create_user(name, password="pw", is_staff=True)
    perms = ["view_delivery", "view_event"] + (["replay_delivery"] if can_replay else [])
    user.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    return User.objects.get(pk=user.pk)


def delivery_in(status: str, route, *, attempts: int = 3, created_at=None) -> Delivery:
    """A delivery of a fresh event, forced into ``status`` as if it had run."""
    event = emit(route.event_type.name, data={})
    brokers.drain_embedded()
    delivery = Delivery.objects.get(event=event, route=route)
    Delivery.objects.filter(pk=delivery.pk).update(
        status=status, attempts=attempts, created_at=created_at or timezone.now()
    )
    return Delivery.objects.get(pk=delivery.pk)


@pytest.fixture
def setup(stub_broker, handler):
    calls, name = handler()
    route = factories.route(factories.event_type("order.paid"), name, max_attempts=3)
    return calls, route


def test_replay_needs_the_permission_even_for_a_count(setup):
    _, route = setup
    delivery = delivery_in("dead", route)
    user = make_user(can_replay=False)
    with pytest.raises(PermissionDenied):
        replay_deliveries(deliveries=[delivery], user=user)
    with pytest.raises(PermissionDenied):
        replay_matching(user=user, dry_run=True)
    with pytest.raises(PermissionDenied):
        replay_event(event=delivery.event, user=user)
    assert not Replay.objects.exists()


def test_replaying_chosen_deliveries_sends_only_failed_and_dead_ones_and_records_who(setup):
    calls, route = setup
    dead, retrying = delivery_in("dead", route), delivery_in("retrying", route)
    succeeded, queued = delivery_in("succeeded", route), delivery_in("queued", route)
    calls.clear()

    sent = replay_deliveries(deliveries=[dead, retrying, succeeded, queued], user=make_user())
    brokers.drain_embedded()

    assert sent == 2
    assert sorted(c["id"] for c in calls) == sorted([str(dead.event_id), str(retrying.event_id)])
    dead.refresh_from_db()
    assert (dead.status, dead.attempts, dead.attempts_before_replay) == ("succeeded", 4, 3)
    record = Replay.objects.get()
    assert (record.kind, record.username, record.delivery_count) == ("deliveries", "operator", 2)
    assert set(record.deliveries.all()) == {dead, retrying}
    assert list(dead.replays.all()) == [record]


def test_a_replayed_delivery_gets_a_fresh_round_of_its_retry_policy(stub_broker, handler):
    def fail(envelope):
        raise RuntimeError("still broken")

    calls, name = handler(fail)
    route = factories.route(factories.event_type("order.paid"), name, max_attempts=2)
    emit("order.paid", data={})
    brokers.drain_embedded()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("dead", 2)

    replay_deliveries(deliveries=Delivery.objects.filter(route=route), user=make_user())
    brokers.drain_embedded()

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, len(calls)) == ("dead", 4, 4)
    assert list(delivery.attempt_log.values_list("number", flat=True)) == [1, 2, 3, 4]


def test_bulk_replay_counts_first_then_sends_by_route_status_and_time(setup):
    _, route = setup
    other = factories.route(route.event_type, route.target, name="other")
    now = timezone.now()
    old_dead = delivery_in("dead", route, created_at=now - timedelta(days=2))
    dead = delivery_in("dead", route, created_at=now - timedelta(hours=1))
    retrying = delivery_in("retrying", route, created_at=now - timedelta(hours=1))
    Delivery.objects.filter(route=other).update(status="dead")  # the other route's copies
    user = make_user()

    assert replay_matching(user=user, dry_run=True) == 3 + 3
    assert replay_matching(route=route, user=user, dry_run=True) == 3
    assert replay_matching(route=route, status="dead", user=user, dry_run=True) == 2
    since, until = now - timedelta(days=1), now
    assert replay_matching(route=route, status="dead", since=since, until=until, user=user, dry_run=True) == 1
    assert not Replay.objects.exists()  # counting records nothing

    sent = replay_matching(route=route, status="dead", since=since, until=until, user=user, dry_run=False)
    brokers.drain_embedded()

    assert sent == 1
    statuses = dict(Delivery.objects.filter(route=route).values_list("pk", "status"))
    assert statuses == {old_dead.pk: "dead", dead.pk: "succeeded", retrying.pk: "retrying"}
    assert Replay.objects.get().criteria["status"] == "dead"
    with pytest.raises(ValueError, match="Only dead, retrying"):
        replay_matching(status="succeeded", user=user, dry_run=True)


def test_replaying_an_event_uses_todays_matching_enabled_routes(setup):
    calls, route = setup
    event = emit("order.paid", data={"amount": 5})
    brokers.drain_embedded()
    factories.route(route.event_type, route.target, name="added later")
    factories.route(route.event_type, route.target, name="disabled", enabled=False)
    factories.route(
        route.event_type,
        route.target,
        name="big only",
        filter={"data": {"amount": [{"numeric": [">", 100]}]}},
    )
    calls.clear()

    new = replay_event(event=event, user=make_user())
    brokers.drain_embedded()

    assert sorted(d.route.name for d in new) == sorted([route.name, "added later"])
    assert len(calls) == 2 and Delivery.objects.filter(event=event).count() == 3
    record = Replay.objects.get()
    assert (record.kind, record.event, record.delivery_count) == ("event", event, 2)


def test_admin_delivery_action_confirms_the_count_then_replays(setup, client):
    _, route = setup
    dead, succeeded = delivery_in("dead", route), delivery_in("succeeded", route)
    client.force_login(make_user())
    url = reverse("admin:eventhub_delivery_changelist")
    form = {"action": "replay_selected_deliveries", "_selected_action": [dead.pk, succeeded.pk]}

    page = client.post(url, form)
    assert page.status_code == 200
    assert b'<strong id="replay-count">1</strong> delivery will be sent' in page.content
    assert Delivery.objects.get(pk=dead.pk).status == "dead"  # nothing sent yet

    done = client.post(url, {**form, "confirm": "yes"}, follow=True)
    brokers.drain_embedded()
    assert b"Replayed 1 delivery." in done.content
    assert Delivery.objects.get(pk=dead.pk).status == "succeeded"
    assert Replay.objects.get().user.username == "operator"


def test_admin_event_action_shows_how_many_deliveries_then_replays(setup, client):
    _, route = setup
    event = emit("order.paid", data={})
    brokers.drain_embedded()
    client.force_login(make_user())
    url = reverse("admin:eventhub_event_changelist")
    form = {"action": "replay_selected_events", "_selected_action": [str(event.pk)]}

    assert b'<strong id="replay-count">1</strong>' in client.post(url, form).content
    client.post(url, {**form, "confirm": "yes"})
    brokers.drain_embedded()
    assert list(Delivery.objects.filter(event=event).values_list("status", flat=True)) == ["succeeded"] * 2


def test_admin_replay_is_offered_only_with_the_permission(setup, client):
    _, route = setup
    delivery_in("dead", route)
    client.force_login(make_user("viewer", can_replay=False))
    page = client.get(reverse("admin:eventhub_delivery_changelist"))
    assert page.status_code == 200 and b"replay_selected_deliveries" not in page.content
    assert b"Bulk replay" not in page.content
    assert client.get(reverse("admin:eventhub_delivery_bulk_replay")).status_code == 403


def test_admin_bulk_replay_page_counts_then_sends_on_confirmation(setup, client):
    _, route = setup
    dead = delivery_in("dead", route)
    delivery_in("retrying", route)
    client.force_login(make_user())
    url = reverse("admin:eventhub_delivery_bulk_replay")
    assert b"Bulk replay" in client.get(reverse("admin:eventhub_delivery_changelist")).content

    counted = client.get(url, {"route": route.pk, "status": "dead"})
    assert b'<strong id="replay-count">1</strong> delivery will be sent' in counted.content
    done = client.post(url, {"route": route.pk, "status": "dead", "since": "", "until": "", "confirm": "yes"})
    brokers.drain_embedded()
    assert done.status_code == 302
    assert Delivery.objects.get(pk=dead.pk).status == "succeeded"
    assert Replay.objects.get().kind == "bulk"
