"""The demo shop: a small domain whose models emit events through signal hooks."""

from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"
    verbose_name = "shop (eventhub demo)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # A hook kept in code: shown read-only in the admin next to the admin's own hooks.
        from eventhub import hooks
        from shop.models import Product

        hooks.on_save(
            Product,
            "product.price_changed",
            when="changed",
            fields=["price_cents"],
            payload=["id", "sku", "price_cents"],
            subject="product/{sku}",
            name="shop: product price changed",
        )
