"""manage.py eventhub_reseal_secrets: encrypt every stored webhook secret again with the newest key."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from eventhub.destinations import secrets
from eventhub.models import Route


class Command(BaseCommand):
    help = (
        "Re-encrypt every route's webhook signing secrets with the first key of EVENTHUB_SECRETS_KEYS "
        "(or SECRET_KEY). Run it after putting a new key first; then the old key can be removed."
    )

    def handle(self, *args, **options):
        count = 0
        try:
            with transaction.atomic():
                for route in Route.objects.select_for_update().order_by("pk"):
                    route.secret_sealed = secrets.reseal(route.secret_sealed)
                    route.previous_secret_sealed = secrets.reseal(route.previous_secret_sealed)
                    route.save(update_fields=["secret_sealed", "previous_secret_sealed"])
                    count += 1
        except secrets.SecretUnreadable as exc:
            raise CommandError(f"{exc} Nothing was changed.") from exc
        self.stdout.write(f"re-encrypted the secrets of {count} route(s) with the newest key")
