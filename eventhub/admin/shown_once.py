"""Secrets in the admin: shown once on the response page, masked after, rotated in one step.

A new webhook route's signing secret, a rotated one, and a new API token are shown once,
on the page that answers the request that made them (never in the ``messages`` cookie),
with ``Cache-Control: no-store``. Afterwards the admin shows only a fingerprint.
Rotating needs ``eventhub.rotate_route_secret``; the work is
:func:`eventhub.destinations.secrets.rotate`.
"""

from collections.abc import Sequence
from datetime import timedelta

from django import forms
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from eventhub.conf import eventhub_settings
from eventhub.destinations import secrets
from eventhub.models import Route

ROTATE_PERMISSION = "eventhub.rotate_route_secret"
OVERLAPS = [(0, "none: the current secret stops signing at once"), (3600, "1 hour"), (86400, "1 day"),
            (3 * 86400, "3 days"), (7 * 86400, "7 days")]  # fmt: skip


def shown_once_page(
    request: HttpRequest,
    modeladmin: admin.ModelAdmin,
    *,
    title: str,
    shown: Sequence[tuple],
    continue_url: str,
) -> TemplateResponse:
    """The page that shows freshly made secrets once: ``shown`` holds (label, value, note) rows."""
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "opts": modeladmin.model._meta,
        "shown": shown,
        "continue_url": continue_url,
    }
    response = TemplateResponse(request, "admin/eventhub/shown_once.html", context)
    response["Cache-Control"] = "no-store"
    return response


class RotateForm(forms.Form):
    overlap = forms.TypedChoiceField(
        coerce=int, choices=OVERLAPS, label="Keep signing with the current secret for",
        help_text="Receivers that still hold the current secret keep verifying during this time.",
    )  # fmt: skip


def _overlap_initial() -> int:
    wanted = int(eventhub_settings.WEBHOOK_SECRET_OVERLAP_SECONDS)
    return min((seconds for seconds, _ in OVERLAPS), key=lambda seconds: abs(seconds - wanted))


def rotate_routes(
    modeladmin, request: HttpRequest, routes: Sequence[Route], *, action: str = ""
) -> HttpResponse:
    """Ask for the overlap, then rotate every route's secret and show the new ones once."""
    if not request.user.has_perm(ROTATE_PERMISSION):
        raise PermissionDenied
    confirmed = request.method == "POST" and request.POST.get("confirm") == "yes"
    form = RotateForm(request.POST if confirmed else None, initial={"overlap": _overlap_initial()})
    if confirmed and form.is_valid():
        overlap = timedelta(seconds=form.cleaned_data["overlap"])
        shown = [(route.name, secrets.rotate(route, overlap=overlap), _note(route)) for route in routes]
        changelist = reverse("admin:eventhub_route_changelist")
        return shown_once_page(
            request, modeladmin, title="New signing secrets", shown=shown, continue_url=changelist
        )
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Rotate signing secrets",
        "opts": modeladmin.model._meta,
        "routes": routes,
        "form": form,
        "action": action,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/eventhub/rotate_secret.html", context)


def _note(route: Route) -> str:
    if route.previous_secret_expires_at:
        return f"The previous secret also signs until {route.previous_secret_expires_at:%Y-%m-%d %H:%M} UTC."
    return "Only this secret signs from now on."


@admin.action(description="Rotate the signing secrets of the selected routes", permissions=["rotate_secret"])
def rotate_selected_secrets(modeladmin, request: HttpRequest, queryset) -> HttpResponse:
    return rotate_routes(modeladmin, request, list(queryset), action="rotate_selected_secrets")


class RouteSecretAdmin:
    """RouteAdmin's part about secrets: the masked field, the rotation page, the new route's page."""

    def has_rotate_secret_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(ROTATE_PERMISSION)

    @admin.display(description="signing secret")
    def signing_secret(self, obj: Route) -> str:
        # Marked for the route form's script, which shows it for webhook routes only.
        return format_html('<span data-eventhub-kinds="webhook">{}</span>', self._secret_text(obj))

    def _secret_text(self, obj: Route) -> str:
        if not obj.pk:
            return "Made when the route is saved, and shown once then."
        in_use = secrets.signing_secrets(obj)
        expiry = obj.previous_secret_expires_at
        during = f" (the previous one until {expiry:%Y-%m-%d %H:%M} UTC)" if len(in_use) > 1 else ""
        url = reverse("admin:eventhub_route_rotate_secret", args=[obj.pk])
        return format_html(
            '<code>{}</code>{} · <a href="{}">rotate</a>', secrets.describe(in_use[:1]), during, url
        )

    def get_urls(self):
        view = self.admin_site.admin_view(self.rotate_secret_view)
        name = "eventhub_route_rotate_secret"
        return [path("<path:object_id>/rotate-secret/", view, name=name), *super().get_urls()]

    def rotate_secret_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        route = get_object_or_404(Route, pk=object_id)
        return rotate_routes(self, request, [route])

    def response_add(self, request: HttpRequest, obj: Route, post_url_continue=None) -> HttpResponse:
        response = super().response_add(request, obj, post_url_continue)
        if obj.destination_kind != Route.Kind.WEBHOOK:
            return response
        return shown_once_page(
            request, self, title=f"Signing secret of {obj.name}",
            shown=[(obj.name, obj.secret, "Receivers verify requests with it (Standard Webhooks).")],
            continue_url=response.get("Location") or reverse("admin:eventhub_route_changelist"),
        )  # fmt: skip
