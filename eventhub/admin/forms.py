"""Admin forms that read as what they edit: optional JSON starts empty, help texts are text, and a
route shows only the fields of its destination kind.
"""

import json
from typing import Any

from django import forms
from django.utils.html import conditional_escape

from eventhub.destinations import handler_names
from eventhub.discovery import liveness
from eventhub.models import EventType, Route
from eventhub.retention import Retention, retention_of, route_window, too_short


class EscapedHelpTexts:
    """ModelAdmin mixin: help texts shown as written (Django's admin renders them as HTML).

    "Empty gives <app_label>.<model>/<pk>" would otherwise lose its placeholders as unknown tags.
    """

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if formfield is not None and formfield.help_text:
            formfield.help_text = conditional_escape(formfield.help_text)
        return formfield


class OptionalJSONField(forms.JSONField):
    """A JSON field that may be left empty: shown empty (not ``null``) when there is no value."""

    def prepare_value(self, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2)


SCHEMA_EXAMPLE = 'e.g. {"type": "object", "required": ["order_id"]}'


class EventTypeForm(forms.ModelForm):
    """The event type form: the schema starts empty."""

    schema = OptionalJSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "placeholder": SCHEMA_EXAMPLE}),
        help_text=EventType._meta.get_field("schema").help_text + " Leave empty to accept any data.",
    )

    class Meta:
        model = EventType
        fields = [
            "name",
            "description",
            "schema",
            "active",
            "retention_succeeded_days",
            "retention_dead_days",
        ]

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.instance.pk is None or self.errors:
            return cleaned
        # Overrides shorter than a route's retry window would delete what may still be retried.
        kept = retention_of(
            EventType(
                retention_succeeded_days=cleaned.get("retention_succeeded_days"),
                retention_dead_days=cleaned.get("retention_dead_days"),
            )
        )
        windows = [(route.name, route_window(route)) for route in self.instance.routes.all()]
        reason = too_short(retention=kept, windows=windows)
        if reason:
            field = (
                "retention_succeeded_days" if kept.succeeded_days <= kept.dead_days else "retention_dead_days"
            )
            self.add_error(field, reason)
        return cleaned


# Which of a route's destination fields belong to which kind; the others are hidden (route_form.js)
# and cleared on save.
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    Route.Kind.HANDLER: ("handler",),
    Route.Kind.WEBHOOK: ("target",),
    Route.Kind.AMQP: ("target",),
}


class RouteForm(forms.ModelForm):
    """The route form: a handler route picks a registered handler; webhook and AMQP routes name a target.

    A webhook's signing secret is made by eventhub and shown once (eventhub.admin.shown_once).
    """

    handler = forms.ChoiceField(
        required=False,
        label="Handler",
        help_text="A function registered with @eventhub.consumer(name) in this project, or reported by "
        "a live worker in Consul.",
    )

    class Meta:
        model = Route
        # The admin's fieldsets choose the fields it shows; these are the ones this form handles.
        fields = ["destination_kind", "target"]

    class Media:
        js = ["eventhub/admin/route_form.js"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A user who may only view routes gets these as read-only fields, not form fields.
        if "handler" in self.fields:
            current = self.instance.target if self.instance.destination_kind == Route.Kind.HANDLER else ""
            self.fields["handler"].choices = handler_choices(current=current)
            self.fields["handler"].initial = current
        if "target" in self.fields:
            self.fields["target"].required = False  # required per kind, in clean()
        for name in {name for names in KIND_FIELDS.values() for name in names} & set(self.fields):
            self.fields[name].widget.attrs["data-eventhub-kinds"] = kinds_of(name)

    def clean(self) -> dict:
        cleaned = super().clean()
        kind = cleaned.get("destination_kind")
        if kind == Route.Kind.HANDLER:
            # The select, or a name posted as the target by a script that does not know the select.
            name = cleaned.get("handler") or cleaned.get("target", "")
            if not name:
                self.add_error("handler", "Choose the handler this route calls.")
            cleaned["target"] = name
        elif kind in KIND_FIELDS and not cleaned.get("target"):
            self.add_error("target", "This field is required for this destination kind.")
        self._check_retention(cleaned)
        return cleaned

    def _check_retention(self, cleaned: dict) -> None:
        """Refuse a retry policy longer than its event type keeps finished deliveries (docs/retention.md)."""
        event_type = cleaned.get("event_type") or getattr(self.instance, "event_type", None)
        policy = ("max_attempts", "max_backoff_ms", "time_limit_ms")
        if event_type is None or any(name in self.errors for name in policy):
            return
        values = {name: cleaned.get(name, getattr(self.instance, name)) for name in policy}
        if any(value is None for value in values.values()):
            return
        probe = Route(name=cleaned.get("name") or self.instance.name, **values)
        kept: Retention = retention_of(event_type)
        reason = too_short(retention=kept, windows=[(probe.name, route_window(probe))])
        if reason:
            self.add_error("max_attempts", reason)


def kinds_of(field: str) -> str:
    """The destination kinds a route field belongs to, space-separated (for route_form.js)."""
    return " ".join(kind for kind, names in KIND_FIELDS.items() if field in names)


def handler_choices(*, current: str = "") -> list[tuple[str, str]]:
    """Registered handlers and those live workers report, marked live; the current one even if neither."""
    live = liveness.live_consumers()
    live_names = set(live.handlers) if live.known else set()
    names = sorted(set(handler_names()) | live_names | ({current} if current else set()))
    known = set(handler_names()) | live_names

    def label(name: str) -> str:
        if name in live_names:
            return f"{name} (live consumer)"
        return name if name in known else f"{name} (not registered here)"

    return [("", "---------")] + [(name, label(name)) for name in names]
