"""The demo's configuration: event types, routes and hooks for the shop, loaded idempotently."""

from dataclasses import dataclass

from django.contrib.contenttypes.models import ContentType
from django.db import transaction

from eventhub import hooks as hooks_api
from eventhub.models import EventType, Route, SignalHook
from shop.models import Customer, Order, Product

ORDER_SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "integer"},
        "customer_id": {"type": "integer"},
        "status": {"enum": [choice for choice, _ in Order.Status.choices]},
        "total_cents": {"type": "integer", "minimum": 0},
    },
    "required": ["order_id", "customer_id", "status", "total_cents"],
}
EVENT_TYPES = {
    "order.created": ("A customer placed an order.", ORDER_SCHEMA),
    "order.paid": ("An order was paid: send the receipt.", ORDER_SCHEMA),
    "order.products_changed": ("Products were added to or removed from an order.", None),
    "customer.deleted": ("A customer was deleted.", None),
    "product.price_changed": ("A product's price changed (a hook declared in code).", None),
}
ROUTES = {
    "shop: receipts": ("order.paid", "shop.send_receipt"),
    "shop: log new orders": ("order.created", "shop.log_event"),
    "shop: log order products": ("order.products_changed", "shop.log_event"),
    "shop: log deleted customers": ("customer.deleted", "shop.log_event"),
    "shop: log price changes": ("product.price_changed", "shop.log_event"),
}


CUSTOMERS = [("Ada Lovelace", "ada@example.com"), ("Alan Turing", "alan@example.com")]
PRODUCTS = [("MUG", "Mug", 1200), ("TEE", "T-shirt", 2500), ("CAP", "Cap", 1800)]


@dataclass
class DemoSummary:
    event_types: int
    routes: int
    hooks: int
    customers: int = 0
    products: int = 0
    orders_created: int = 0


@transaction.atomic
def load_demo(*, queue: str = "eventhub", with_orders: bool = False) -> DemoSummary:
    """Create or reset the shop's event types, routes and admin hooks, customers and products to
    order with; optionally sample orders.

    Running it again restores the demo configuration and adds no duplicates.
    """
    types = {
        name: EventType.objects.update_or_create(
            name=name, defaults={"description": description, "schema": schema, "active": True}
        )[0]
        for name, (description, schema) in EVENT_TYPES.items()
    }
    for name, (type_name, handler) in ROUTES.items():
        Route.objects.update_or_create(
            name=name,
            defaults={"event_type": types[type_name], "target": handler, "queue": queue, "enabled": True},
        )
    hooks = _load_hooks(types)
    customers, products = sample_catalogue()
    orders = create_sample_orders(customers, products) if with_orders else 0
    return DemoSummary(len(types), len(ROUTES), hooks, len(customers), len(products), orders)


def _load_hooks(types: dict[str, EventType]) -> int:
    order = ContentType.objects.get_for_model(Order)
    customer = ContentType.objects.get_for_model(Customer)
    hooks = {
        "shop: order created": dict(content_type=order, when="created", event_type=types["order.created"],
                                    payload="method", subject="order/{pk}"),
        "shop: order paid": dict(content_type=order, when="changed", watch_fields="status",
                                 condition={"status": ["paid"]}, event_type=types["order.paid"],
                                 payload="method", subject="order/{pk}"),
        "shop: order products changed": dict(content_type=order, signal="m2m_changed", m2m_field="products",
                                             event_type=types["order.products_changed"], payload="fields",
                                             payload_fields="id, customer, status", subject="order/{pk}"),
        "shop: customer deleted": dict(content_type=customer, signal="post_delete",
                                       event_type=types["customer.deleted"], payload="fields",
                                       payload_fields="id, name, email", subject="customer/{pk}"),
    }  # fmt: skip
    for name, fields in hooks.items():
        defaults = {"signal": "post_save", "when": "always", "watch_fields": "", "condition": {},
                    "m2m_field": "", "payload_fields": "", "enabled": True, **fields}  # fmt: skip
        hook = SignalHook.objects.filter(name=name).first() or SignalHook(name=name)
        for key, value in defaults.items():
            setattr(hook, key, value)
        hook.full_clean(validate_unique=False)
        hooks_api.check_hook(hook)
        hook.save()
    return len(hooks)


def sample_catalogue() -> tuple[list[Customer], list[Product]]:
    """The demo's two customers and three products (created when missing), so an order can be placed."""
    customers = [
        Customer.objects.get_or_create(email=email, defaults={"name": name})[0] for name, email in CUSTOMERS
    ]
    products = [
        Product.objects.get_or_create(sku=sku, defaults={"name": name, "price_cents": price})[0]
        for sku, name, price in PRODUCTS
    ]
    return customers, products


def create_sample_orders(customers: list[Customer], products: list[Product]) -> int:
    """An order for each of the two customers (one paid); none when they have orders already."""
    if Order.objects.filter(customer__in=customers).exists():
        return 0
    first = Order.objects.create(customer=customers[0], total_cents=3700)
    first.products.add(products[0], products[1])
    second = Order.objects.create(customer=customers[1], total_cents=1800)
    second.products.add(products[2])
    first.status = Order.Status.PAID
    first.save()
    return 2
