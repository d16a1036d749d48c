from django.urls import path

from reports import views

app_name = "reports"

urlpatterns = [
    path("", views.report_list, name="report_list"),
    path("new/", views.report_create, name="report_create"),
    path("<str:pk>/", views.report_detail, name="report_detail"),
    path("<str:pk>/download/<str:fmt>/", views.report_download_link, name="report_download_link"),
    path("<str:pk>/delete/", views.report_delete, name="report_delete"),
    path("file/<str:token>/", views.report_download, name="report_download"),
]
