"""manage.py emit TYPE --data JSON: emit an event from the command line."""

import json

from django.core.management.base import BaseCommand, CommandError

from eventhub import broker
from eventhub.dashboard.formatting import how_many
from eventhub.errors import EmitError
from eventhub.outbox import emit


class Command(BaseCommand):
    help = (
        "Emit one event of TYPE. The data is validated against the type's JSON Schema; "
        "exit status 0 when stored, 1 when refused (the reason is printed)."
    )

    def add_arguments(self, parser):
        parser.add_argument("type", help="Event type name, e.g. order.paid")
        parser.add_argument("--data", default="null", help="The event's data as JSON (default: null)")
        parser.add_argument("--subject", default=None, help="CloudEvents subject, e.g. order/42")
        parser.add_argument(
            "--source", default=None, help="CloudEvents source (default: EVENTHUB DEFAULT_SOURCE)"
        )

    def handle(self, *args, type, data, subject, source, **options):
        try:
            payload = json.loads(data)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--data is not valid JSON: {exc}") from exc
        try:
            event = emit(type, payload, subject=subject, source=source)
        except EmitError as exc:
            raise CommandError(str(exc)) from exc
        deliveries = list(event.deliveries.values_list("pk", flat=True))
        routed = how_many(len(deliveries), "delivery", "deliveries")
        self.stdout.write(f"emitted {event.type} {event.pk} with {routed}")
        if broker.is_embedded():
            # The embedded worker lives in this process: let it finish before we exit.
            broker.drain_embedded()
            for d in event.deliveries.select_related("route").order_by("pk"):
                self.stdout.write(f"  delivery {d.pk} via {d.route.name}: {d.status} {d.last_error}".rstrip())
