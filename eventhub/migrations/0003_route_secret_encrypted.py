"""Webhook signing secrets encrypted at rest, with room for the previous one during a rotation."""

import eventhub.destinations.secrets
from django.db import migrations, models


def seal_existing(apps, schema_editor):
    from eventhub.destinations import secrets

    Route = apps.get_model("eventhub", "Route")
    for route in Route.objects.all():
        route.secret_sealed = secrets.seal(route.secret or secrets.new_secret())
        route.save(update_fields=["secret_sealed"])


def unseal_existing(apps, schema_editor):
    from eventhub.destinations import secrets

    Route = apps.get_model("eventhub", "Route")
    for route in Route.objects.all():
        route.secret = secrets.unseal(route.secret_sealed)
        route.save(update_fields=["secret"])


class Migration(migrations.Migration):
    dependencies = [
        ("eventhub", "0002_hook_payload_all"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="route",
            options={
                "ordering": ["name"],
                "permissions": [
                    ("rotate_route_secret", "Can rotate webhook signing secrets (and see the new one once)")
                ],
            },
        ),
        migrations.AddField(
            model_name="route",
            name="secret_sealed",
            field=models.TextField(default=eventhub.destinations.secrets.sealed_new_secret, editable=False),
        ),
        migrations.AddField(
            model_name="route",
            name="previous_secret_sealed",
            field=models.TextField(blank=True, default="", editable=False),
        ),
        migrations.AddField(
            model_name="route",
            name="previous_secret_expires_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(seal_existing, unseal_existing),
        migrations.RemoveField(
            model_name="route",
            name="secret",
        ),
    ]
