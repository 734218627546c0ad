"""Handlers the demo routes name; eventhub loads every app's consumers module at start-up."""

import logging

from eventhub import consumer
from shop.models import Customer, Receipt

logger = logging.getLogger(__name__)


@consumer("shop.send_receipt")
def send_receipt(envelope: dict) -> None:
    """Pretend to e-mail a receipt for a paid order; record it once per event."""
    data = envelope["data"]
    email = Customer.objects.filter(pk=data["customer_id"]).values_list("email", flat=True).first() or ""
    _, created = Receipt.objects.get_or_create(
        event_id=envelope["id"], defaults={"order_id": data["order_id"], "email": email}
    )
    if created:
        logger.info("Receipt for order %s sent to %s", data["order_id"], email)


@consumer("shop.log_event")
def log_event(envelope: dict) -> None:
    """Log any event: the demo's catch-all consumer."""
    logger.info("shop event %s %s: %s", envelope["type"], envelope.get("subject", ""), envelope["data"])
