"""eventhub's URLs: the ingest API, the dashboard under /eventhub/ and Prometheus metrics at /metrics."""

from django.urls import path

from eventhub.dashboard import metrics, views
from eventhub.ingest import views as api

app_name = "eventhub"

urlpatterns = [
    path("api/events", api.events, name="api-events"),
    path("api/openapi.json", api.openapi_json, name="api-openapi"),
    path("eventhub/", views.dashboard, name="dashboard"),
    path("eventhub/live/", views.live, name="live"),
    path("eventhub/events/<uuid:event_id>/", views.event_detail, name="event"),
    path("eventhub/events/<uuid:event_id>/replay/", views.replay_event, name="replay-event"),
    path("eventhub/deliveries/<int:delivery_id>/replay/", views.replay_delivery, name="replay-delivery"),
    path("eventhub/routes/<int:route_id>/pause/", views.pause_route, name="pause-route"),
    path("eventhub/routes/<int:route_id>/resume/", views.resume_route, name="resume-route"),
    path("metrics", metrics.metrics_view, name="metrics"),
]
