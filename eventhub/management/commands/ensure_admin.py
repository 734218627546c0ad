"""manage.py ensure_admin: create a local superuser for the embedded development run."""

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Create the superuser named by DJANGO_SUPERUSER_USERNAME (default admin) with password "
        "DJANGO_SUPERUSER_PASSWORD (default admin) unless a user of that name exists. For local runs only."
    )

    def handle(self, *args, **options):
        if not settings.DEBUG:
            # admin/admin on a server reachable by others is an open door.
            raise CommandError(
                "ensure_admin is for local development runs (DEBUG=true); with DEBUG off create "
                "users with manage.py createsuperuser."
            )
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "admin")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "admin")
        users = get_user_model().objects
        if users.filter(username=username).exists():
            self.stdout.write(f"superuser {username!r} exists")
            return
        users.create_superuser(username=username, email=f"{username}@localhost", password=password)
        self.stdout.write(
            f"created superuser {username!r} (password from DJANGO_SUPERUSER_PASSWORD, default 'admin')"
        )
