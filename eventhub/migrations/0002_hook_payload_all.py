from django.db import migrations, models


def all_fields_explicit(apps, schema_editor):
    # Hooks that named no fields sent every field; say so explicitly now that "no fields" is refused.
    SignalHook = apps.get_model("eventhub", "SignalHook")
    SignalHook.objects.filter(payload="fields", payload_fields="").update(payload="all")


def back_to_implicit(apps, schema_editor):
    SignalHook = apps.get_model("eventhub", "SignalHook")
    SignalHook.objects.filter(payload="all").update(payload="fields", payload_fields="")


class Migration(migrations.Migration):
    dependencies = [
        ("eventhub", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="signalhook",
            name="payload",
            field=models.CharField(
                choices=[
                    ("fields", "the chosen fields"),
                    ("all", "all fields (never password, token, key or secret-like ones)"),
                    ("method", "the model's to_event_data() method"),
                ],
                default="fields",
                max_length=20,
            ),
        ),
        migrations.RunPython(all_fields_explicit, back_to_implicit),
    ]
