"""Dashboard views: thin; reads come from selectors, replays from eventhub.outbox.replay.

Pages need staff status and the model permissions of what they show, as the admin does:
the delivery lists ``eventhub.view_delivery``, an event's page ``eventhub.view_event``;
parts a user may not see (hook failures, links to event pages, deliveries on an event's
page) are left out.
"""

import json
from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from eventhub import health
from eventhub.dashboard import charts, selectors
from eventhub.dashboard.formatting import how_many
from eventhub.models import Delivery, Event, Route
from eventhub.outbox import replay

CHART_MINUTES = 60
# Fragments the live endpoint can return; the page asks for the cheap ones on every poll.
LIVE_PARTS = ("deliveries", "problems", "figures", "consumers")


VIEW_EVENT = "eventhub.view_event"
VIEW_DELIVERY = "eventhub.view_delivery"
VIEW_HOOK_FAILURE = "eventhub.view_hookfailure"


def permission_required(*perms: str) -> Callable:
    """Staff only (others go to the admin login), and 403 without every one of ``perms``."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def checked(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.has_perms(perms):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return staff_member_required(checked)

    return decorator


def _visibility(request: HttpRequest) -> dict:
    return {
        "can_replay": replay.can_replay(request.user),
        "can_pause": health.can_pause(request.user),
        "can_view_event": request.user.has_perm(VIEW_EVENT),
        "can_view_delivery": request.user.has_perm(VIEW_DELIVERY),
    }


@permission_required(VIEW_DELIVERY)
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    """Failures first, recent deliveries, per-route figures, a chart and consumers; refreshed live."""
    filters = selectors.parse_filters(request.GET)
    failures = request.user.has_perm(VIEW_HOOK_FAILURE)
    context = {
        "filters": filters,
        "choices": selectors.filter_choices(),
        **_visibility(request),
        "return_to": request.get_full_path(),
        "hook_failures": list(selectors.recent_hook_failures(limit=10)) if failures else [],
        "retention": selectors.retention_summary(),
        **_part_context(request, filters, LIVE_PARTS),
    }
    return render(request, "eventhub/dashboard.html", context)


@permission_required(VIEW_DELIVERY)
@require_GET
def live(request: HttpRequest) -> JsonResponse:
    """The dashboard's fragments as HTML inside JSON, for the page's polling script.

    ``?parts=deliveries,problems`` picks fragments (default: those two); the other
    query parameters are the dashboard's filters.
    """
    filters = selectors.parse_filters(request.GET)
    wanted = [p for p in request.GET.get("parts", "deliveries,problems").split(",") if p in LIVE_PARTS]
    query = request.GET.copy()
    query.pop("parts", None)
    context = {
        "filters": filters,
        **_visibility(request),
        # Replay buttons in these rows return to the dashboard, not to this endpoint.
        "return_to": reverse("eventhub:dashboard") + (f"?{query.urlencode()}" if query else ""),
    }
    context.update(_part_context(request, filters, wanted))
    body = {part: render_to_string(f"eventhub/_{part}.html", context, request=request) for part in wanted}
    body["updated_at"] = timezone.now().isoformat()
    return JsonResponse(body)


def _part_context(request: HttpRequest, filters: selectors.DeliveryFilters, parts) -> dict:
    context: dict = {}
    if "deliveries" in parts:
        context["deliveries"] = selectors.recent_deliveries(filters)
    if "problems" in parts:
        context["problems"] = selectors.problem_deliveries(filters)
    if "figures" in parts:
        now = timezone.now()
        context["figures"] = selectors.route_figures(now=now)
        rows = selectors.per_minute_counts(minutes=CHART_MINUTES, now=now)
        context["chart"] = charts.deliveries_per_minute_svg(
            charts.minute_bars(rows, minutes=CHART_MINUTES, now=now)
        )
    if "consumers" in parts:
        context["health"] = selectors.consumer_health()
    return context


@permission_required(VIEW_EVENT)
@require_GET
def event_detail(request: HttpRequest, event_id) -> HttpResponse:
    """One event: its envelope and (with ``view_delivery``) every delivery with its attempts."""
    try:
        event, deliveries = selectors.event_with_deliveries(event_id=event_id)
    except Event.DoesNotExist:
        raise Http404("No such event") from None
    envelope = json.dumps(event.envelope, indent=2, sort_keys=True)
    visible = _visibility(request)
    context = {
        "event": event,
        "envelope": envelope,
        "deliveries": deliveries if visible["can_view_delivery"] else [],
        **visible,
        "replayable": set(replay.REPLAYABLE_STATUSES),
    }
    return render(request, "eventhub/event.html", context)


@staff_member_required
@require_POST
def replay_delivery(request: HttpRequest, delivery_id: int) -> HttpResponse:
    """Send one dead or retrying delivery again (needs eventhub.replay_delivery)."""
    delivery = get_object_or_404(Delivery, pk=delivery_id)
    sent = replay.replay_deliveries(deliveries=[delivery], user=request.user)
    if sent:
        messages.success(request, f"Delivery {delivery.pk} was sent again.")
    else:
        messages.warning(
            request, f"Delivery {delivery.pk} is {delivery.status}; only failed ones are replayed."
        )
    return _back(request, default=delivery.event.get_absolute_url())


@staff_member_required
@require_POST
def replay_event(request: HttpRequest, event_id) -> HttpResponse:
    """Deliver one event again through today's matching routes (needs eventhub.replay_delivery)."""
    event = get_object_or_404(Event, pk=event_id)
    created = replay.replay_event(event=event, user=request.user)
    messages.success(request, f"Event {event.pk} was sent again through {how_many(len(created), 'route')}.")
    return _back(request, default=event.get_absolute_url())


@staff_member_required
@require_POST
def pause_route(request: HttpRequest, route_id: int) -> HttpResponse:
    """Pause a route: its deliveries are held until it is resumed (needs eventhub.pause_route)."""
    route = get_object_or_404(Route, pk=route_id)
    if health.pause_route(route=route, user=request.user, reason=request.POST.get("reason", "")):
        messages.success(request, f"Route {route.name} paused: its deliveries are held until you resume it.")
    else:
        messages.info(request, f"Route {route.name} was already paused.")
    return _back(request, default=reverse("eventhub:dashboard"))


@staff_member_required
@require_POST
def resume_route(request: HttpRequest, route_id: int) -> HttpResponse:
    """Resume a paused route: held deliveries go out at its pace (needs eventhub.pause_route)."""
    route = get_object_or_404(Route, pk=route_id)
    if health.resume_route(route=route, user=request.user):
        messages.success(request, f"Route {route.name} resumed: held deliveries go out at its release pace.")
    else:
        messages.info(request, f"Route {route.name} was not paused.")
    return _back(request, default=reverse("eventhub:dashboard"))


def _back(request: HttpRequest, *, default: str) -> HttpResponse:
    # Return to the page the button was on, but never to another site.
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = default
    return redirect(target)
