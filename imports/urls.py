from django.urls import path

from imports import views

app_name = "imports"

urlpatterns = [
    path("", views.import_list, name="import_list"),
    path("template.csv", views.template_download, name="template_download"),
    path("junit/", views.junit_upload, name="junit_upload"),
    path("export/cases.csv", views.export_cases, name="export_cases"),
    path("export/runs.csv", views.export_runs, name="export_runs"),
    path("<str:job_id>/", views.import_detail, name="import_detail"),
    path("<str:job_id>/confirm", views.import_confirm, name="import_confirm"),
    path("<str:job_id>/cancel", views.import_cancel, name="import_cancel"),
]
