"""Replay from the admin: actions on deliveries and events, and a bulk replay page.

Each one shows an intermediate page saying how many deliveries will be sent and
sends only after the operator confirms. They need the ``eventhub.replay_delivery``
permission; the work is done by :mod:`eventhub.outbox.replay`, which checks it again
and records who replayed what.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from eventhub.dashboard.formatting import how_many
from eventhub.models import Delivery, Replay, Route
from eventhub.outbox import replay

CONFIRM_TEMPLATE = "admin/eventhub/replay_confirm.html"


class ReplayPermission:
    """Lets admin actions declare ``permissions=["replay"]``."""

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return replay.can_replay(request.user)


def _confirm_page(modeladmin, request, queryset, *, action: str, title: str, count: int, detail: str):
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "opts": modeladmin.model._meta,
        "count": count,
        "detail": detail,
        "action": action,
        "selected": [str(pk) for pk in queryset.values_list("pk", flat=True)],
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, CONFIRM_TEMPLATE, context)


@admin.action(description="Replay selected failed or dead deliveries", permissions=["replay"])
def replay_selected_deliveries(modeladmin, request: HttpRequest, queryset: QuerySet[Delivery]):
    """Confirm, then re-send the chosen deliveries that failed or are dead."""
    if request.POST.get("confirm") != "yes":
        count = replay.replayable(queryset).count()
        detail = f"{queryset.count()} selected; only failed (retrying) and dead deliveries are sent again."
        title = "Replay deliveries"
        return _confirm_page(
            modeladmin,
            request,
            queryset,
            action="replay_selected_deliveries",
            title=title,
            count=count,
            detail=detail,
        )
    sent = replay.replay_deliveries(deliveries=queryset, user=request.user)
    message = f"Replayed {how_many(sent, 'delivery', 'deliveries')}."
    modeladmin.message_user(request, message, messages.SUCCESS)
    return None


@admin.action(description="Replay selected events through today's routes", permissions=["replay"])
def replay_selected_events(modeladmin, request: HttpRequest, queryset):
    """Confirm, then deliver the chosen events again through the routes that match them today."""
    events = list(queryset)
    if request.POST.get("confirm") != "yes":
        count = sum(len(replay.matching_routes(event=e)) for e in events)
        detail = f"{len(events)} events; one new delivery per enabled route whose filter matches each event."
        return _confirm_page(
            modeladmin,
            request,
            queryset,
            action="replay_selected_events",
            title="Replay events",
            count=count,
            detail=detail,
        )
    sent = sum(len(replay.replay_event(event=e, user=request.user)) for e in events)
    modeladmin.message_user(
        request,
        f"Replayed {how_many(len(events), 'event')}: {how_many(sent, 'new delivery', 'new deliveries')}.",
        messages.SUCCESS,
    )
    return None


class BulkReplayForm(forms.Form):
    """Which failed or dead deliveries a bulk replay sends."""

    route = forms.ModelChoiceField(queryset=Route.objects.all(), required=False, empty_label="any route")
    status = forms.ChoiceField(
        choices=[("", "failed or dead")] + [(s.value, s.label) for s in replay.REPLAYABLE_STATUSES],
        required=False,
    )
    since = forms.DateTimeField(required=False, help_text="Created at or after (e.g. 2026-01-31 08:00).")
    until = forms.DateTimeField(required=False, help_text="Created before.")

    def filters(self) -> dict:
        data = self.cleaned_data
        return {
            "route": data["route"],
            "status": data["status"] or None,
            "since": data["since"],
            "until": data["until"],
        }


class BulkReplayAdmin(ReplayPermission):
    """Adds /admin/eventhub/delivery/replay/ : choose filters, see the count, confirm."""

    def get_urls(self):
        view = self.admin_site.admin_view(self.bulk_replay_view)
        return [path("replay/", view, name="eventhub_delivery_bulk_replay"), *super().get_urls()]

    def bulk_replay_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_replay_permission(request):
            raise PermissionDenied
        form = BulkReplayForm(request.POST or request.GET or None)
        count = None
        if form.is_bound and form.is_valid():
            filters = form.filters()
            if request.method == "POST" and request.POST.get("confirm") == "yes":
                sent = replay.replay_matching(**filters, user=request.user, dry_run=False)
                message = f"Replayed {how_many(sent, 'delivery', 'deliveries')}."
                self.message_user(request, message, messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:eventhub_delivery_changelist"))
            count = replay.replay_matching(**filters, user=request.user, dry_run=True)
        context = {
            **self.admin_site.each_context(request),
            "title": "Bulk replay",
            "opts": self.model._meta,
            "form": form,
            "count": count,
        }
        return TemplateResponse(request, "admin/eventhub/replay_bulk.html", context)


@admin.register(Replay)
class ReplayAdmin(admin.ModelAdmin):
    """Who replayed what and when: a read-only record."""

    list_display = ["created_at", "username", "kind", "delivery_count", "event", "criteria"]
    list_filter = ["kind", "created_at"]
    search_fields = ["username", "=event__id"]
    date_hierarchy = "created_at"
    raw_id_fields = ["event", "user"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # the record of who replayed what; only retention deletes it
