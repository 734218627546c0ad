"""manage.py eventhub_demo: load the shop demo's event types, routes and signal hooks."""

from django.core.management.base import BaseCommand

from eventhub import broker as brokers
from eventhub.conf import eventhub_settings
from shop.demo import load_demo


class Command(BaseCommand):
    help = (
        "Load the shop demo: event types, handler routes, signal hooks, and customers and products to "
        "order with (idempotent; re-running restores the demo configuration). --with-orders also "
        "creates two orders, one of them paid."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--with-orders",
            action="store_true",
            help="Also create two orders, one of them paid (their events go through the hooks).",
        )
        parser.add_argument(
            "--queue",
            default=None,
            help="The queue (consumer group) of the demo's routes; default EVENTHUB['DEFAULT_QUEUE'].",
        )

    def handle(self, *args, with_orders: bool, queue: str | None, **options) -> None:
        summary = load_demo(queue=queue or eventhub_settings.DEFAULT_QUEUE, with_orders=with_orders)
        self.stdout.write(
            f"Demo loaded: {summary.event_types} event types, {summary.routes} routes, "
            f"{summary.hooks} signal hooks (plus 1 declared in code), "
            f"{summary.customers} customers and {summary.products} products."
        )
        if with_orders:
            self.stdout.write(f"Sample orders created: {summary.orders_created}.")
            # The embedded broker lives in this process: deliver the sample events before exiting.
            brokers.drain_embedded(timeout_ms=15_000)
        self.stdout.write("Add or edit an order in /admin/shop/order/ and watch /eventhub/ for its events.")
