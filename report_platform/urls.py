from django.contrib import admin
from django.urls import include, path

from report_platform import errors, views
from report_platform.api import api

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", api.urls),
    path("account/", include("accounts.urls")),
    path("", include("releases.urls")),
    path("imports/", include("imports.urls")),
    path("ai/", include("ai_assist.urls")),
    path("reports/", include("reports.urls")),
    path("audit/", include("audit.urls")),
]

handler400 = errors.bad_request
handler403 = errors.permission_denied
handler404 = errors.page_not_found
handler500 = errors.server_error
