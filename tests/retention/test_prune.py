"""The pruner: what it deletes, what it never deletes, per-type overrides, dry runs and batches."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from eventhub import retention
from eventhub.models import (
    Attempt,
    Delivery,
    DeliveryMinute,
    Event,
    HookFailure,
    PruneRun,
    Replay,
    TrialDelivery,
)
from tests.support.factories import event_type, make_delivery, route

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
# Every status a delivery has or will have that is not finished; "paused" stands for any
# status added later: the pruner deletes only the two it knows are finished.
UNFINISHED = ["pending", "queued", "running", "retrying", "waiting", "held", "paused"]


@pytest.fixture
def a_route():
    return route(event_type(), "tests.record")


def ids(queryset) -> set:
    return set(queryset.values_list("pk", flat=True))


def test_old_succeeded_and_dead_deliveries_go_with_their_attempts_and_events(a_route):
    old_ok = make_delivery(a_route, status="succeeded", ago=15 * DAY, attempts=2, error="x")
    old_dead = make_delivery(a_route, status="dead", ago=91 * DAY, attempts=3, error="boom")
    young_ok = make_delivery(a_route, status="succeeded", ago=13 * DAY)
    young_dead = make_delivery(a_route, status="dead", ago=89 * DAY, error="boom")

    report = retention.prune()

    assert ids(Delivery.objects.all()) == {young_ok.pk, young_dead.pk}
    assert not Attempt.objects.filter(delivery_id__in=[old_ok.pk, old_dead.pk]).exists()
    assert ids(Event.objects.all()) == {young_ok.event_id, young_dead.event_id}
    assert report.counts["deliveries_succeeded"] == 1
    assert report.counts["deliveries_dead"] == 1
    assert report.counts["attempts"] == 5
    assert report.counts["events"] == 2


@pytest.mark.parametrize("status", UNFINISHED)
def test_unfinished_deliveries_are_never_deleted_however_old(a_route, status):
    kept = make_delivery(a_route, status=status, ago=1000 * DAY)

    report = retention.prune()

    assert Delivery.objects.filter(pk=kept.pk, status=status).exists()
    assert Event.objects.filter(pk=kept.event_id).exists()
    assert Attempt.objects.filter(delivery=kept).count() == 1
    assert report.total == 0


def test_an_event_stays_while_any_of_its_deliveries_does(a_route):
    other_route = route(a_route.event_type, "tests.record")
    done = make_delivery(a_route, status="succeeded", ago=20 * DAY)
    unfinished = Delivery.objects.create(
        event=done.event, route=other_route, status="retrying", created_at=done.created_at
    )

    retention.prune()

    assert not Delivery.objects.filter(pk=done.pk).exists()
    assert Delivery.objects.filter(pk=unfinished.pk).exists()
    assert Event.objects.filter(pk=done.event_id).exists()

    unfinished.status = "succeeded"
    unfinished.save()
    retention.prune()
    assert not Event.objects.filter(pk=done.event_id).exists()


def test_event_type_overrides_replace_the_global_retention(a_route):
    short_type = event_type(retention_succeeded_days=3, retention_dead_days=5)
    short_route = route(short_type, "tests.record")
    short_ok = make_delivery(short_route, status="succeeded", ago=4 * DAY)
    short_dead_kept = make_delivery(short_route, status="dead", ago=4 * DAY)
    short_dead = make_delivery(short_route, status="dead", ago=6 * DAY)
    global_ok = make_delivery(a_route, status="succeeded", ago=4 * DAY)
    long_type = event_type(retention_succeeded_days=30)
    long_ok = make_delivery(route(long_type, "tests.record"), status="succeeded", ago=20 * DAY)

    retention.prune()

    remaining = ids(Delivery.objects.all())
    assert short_ok.pk not in remaining and short_dead.pk not in remaining
    assert {short_dead_kept.pk, global_ok.pk, long_ok.pk} <= remaining


def test_dry_run_counts_what_a_real_run_deletes_and_deletes_nothing(a_route):
    for _ in range(3):
        make_delivery(a_route, status="succeeded", ago=20 * DAY, attempts=2, error="e")
    shared = make_delivery(a_route, status="dead", ago=100 * DAY)
    Delivery.objects.create(event=shared.event, route=a_route, status="queued", created_at=shared.created_at)
    make_delivery(a_route, status="pending", ago=100 * DAY)
    HookFailure.objects.create(hook_name="h", event_type="t.t", model="a.b", error="x")
    HookFailure.objects.filter().update(created_at=timezone.now() - 31 * DAY)
    before = (Delivery.objects.count(), Event.objects.count(), Attempt.objects.count())

    dry = retention.prune(dry_run=True)

    assert (Delivery.objects.count(), Event.objects.count(), Attempt.objects.count()) == before
    assert HookFailure.objects.count() == 1
    assert not PruneRun.objects.exists()  # a dry run leaves no trace in the figures
    real = retention.prune()
    assert dry.counts == real.counts
    assert dry.counts["deliveries_succeeded"] == 3
    assert dry.counts["deliveries_dead"] == 1
    assert dry.counts["attempts"] == 7
    assert dry.counts["events"] == 3  # the dead delivery's event keeps its queued delivery
    assert dry.counts["hook_failures"] == 1


def test_a_prune_of_many_batches_deletes_everything_and_reports_progress(a_route):
    for _ in range(10):
        make_delivery(a_route, status="succeeded", ago=20 * DAY)
    seen = []

    report = retention.prune(batch_size=3, progress=lambda kind, n: seen.append((kind, n)))

    assert not Delivery.objects.exists() and not Event.objects.exists()
    assert report.counts["deliveries_succeeded"] == 10
    assert [n for kind, n in seen if kind == "deliveries_succeeded"] == [3, 6, 9, 10]


def test_replay_records_stay_as_the_audit_and_lose_only_their_links(a_route):
    user = get_user_model().objects.create_user("operator")
    delivery = make_delivery(a_route, status="dead", ago=100 * DAY)
    record = Replay.objects.create(
        kind=Replay.Kind.EVENT, user=user, username="operator", event=delivery.event, delivery_count=1
    )
    record.deliveries.add(delivery)

    retention.prune()

    record.refresh_from_db()
    assert record.username == "operator" and record.delivery_count == 1
    assert record.event_id is None
    assert not record.deliveries.exists()


def test_events_that_never_had_a_delivery_go_after_the_retention(a_route):
    now = timezone.now()
    kind = a_route.event_type
    fields = {"event_type": kind, "type": kind.name, "source": "/t", "data": {}}
    old = Event.objects.create(time=now - 15 * DAY, **fields)
    young = Event.objects.create(time=now - 13 * DAY, **fields)

    retention.prune()
    assert ids(Event.objects.all()) == {young.pk}

    # The next run sweeps on from where this one stopped: the young event, once old enough.
    assert not Event.objects.filter(pk=old.pk).exists()
    retention.prune(now=now + 2 * DAY)
    assert not Event.objects.filter(pk=young.pk).exists()


def test_hook_failures_test_deliveries_and_hourly_rollups_have_their_own_retention(a_route):
    now = timezone.now()
    for age in (29, 31):
        failure = HookFailure.objects.create(hook_name=f"h{age}", event_type="t.t", model="a.b", error="x")
        HookFailure.objects.filter(pk=failure.pk).update(created_at=now - age * DAY)
        trial = TrialDelivery.objects.create(route=a_route, username=f"u{age}", envelope={})
        TrialDelivery.objects.filter(pk=trial.pk).update(created_at=now - age * DAY)
    for age in (399, 401):
        hour = (now - age * DAY).replace(minute=0, second=0, microsecond=0)
        DeliveryMinute.objects.create(
            route=a_route, minute=hour, span=60, counts={"succeeded": age}, refreshed_at=now
        )

    report = retention.prune()

    assert list(HookFailure.objects.values_list("hook_name", flat=True)) == ["h29"]
    assert list(TrialDelivery.objects.values_list("username", flat=True)) == ["u29"]
    assert [row.counts["succeeded"] for row in DeliveryMinute.objects.all()] == [399]
    assert (report.counts["hook_failures"], report.counts["trials"], report.counts["rollups"]) == (1, 1, 1)


def test_each_run_is_recorded_with_running_totals(a_route):
    make_delivery(a_route, status="succeeded", ago=20 * DAY)
    retention.prune()
    make_delivery(a_route, status="succeeded", ago=20 * DAY)
    make_delivery(a_route, status="dead", ago=95 * DAY)
    retention.prune()

    last = retention.last_run()
    assert last.counts["deliveries_succeeded"] == 1 and last.counts["deliveries_dead"] == 1
    assert retention.deleted_totals()["deliveries_succeeded"] == 2
    assert retention.deleted_totals()["events"] == 3
    assert PruneRun.objects.count() == 2 and last.complete


def test_every_table_pointing_at_events_and_deliveries_is_one_the_pruner_handles():
    """A new foreign key to Event or Delivery must be handled by the pruner (and added here)."""
    handled = {
        ("Delivery", "event"): "deleted with the event's last delivery (the pruner deletes it first)",
        ("Replay", "event"): "set to NULL: the replay record stays as the audit",
        ("Attempt", "delivery"): "deleted with the delivery",
        ("Replay", "deliveries"): "the link is deleted with the delivery",
        ("Replay_deliveries", "delivery"): "(the link's own row)",
    }
    found = {
        (relation.related_model.__name__, relation.field.name)
        for model in (Event, Delivery)
        for relation in model._meta.get_fields(include_hidden=True)
        if relation.auto_created and not relation.concrete
    }
    assert found == set(handled)
