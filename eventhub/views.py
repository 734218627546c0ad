"""Dashboard views: staff only, thin; reads come from selectors."""

import json

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from eventhub import selectors
from eventhub.models import Event


@staff_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """Recent deliveries, newest first."""
    return render(request, "eventhub/dashboard.html", {"deliveries": selectors.recent_deliveries()})


@staff_member_required
def event_detail(request: HttpRequest, event_id) -> HttpResponse:
    """One event: its envelope and every delivery with its attempts."""
    try:
        event, deliveries = selectors.event_with_deliveries(event_id=event_id)
    except Event.DoesNotExist:
        raise Http404("No such event") from None
    envelope = json.dumps(event.envelope, indent=2, sort_keys=True)
    return render(
        request, "eventhub/event.html", {"event": event, "envelope": envelope, "deliveries": deliveries}
    )
