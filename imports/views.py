"""Pages of the imports app: upload + job list, a job's preview / progress (htmx-polled partial), template
download, and the admin exports."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.permissions import role_required
from imports import csvformat, selectors, services
from imports.api import csv_response
from imports.uploads import junit_request_length_check, request_length_check, uploaded_csv
from releases import product_scope
from releases.models import ReleaseCandidate

TEMPLATE_ROWS = [
    {
        "product": "Checkout",
        "suite": "Payments",
        "key": "PAY-001",
        "title": "Pay with a saved card",
        "category": "functional",
        "task": "JIRA-120",
        "owner": "alice",
        "priority": 1,
        "tags": ["smoke", "payments"],
    },
    {
        "product": "Checkout",
        "suite": "Payments",
        "key": "PAY-002",
        "title": "Refund a payment",
        "category": "functional",
        "task": "",
        "owner": "bob",
        "priority": 2,
        "tags": ["regression"],
        "rc": "RC-2026.11-1",
        "status": "fail",
        "mantis_ids": [4711],
        "notes": "Refund stays pending",
        "executed_at": "2026-11-20T10:15:00.000Z",
        "executed_by": "",
    },
]


@role_required("reviewer")
@require_http_methods(["GET", "POST"])
def import_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        request_length_check(request)
        job = services.import_job_create(user=request.user, upload=uploaded_csv(request), dry_run=True, request=request)
        return redirect("imports:import_detail", job_id=str(job.pk))
    product = product_scope.request_product(request)
    context = {
        "product": product,
        "jobs": selectors.import_job_list_for_user(user=request.user),
        "max_bytes": settings.CSV_MAX_UPLOAD_BYTES,
        "max_rows": settings.CSV_MAX_ROWS,
        "columns": csvformat.COLUMNS,
        "release_candidates": ReleaseCandidate.objects.filter(product=product).order_by("-sequence")[:200]
        if request.user.has_role("admin")
        else [],
    }
    return render(request, "imports/import_list.html", context)


@role_required("reviewer")
@require_POST
def junit_upload(request: HttpRequest) -> HttpResponse:
    """Upload JUnit/xUnit XML reports (the form on the imports page; CI uses POST /api/v1/imports/junit)."""
    junit_request_length_check(request)
    job = services.junit_import_create(
        user=request.user,
        uploads=request.FILES.getlist("file"),
        rc=request.POST.get("rc", ""),
        product=request.POST.get("product", ""),
        owner=request.POST.get("owner", ""),
        category=request.POST.get("category", ""),
        request=request,
    )
    return redirect("imports:import_detail", job_id=str(job.pk))


@role_required("reviewer")
@require_GET
def import_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    job = selectors.import_job_get_for_user(user=request.user, job_id=job_id, read_only=True)
    # Another reviewer's job, shown because they uploaded the same report: no confirm or cancel buttons.
    read_only = job.created_by_id != request.user.pk and not request.user.has_role("admin")
    context = {"job": job, "preview_rows": selectors.import_preview_rows(job=job), "read_only": read_only}
    if request.htmx:
        return render(request, "imports/partials/job_status.html", context)
    return render(request, "imports/import_detail.html", context)


@role_required("reviewer")
@require_POST
def import_confirm(request: HttpRequest, job_id: str) -> HttpResponse:
    job = services.import_job_confirm(user=request.user, job_id=job_id, request=request)
    if request.htmx:
        return render(request, "imports/partials/job_status.html", {"job": job})
    return redirect("imports:import_detail", job_id=str(job.pk))


@role_required("reviewer")
@require_POST
def import_cancel(request: HttpRequest, job_id: str) -> HttpResponse:
    job = services.import_job_cancel(user=request.user, job_id=job_id, request=request)
    if job.status == job.Status.ROLLING_BACK:  # a running import: follow its rollback on its page
        return redirect("imports:import_detail", job_id=str(job.pk))
    return redirect(reverse("imports:import_list"))


@role_required("viewer")
@require_GET
def template_download(request: HttpRequest) -> HttpResponse:
    """An example file with every column: one case-only row and one row with a run."""
    return csv_response(csvformat.write_rows(TEMPLATE_ROWS), "report-platform-import-template.csv")


@role_required("admin")
@require_GET
def export_cases(request: HttpRequest) -> HttpResponse:
    return csv_response(services.export_cases_csv(user=request.user, request=request), "cases.csv")


@role_required("admin")
@require_GET
def export_runs(request: HttpRequest) -> HttpResponse:
    name, chunks = services.export_runs_csv(
        user=request.user, release_candidate=request.GET.get("rc", ""), request=request
    )
    return csv_response(chunks, f"runs-{services.filename_clean(name)}.csv")
