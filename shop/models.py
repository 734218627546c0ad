"""The demo shop's domain: customers order products. Nothing here knows about eventhub
except ``Order.to_event_data()``, which hooks may use as the event payload.
"""

from django.db import models


class Customer(models.Model):
    name = models.CharField(max_length=200)
    email = models.EmailField(unique=True)

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    sku = models.CharField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    price_cents = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class Order(models.Model):
    class Status(models.TextChoices):
        NEW = "new", "new"
        PAID = "paid", "paid"
        SHIPPED = "shipped", "shipped"
        CANCELLED = "cancelled", "cancelled"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="orders")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)
    total_cents = models.PositiveIntegerField(default=0)
    products = models.ManyToManyField(Product, blank=True, related_name="orders")
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"order {self.pk} ({self.status})"

    def to_event_data(self) -> dict:
        """The order as its events carry it."""
        return {
            "order_id": self.pk,
            "customer_id": self.customer_id,
            "status": self.status,
            "total_cents": self.total_cents,
        }


class Receipt(models.Model):
    """Written by the shop.send_receipt consumer: one per order.paid event."""

    order_id = models.BigIntegerField()
    event_id = models.CharField(max_length=100, unique=True)
    email = models.EmailField()
    sent_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"receipt for order {self.order_id}"
