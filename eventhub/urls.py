"""eventhub's URLs: the dashboard under /eventhub/."""

from django.urls import path

from eventhub import views

app_name = "eventhub"

urlpatterns = [
    path("eventhub/", views.dashboard, name="dashboard"),
    path("eventhub/events/<uuid:event_id>/", views.event_detail, name="event"),
]
