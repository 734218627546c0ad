"""URL configuration: the admin, the eventhub dashboard, the ingest API and metrics."""

from django.contrib import admin
from django.urls import include, path, reverse_lazy
from django.views.generic import RedirectView

# The admin's "View site" link, and the site's root, lead to the dashboard: there is no other site.
admin.site.site_url = reverse_lazy("eventhub:dashboard")

urlpatterns = [
    path("", RedirectView.as_view(url=reverse_lazy("eventhub:dashboard")), name="home"),
    path("admin/", admin.site.urls),
    path("", include("eventhub.urls")),
]
