"""Endpoint health in the route admin: the state, held deliveries, recent changes, pause and resume.

Pausing and resuming need ``eventhub.pause_route`` (checked again by eventhub.health,
which records who did it and why); the buttons POST with the change form's CSRF
token. The record of changes is read-only: only retention deletes it.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from eventhub import health
from eventhub.dashboard.formatting import how_many
from eventhub.models import Delivery, Route, RouteHealth, RouteHealthChange

RECENT_CHANGES = 5
DISABLE_VERSUS_PAUSE = (
    "Pause holds every new delivery of this route until you resume; nothing is lost, and resuming "
    "sends them at the route's release pace. Unticking Enabled is different: events then make no "
    "delivery for this route at all, and nothing can be sent later."
)


def describe(route: Route) -> str:
    """The route's health in one line: state and held count (the list and the change page).

    Reads the annotations of :meth:`RouteHealthAdmin.get_queryset` when present (no query per row).
    """
    if hasattr(route, "held_count"):
        state = "paused" if route.health_paused else (route.health_state_value or "closed")
        held = route.held_count or 0
    else:
        found = RouteHealth.objects.filter(route=route).first()
        state = found.display_state if found else "closed"
        held = Delivery.objects.filter(route=route, status=Delivery.Status.HELD).count()
    shown = state.replace("_", "-")
    return f"{shown}, {how_many(held, 'delivery', 'deliveries')} held" if held else shown


class RouteHealthAdmin:
    """Adds the health panel, /admin/eventhub/route/<id>/pause/ and .../resume/, and the list actions."""

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:route_id>/pause/", wrap(require_POST(self.pause_view)), name="eventhub_route_pause"),
            path(
                "<int:route_id>/resume/", wrap(require_POST(self.resume_view)), name="eventhub_route_resume"
            ),
            *super().get_urls(),
        ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Route]:
        """Routes with their health state and held count, for the list's column (two subqueries)."""
        health = RouteHealth.objects.filter(route=OuterRef("pk"))
        held = (
            Delivery.objects.filter(route=OuterRef("pk"), status=Delivery.Status.HELD)
            .order_by()
            .values("route")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                health_state_value=Subquery(health.values("state")[:1]),
                health_paused=Subquery(health.values("paused")[:1]),
                held_count=Subquery(held),
            )
        )

    def has_pause_permission(self, request: HttpRequest) -> bool:
        return health.can_pause(request.user)

    def pause_view(self, request: HttpRequest, route_id: int) -> HttpResponseRedirect:
        """Pause one route (needs eventhub.pause_route); back to its page."""
        route = get_object_or_404(Route, pk=route_id)
        if not self.has_pause_permission(request):
            raise PermissionDenied
        changed = health.pause_route(route=route, user=request.user, reason=request.POST.get("reason", ""))
        text = f"Route {route.name} paused: its deliveries are held until it is resumed."
        self.message_user(request, text if changed else f"{route.name} was already paused.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:eventhub_route_change", args=[route.pk]))

    def resume_view(self, request: HttpRequest, route_id: int) -> HttpResponseRedirect:
        """Resume one route (needs eventhub.pause_route); back to its page."""
        route = get_object_or_404(Route, pk=route_id)
        if not self.has_pause_permission(request):
            raise PermissionDenied
        changed = health.resume_route(route=route, user=request.user)
        text = f"Route {route.name} resumed: held deliveries go out at its pace."
        self.message_user(request, text if changed else f"{route.name} was not paused.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:eventhub_route_change", args=[route.pk]))

    @admin.display(description="health")
    def health_state(self, obj: Route) -> str:
        return describe(obj)

    @admin.display(description="endpoint health")
    def health_panel(self, obj: Route) -> str:
        """State, held count, the last changes with their reasons, and the pause or resume button."""
        if not obj.pk:
            return "-"
        changes = RouteHealthChange.objects.filter(route=obj)[:RECENT_CHANGES]
        rows = format_html_join(
            "",
            "<li>{} · {} → {}{}: {}</li>",
            (
                (c.created_at.strftime("%Y-%m-%d %H:%M:%S"), c.previous, c.state,
                 f" by {c.username}" if c.username else "", c.reason)
                for c in changes
            ),
        )  # fmt: skip
        found = RouteHealth.objects.filter(route=obj).first()
        paused = bool(found and found.paused)
        action = "resume" if paused else "pause"
        button = format_html(
            '<button type="submit" class="button" formaction="{}" formmethod="post" formnovalidate>'
            "{}</button>",
            reverse(f"admin:eventhub_route_{action}", args=[obj.pk]),
            "Resume this route" if paused else "Pause this route",
        )
        return format_html(
            '<strong id="route-health-state">{}</strong><ul class="route-health-changes">{}</ul>'
            '<p>{}</p><p class="help">{}</p>',
            describe(obj),
            rows or format_html("<li>{}</li>", "No change recorded: the circuit has stayed closed."),
            button,
            DISABLE_VERSUS_PAUSE,
        )


@admin.action(description="Pause selected routes (hold their deliveries)", permissions=["pause"])
def pause_selected_routes(modeladmin, request: HttpRequest, queryset: QuerySet[Route]) -> None:
    """Pause every chosen route; each is recorded with who did it."""
    paused = sum(1 for route in queryset if health.pause_route(route=route, user=request.user))
    modeladmin.message_user(request, f"Paused {how_many(paused, 'route')}.", messages.SUCCESS)


@admin.action(description="Resume selected routes (release held deliveries)", permissions=["pause"])
def resume_selected_routes(modeladmin, request: HttpRequest, queryset: QuerySet[Route]) -> None:
    """Resume every chosen route; held deliveries go out at each route's pace."""
    resumed = sum(1 for route in queryset if health.resume_route(route=route, user=request.user))
    modeladmin.message_user(request, f"Resumed {how_many(resumed, 'route')}.", messages.SUCCESS)


@admin.register(RouteHealthChange)
class RouteHealthChangeAdmin(admin.ModelAdmin):
    """Circuit and pause changes of every route, with the reason and who: a read-only record."""

    list_display = ["created_at", "route", "previous", "state", "username", "reason"]
    list_filter = ["state", "route"]
    search_fields = ["reason", "username"]
    date_hierarchy = "created_at"
    list_select_related = ["route"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
