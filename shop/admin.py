"""Admin for the demo shop: edit orders here and watch the events appear."""

from django.contrib import admin

from shop.models import Customer, Order, Product, Receipt


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["name", "email"]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "price_cents"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "customer", "status", "total_cents", "created_at"]
    list_filter = ["status"]
    filter_horizontal = ["products"]


@admin.register(Receipt)
class ReceiptAdmin(admin.ModelAdmin):
    list_display = ["order_id", "email", "event_id", "sent_at"]
