"""Admin for event types and routes (edited by operators), events and deliveries (read-only records)."""

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from eventhub.admin.display import breakable
from eventhub.admin.forms import EscapedHelpTexts, EventTypeForm, RouteForm, kinds_of
from eventhub.admin.replay import (
    BulkReplayAdmin,
    ReplayPermission,
    replay_selected_deliveries,
    replay_selected_events,
)
from eventhub.admin.route_health import RouteHealthAdmin, pause_selected_routes, resume_selected_routes
from eventhub.admin.route_try import RouteTryAdmin
from eventhub.admin.shown_once import RouteSecretAdmin, rotate_selected_secrets
from eventhub.dashboard.formatting import duration_ms
from eventhub.discovery import liveness
from eventhub.models import Attempt, Delivery, Event, EventType, Route

LISTS_CSS = {"all": ["eventhub/admin/lists.css"]}


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by eventhub itself: viewable, never added, edited or deleted by hand.

    Events, deliveries and replays are the audit trail: only retention deletes them.
    """

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(EventType)
class EventTypeAdmin(EscapedHelpTexts, admin.ModelAdmin):
    form = EventTypeForm
    list_display = ["name", "active", "description", "updated_at"]
    list_filter = ["active"]
    search_fields = ["name", "description"]


@admin.register(Route)
class RouteAdmin(RouteHealthAdmin, RouteTryAdmin, RouteSecretAdmin, EscapedHelpTexts, admin.ModelAdmin):
    form = RouteForm  # each destination field shown for its kind only (eventhub/admin/forms.py)
    list_display = [
        "name",
        "type_name",
        "destination",
        "queue",
        "enabled",
        "health_state",
        "max_attempts",
        "failures_link",
    ]
    readonly_fields = [
        "failures_link",
        "live_consumers",
        "signing_secret",
        "transform_version",
        "health_panel",
    ]
    actions = [rotate_selected_secrets, pause_selected_routes, resume_selected_routes]
    list_filter = ["enabled", "destination_kind", "queue", "event_type"]
    search_fields = ["name", "target", "event_type__name"]
    list_select_related = ["event_type"]
    fieldsets = [
        (None, {"fields": ["name", "event_type", "enabled", "filter"]}),
        (
            "Destination",
            {
                "fields": [
                    "destination_kind",
                    "handler",
                    "target",
                    "signing_secret",
                    "queue",
                    "live_consumers",
                ]
            },
        ),
        ("Retry policy", {"fields": ["max_attempts", "min_backoff_ms", "max_backoff_ms", "time_limit_ms"]}),
        (
            "Limits",
            {
                "fields": ["rate_limit", "max_in_flight"],
                "description": "Held over every worker process and host. A delivery over a limit waits in "
                "its queue; it is not attempted and uses none of its attempts.",
            },
        ),
        ("Ordering and transform", {"fields": ["ordering_key", "transform", "transform_version"]}),
        (
            "Endpoint health",
            {
                "fields": [
                    "health_panel",
                    "breaker_failures",
                    "breaker_failure_percent",
                    "breaker_min_attempts",
                    "breaker_window_seconds",
                    "probe_interval_seconds",
                    "release_per_second",
                ],
                "description": "A circuit breaker per route: see docs/endpoint-health.md.",
            },
        ),
        ("Recent failures", {"fields": ["failures_link"]}),
    ]

    class Media:
        css = LISTS_CSS

    @admin.display(description="event type", ordering="event_type__name")
    def type_name(self, obj: Route) -> str:
        return breakable(obj.event_type.name)

    @admin.display(description="destination", ordering="target")
    def destination(self, obj: Route) -> str:
        return format_html(
            '<span class="eventhub-muted">{}</span><br>{}',
            obj.get_destination_kind_display(),
            breakable(obj.target, limit=60),
        )

    @admin.display(description="failures")
    def failures_link(self, obj: Route) -> str:
        if not obj.pk:
            return "-"
        changelist = reverse("admin:eventhub_delivery_changelist")
        dead = f"{changelist}?route__id__exact={obj.pk}&status__exact=dead"
        dashboard = reverse("eventhub:dashboard") + f"?route={obj.pk}&status=problems"
        return format_html('<a href="{}">dead</a> · <a href="{}">dashboard</a>', dead, dashboard)

    @admin.display(description="live consumers")
    def live_consumers(self, obj: Route) -> str:
        """Whether healthy workers in Consul serve this route, and, for a handler route, which handlers."""
        found = liveness.handler_liveness(route=obj)
        if found.level == "unknown":
            return format_html('<span class="liveness-unknown">{}</span>', found.message)
        status = format_html('<span class="liveness-{}">{}</span>', found.level, found.message)
        if obj.pk and obj.destination_kind != Route.Kind.HANDLER:
            return status
        handlers = ", ".join(found.live_handlers) or "none"
        return format_html(
            '{}<span data-eventhub-kinds="{}"><br>Handlers with live consumers: {}</span>',
            status,
            kinds_of("handler"),
            handlers,
        )


@admin.register(Event)
class EventAdmin(ReplayPermission, ReadOnlyAdmin):
    list_display = ["id", "type", "subject", "source", "time", "deliveries_link"]
    list_filter = ["type"]
    search_fields = ["=id", "subject", "=external_id"]
    date_hierarchy = "time"
    show_full_result_count = False
    actions = [replay_selected_events]

    @admin.display(description="deliveries")
    def deliveries_link(self, obj: Event) -> str:
        url = reverse("admin:eventhub_delivery_changelist") + f"?event__id__exact={obj.pk}"
        return format_html('<a href="{}">deliveries</a>', url)

    readonly_fields = ["deliveries_link"]


class AttemptInline(admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    fields = ["number", "started_at", "duration", "worker", "succeeded", "error"]
    readonly_fields = fields

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, obj: Attempt) -> str:
        return duration_ms(obj.duration_ms)

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(BulkReplayAdmin, ReadOnlyAdmin):
    list_display = [
        "id",
        "event_link",
        "route",
        "status",
        "attempts",
        "created_at",
        "duration",
        "short_error",
    ]
    list_filter = ["status", "route", "created_at"]
    search_fields = ["=event__id", "event__subject", "last_error"]
    list_select_related = ["event", "route"]
    show_full_result_count = False
    inlines = [AttemptInline]
    actions = [replay_selected_deliveries]

    readonly_fields = ["event_link", "dashboard_link", "duration"]
    exclude = ["duration_ms"]  # shown rounded, as "duration"

    @admin.display(description="last attempt took", ordering="duration_ms")
    def duration(self, obj: Delivery) -> str:
        return duration_ms(obj.duration_ms)

    @admin.display(description="event")
    def event_link(self, obj: Delivery) -> str:
        url = reverse("admin:eventhub_event_change", args=[obj.event_id])
        return format_html('<a href="{}">{} {}</a>', url, obj.event.type, obj.event.subject)

    @admin.display(description="dashboard")
    def dashboard_link(self, obj: Delivery) -> str:
        url = reverse("eventhub:event", args=[obj.event_id]) + f"#delivery-{obj.pk}"
        return format_html('<a href="{}">event page with attempts</a>', url)

    @admin.display(description="error")
    def short_error(self, obj: Delivery) -> str:
        return obj.last_error[:120]
