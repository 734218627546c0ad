"""Admin for the demo shop: edit orders here and watch the events appear."""

from decimal import Decimal

from django import forms
from django.contrib import admin

from shop.models import Customer, Order, Product, Receipt
from shop.money import CURRENCY, MoneyField, money, to_cents


class ProductForm(forms.ModelForm):
    """A product's price typed as money; stored in cents."""

    price = MoneyField(label=f"Price ({CURRENCY})")

    class Meta:
        model = Product
        fields = ["sku", "name"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.price_cents is not None:
            self.fields["price"].initial = Decimal(self.instance.price_cents) / 100

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("price") is not None:
            self.instance.price_cents = to_cents(cleaned["price"])
        return cleaned


class OrderForm(forms.ModelForm):
    """An order's total typed as money, or left empty for the sum of its products' prices."""

    total = MoneyField(
        label=f"Total ({CURRENCY})",
        required=False,
        help_text="Leave empty for the sum of the chosen products' prices.",
    )

    class Meta:
        model = Order
        fields = ["customer", "status", "products", "note"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["total"].initial = Decimal(self.instance.total_cents) / 100

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("total") is not None:
            self.instance.total_cents = to_cents(cleaned["total"])
        else:
            self.instance.total_cents = sum(p.price_cents for p in cleaned.get("products") or ())
        return cleaned


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["name", "email"]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    form = ProductForm
    list_display = ["sku", "name", "price"]

    @admin.display(description="price", ordering="price_cents")
    def price(self, obj: Product) -> str:
        return money(obj.price_cents)


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    form = OrderForm
    list_display = ["id", "customer", "status", "total", "created_at"]
    list_filter = ["status"]
    filter_horizontal = ["products"]

    @admin.display(description="total", ordering="total_cents")
    def total(self, obj: Order) -> str:
        return money(obj.total_cents)


@admin.register(Receipt)
class ReceiptAdmin(admin.ModelAdmin):
    list_display = ["order_id", "email", "event_id", "sent_at"]
