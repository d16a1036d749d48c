from django.urls import path

from releases import views

app_name = "releases"

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("cases/", views.case_list, name="case_list"),
    path("cases/new/", views.case_create, name="case_create"),
    path("cases/<str:pk>/", views.case_detail, name="case_detail"),
    path("cases/<str:pk>/edit/", views.case_edit, name="case_edit"),
    path("cases/<str:pk>/delete/", views.case_delete, name="case_delete"),
    path("cases/<str:pk>/restore/", views.case_restore, name="case_restore"),
    path("cases/<str:pk>/runs/", views.run_record, name="run_record"),
    path("suites/", views.suite_list, name="suite_list"),
    path("suites/new/", views.suite_create, name="suite_create"),
    path("suites/<str:pk>/", views.suite_detail, name="suite_detail"),
    path("suites/<str:pk>/edit/", views.suite_edit, name="suite_edit"),
    path("rcs/", views.rc_list, name="rc_list"),
    path("rcs/new/", views.rc_create, name="rc_create"),
    path("rcs/<str:pk>/edit/", views.rc_edit, name="rc_edit"),
    path("rcs/<str:pk>/move/", views.rc_move, name="rc_move"),
    path("runs/grid/", views.run_grid, name="run_grid"),
    path("runs/grid/set/", views.run_grid_set, name="run_grid_set"),
    path("runs/grid/bulk/", views.run_grid_bulk, name="run_grid_bulk"),
    path("delta/", views.rc_delta, name="rc_delta"),
    path("flaky/", views.flaky_cases, name="flaky_cases"),
    path("known-issues/link/", views.known_issue_link, name="known_issue_link"),
]
