"""URL configuration: the admin, the eventhub dashboard, the ingest API and metrics."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("eventhub.urls")),
]
