"""Money in the demo shop: stored in cents, shown and typed as an amount with its currency."""

from decimal import Decimal

from django import forms

CURRENCY = "€"


def money(cents: int | None) -> str:
    """1200 -> "€12.00"."""
    return "" if cents is None else f"{CURRENCY}{Decimal(cents) / 100:,.2f}"


def to_cents(amount: Decimal) -> int:
    """Decimal("12.5") -> 1250."""
    return int((amount * 100).quantize(Decimal(1)))


class MoneyField(forms.DecimalField):
    """An amount typed as 12.50, at least 0, with two decimals."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_digits", 12)
        kwargs.setdefault("decimal_places", 2)
        kwargs.setdefault("min_value", Decimal(0))
        super().__init__(**kwargs)
