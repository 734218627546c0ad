"""Admin for signal hooks: editable admin hooks, hooks declared in code shown read-only,
and the failures of hooks that could not emit.
"""

from django import forms
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.dateformat import format as format_date

from eventhub import hooks
from eventhub.admin.display import breakable, describe_trigger
from eventhub.admin.forms import EscapedHelpTexts
from eventhub.models import HookFailure, SignalHook


def hookable_content_types() -> QuerySet[ContentType]:
    """Content types of the project's models that hooks may watch (not eventhub's own, nor credentials).

    Django's own bookkeeping (sessions, log entries, content types) and auth are refused by
    hooks.refused_model too, so the list shows the project's models only.
    """
    cts = ContentType.objects.exclude(app_label__in=hooks.EXCLUDED_APPS).order_by("app_label", "model")
    return cts.filter(
        pk__in=[ct.pk for ct in cts if ct.model_class() and not hooks.refused_model(ct.model_class())]
    )


class HookableModelFilter(admin.RelatedFieldListFilter):
    """The "model" filter of the hooks list: only the models hooks may watch."""

    def field_choices(self, field, request, model_admin):
        return [(ct.pk, f"{ct.app_label}.{ct.model}") for ct in hookable_content_types()]


class SignalHookForm(forms.ModelForm):
    """The hook form: field by field, then the same checks a hook declared in code passes."""

    class Meta:
        model = SignalHook
        fields = [
            "name", "enabled", "content_type", "signal", "event_type", "when", "watch_fields",
            "condition", "m2m_field", "payload", "payload_fields", "subject",
        ]  # fmt: skip

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.errors:  # a field is already wrong: its own message says enough
            return cleaned
        values = {name: value for name, value in cleaned.items() if name in _HOOK_FIELDS}
        for field, message in hooks.hook_config_errors(SignalHook(**values)).items():
            self.add_error(field if field in self.fields else None, message)
        return cleaned


_HOOK_FIELDS = {f.name for f in SignalHook._meta.concrete_fields}


@admin.register(SignalHook)
class SignalHookAdmin(EscapedHelpTexts, admin.ModelAdmin):
    form = SignalHookForm
    list_display = ["name", "enabled", "hooked_model", "fires", "type_name", "updated"]
    list_filter = ["enabled", "signal", ("content_type", HookableModelFilter), "event_type"]
    search_fields = ["name", "event_type__name"]
    list_select_related = ["content_type", "event_type"]
    fieldsets = [
        (None, {"fields": ["name", "enabled", "content_type", "signal", "event_type"]}),
        ("When it fires", {"fields": ["when", "watch_fields", "condition", "m2m_field"]}),
        ("What it emits", {"fields": ["payload", "payload_fields", "subject"]}),
    ]

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):
        if db_field.name == "content_type":
            kwargs["queryset"] = hookable_content_types()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    class Media:
        css = {"all": ["eventhub/admin/lists.css"]}

    @admin.display(description="model", ordering="content_type__model")
    def hooked_model(self, obj: SignalHook) -> str:
        return breakable(f"{obj.content_type.app_label}.{obj.content_type.model}")

    @admin.display(description="fires when")
    def fires(self, obj: SignalHook) -> str:
        return describe_trigger(
            signal=obj.signal,
            when=obj.when,
            watch_fields=[f.strip() for f in obj.watch_fields.split(",") if f.strip()],
            m2m_field=obj.m2m_field,
        )

    @admin.display(description="event type", ordering="event_type__name")
    def type_name(self, obj: SignalHook) -> str:
        return breakable(obj.event_type.name)

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, obj: SignalHook) -> str:
        return format_date(timezone.localtime(obj.updated_at), "Y-m-d H:i")

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        # Operators see every source of events: hooks in code are listed below the admin's own.
        code_hooks = [{"hook": spec, "fires": _fires(spec)} for spec in hooks.code_hooks()]
        extra_context = {**(extra_context or {}), "code_hooks": code_hooks}
        return super().changelist_view(request, extra_context=extra_context)


def _fires(spec: hooks.HookSpec) -> str:
    return describe_trigger(
        signal=spec.signal, when=spec.when, watch_fields=spec.watch_fields, m2m_field=spec.m2m_field
    )


@admin.register(HookFailure)
class HookFailureAdmin(admin.ModelAdmin):
    """Read-only records; operators delete them once the hook or schema is fixed."""

    list_display = ["created_at", "hook_name", "event_type", "model", "object_pk", "short_error"]
    list_filter = ["hook_name", "event_type", "model"]
    search_fields = ["hook_name", "event_type", "object_pk", "error"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="error")
    def short_error(self, obj: HookFailure) -> str:
        return obj.error[:160]
