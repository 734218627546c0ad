"""Admin for signal hooks: editable admin hooks, hooks declared in code shown read-only,
and the failures of hooks that could not emit.
"""

from django import forms
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from eventhub import hooks
from eventhub.models import HookFailure, SignalHook


def hookable_content_types() -> QuerySet[ContentType]:
    """Content types of installed models that hooks may watch (not eventhub's own, nor credentials)."""
    cts = ContentType.objects.exclude(app_label__in=hooks.EXCLUDED_APPS).order_by("app_label", "model")
    return cts.filter(
        pk__in=[ct.pk for ct in cts if ct.model_class() and not hooks.refused_model(ct.model_class())]
    )


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
class SignalHookAdmin(admin.ModelAdmin):
    form = SignalHookForm
    list_display = ["name", "enabled", "content_type", "signal", "when", "event_type", "updated_at"]
    list_filter = ["enabled", "signal", "content_type", "event_type"]
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

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        # Operators see every source of events: hooks in code are listed below the admin's own.
        extra_context = {**(extra_context or {}), "code_hooks": hooks.code_hooks()}
        return super().changelist_view(request, extra_context=extra_context)


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
