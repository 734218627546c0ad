"""The route admin's "try it" endpoints: match recent events, preview a transform, send a test event.

They answer the change form's buttons with JSON (the form's unsaved values are
posted, so an operator tries before saving). POST with the CSRF token only, and
each checks the permission to change routes; the work is in eventhub.worker.trial.
"""

import json

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path
from django.views.decorators.http import require_POST

from eventhub import worker
from eventhub.conf import eventhub_settings
from eventhub.errors import InvalidEventData
from eventhub.events import KeyTemplateError, PatternError, TransformError, check_key_template
from eventhub.models import Event, EventType, Route, TrialDelivery


class MatchForm(forms.Form):
    event_type = forms.ModelChoiceField(queryset=EventType.objects.all())
    filter = forms.JSONField(required=False)
    ordering_key = forms.CharField(required=False, strip=False)
    limit = forms.IntegerField(min_value=1, initial=100)

    def clean_limit(self) -> int:
        most = eventhub_settings.TRY_RECENT_EVENTS_MAX
        if self.cleaned_data["limit"] > most:
            raise forms.ValidationError(f"At most {most} events can be examined.")
        return self.cleaned_data["limit"]


class TransformForm(forms.Form):
    event_type = forms.ModelChoiceField(queryset=EventType.objects.all())
    transform = forms.JSONField(required=False)


class SendForm(forms.Form):
    data = forms.JSONField(required=False, help_text="The sample event's data.")


def _errors(form: forms.Form) -> JsonResponse:
    text = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in form.errors.items())
    return JsonResponse({"error": text}, status=400)


def _refused(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


class RouteTryAdmin:
    """Adds /admin/eventhub/route/try/match/, try/transform/ and <id>/try/send/ to the route admin."""

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "try_sample_data": sample_data(object_id)}
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("try/match/", wrap(require_POST(self.try_match_view)), name="eventhub_route_try_match"),
            path(
                "try/transform/",
                wrap(require_POST(self.try_transform_view)),
                name="eventhub_route_try_transform",
            ),
            path(
                "<int:route_id>/try/send/",
                wrap(require_POST(self.try_send_view)),
                name="eventhub_route_try_send",
            ),
            *super().get_urls(),
        ]

    def _check(self, request: HttpRequest, route: Route | None = None) -> None:
        allowed = self.has_change_permission(request, route) or (
            route is None and self.has_add_permission(request)
        )
        if not allowed:
            raise PermissionDenied

    def try_match_view(self, request: HttpRequest) -> JsonResponse:
        """Which of the last N events of the type the posted filter matches."""
        self._check(request)
        form = MatchForm(request.POST)
        if not form.is_valid():
            return _errors(form)
        data = form.cleaned_data
        try:
            check_key_template(data["ordering_key"])
            report = worker.match_recent(
                event_type=data["event_type"],
                pattern=data["filter"] or {},
                ordering_key=data["ordering_key"],
                limit=data["limit"],
            )
        except (PatternError, KeyTemplateError) as exc:
            return _refused(f"Invalid {'filter' if isinstance(exc, PatternError) else 'ordering key'}: {exc}")
        return JsonResponse(
            {"examined": report.examined, "matched": report.matched, "examples": report.examples}
        )

    def try_transform_view(self, request: HttpRequest) -> JsonResponse:
        """What the posted transform makes of the latest event of the type."""
        self._check(request)
        form = TransformForm(request.POST)
        if not form.is_valid():
            return _errors(form)
        try:
            preview = worker.preview_transform(
                event_type=form.cleaned_data["event_type"], spec=form.cleaned_data["transform"] or {}
            )
        except TransformError as exc:
            return _refused(f"Invalid transform: {exc}")
        except worker.NoRecentEvent as exc:
            return _refused(str(exc), status=404)
        return JsonResponse(preview)

    def try_send_view(self, request: HttpRequest, route_id: int) -> JsonResponse:
        """Send a test event through the saved route's destination; the outcome, recorded."""
        route = get_object_or_404(Route.objects.select_related("event_type"), pk=route_id)
        self._check(request, route)
        form = SendForm(request.POST)
        if not form.is_valid():
            return _errors(form)
        try:
            trial = worker.send_trial(route=route, data=form.cleaned_data["data"], user=request.user)
        except InvalidEventData as exc:
            return _refused(str(exc))
        return JsonResponse(trial_json(trial))


def sample_data(route_id) -> str:
    """The latest event's data of the route's type, as JSON for the test form ({} when none)."""
    try:
        route = Route.objects.filter(pk=route_id).select_related("event_type").first()
    except (TypeError, ValueError):  # not a route id: the admin answers that itself
        route = None
    if route is None:
        return "{}"
    latest = Event.objects.filter(type=route.event_type.name).order_by("-time").values_list("data", flat=True)
    data = latest.first()
    return json.dumps(data if data is not None else {}, indent=2)[:5000]


def trial_json(trial: TrialDelivery) -> dict:
    """A test delivery as the route page shows it."""
    return {
        "id": trial.pk,
        "succeeded": trial.succeeded,
        "duration_ms": round(trial.duration_ms, 1),
        "status": trial.response_status,
        "excerpt": trial.response_excerpt,
        "error": trial.error,
        "transform_version": trial.transform_version,
        "sent": json.dumps(trial.envelope, sort_keys=True)[:2000],
    }


@admin.register(TrialDelivery)
class TrialDeliveryAdmin(admin.ModelAdmin):
    """Test events sent from route pages: a read-only record of who tried what."""

    list_display = ["created_at", "route", "username", "succeeded", "response_status", "duration_ms", "error"]
    list_filter = ["succeeded", "route"]
    list_select_related = ["route"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
