"""JSON endpoints of the imports app, mounted under /api/v1 by report_platform/api.py."""

from __future__ import annotations

from django.http import HttpRequest, StreamingHttpResponse
from ninja import Router, Status

from accounts.api_auth import CI_AUTH
from accounts.permissions import require_role
from imports import selectors, services
from imports.schemas import ImportJobOut
from imports.uploads import flag, junit_request_length_check, request_length_check, uploaded_csv
from report_platform.errors import error_envelope

router = Router(tags=["imports"])

_MULTIPART_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "The CSV (<= 20 MiB)."},
                        "dry_run": {
                            "type": "boolean",
                            "description": "Only validate and preview; confirm later with POST imports/{id}/confirm.",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "/imports/csv",
    url_name="import_create",
    response={202: ImportJobOut, 400: dict, 413: dict, 503: dict},
    summary="Upload a CSV: validated at once; queued unless dry_run (job id + progress URL)",
    openapi_extra=_MULTIPART_BODY,
)
def import_create(request: HttpRequest):
    require_role(request.user, "reviewer")
    request_length_check(request)
    upload = uploaded_csv(request)
    dry_run = flag(request.POST.get("dry_run") or request.GET.get("dry_run"))
    job = services.import_job_create(user=request.user, upload=upload, dry_run=dry_run, request=request)
    body = ImportJobOut.from_job(job)
    if job.status == job.Status.INVALID:
        envelope = error_envelope(
            code="import_invalid",
            message=f"The file has {job.error_count} problem(s); nothing was imported.",
            extra={"job": body.dict()},
        )
        return Status(400, envelope)
    return Status(202, body)


_JUNIT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "rc", "product"],
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "JUnit/xUnit XML report(s): plain, .gz, or a .zip of them (<= 20 MiB).",
                        },
                        "rc": {"type": "string", "description": "RC name; created (of the product) if absent."},
                        "product": {"type": "string"},
                        "owner": {"type": "string", "description": "Owner of cases the import creates."},
                        "category": {"type": "string", "description": "Category of cases the import creates."},
                    },
                }
            }
        },
    }
}


@router.post(
    "/imports/junit",
    url_name="import_junit_create",
    auth=CI_AUTH,
    response={202: ImportJobOut, 400: dict, 409: dict, 413: dict, 503: dict},
    summary="Upload JUnit/xUnit XML results into an RC (CI token accepted): job id + progress URL",
    openapi_extra=_JUNIT_BODY,
)
def import_junit_create(request: HttpRequest):
    require_role(request.user, "reviewer")
    junit_request_length_check(request)
    job = services.junit_import_create(
        user=request.user,
        uploads=request.FILES.getlist("file") + request.FILES.getlist("files"),
        rc=request.POST.get("rc", ""),
        product=request.POST.get("product", ""),
        owner=request.POST.get("owner", ""),
        category=request.POST.get("category", ""),
        via_token=getattr(request, "api_token", None),
        request=request,
    )
    body = ImportJobOut.from_job(job)
    if job.status == job.Status.INVALID:
        first = job.errors[0] if job.errors else {"code": "import_invalid", "message": "The report is not valid."}
        envelope = error_envelope(code=first["code"], message=first["message"], extra={"job": body.dict()})
        return Status(400, envelope)
    return Status(202, body)


@router.get("/imports/{job_id}", url_name="import_get", response=ImportJobOut, summary="Import progress and result")
def import_get(request: HttpRequest, job_id: str):
    return ImportJobOut.from_job(selectors.import_job_get_for_user(user=request.user, job_id=job_id, read_only=True))


@router.post("/imports/{job_id}/confirm", url_name="import_confirm", response={202: ImportJobOut})
def import_confirm(request: HttpRequest, job_id: str):
    return Status(
        202, ImportJobOut.from_job(services.import_job_confirm(user=request.user, job_id=job_id, request=request))
    )


@router.post(
    "/imports/{job_id}/cancel",
    url_name="import_cancel",
    response=ImportJobOut,
    summary="Cancel an import (its reviewer or an admin): a previewed one at once; a queued or running one stops "
    "at its next batch and is rolled back (status rolling_back, then cancelled)",
)
def import_cancel(request: HttpRequest, job_id: str):
    return ImportJobOut.from_job(services.import_job_cancel(user=request.user, job_id=job_id, request=request))


def csv_response(chunks, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@router.get("/exports/cases.csv", url_name="export_cases", summary="All cases as CSV (admin; import format)")
def export_cases(request: HttpRequest):
    return csv_response(services.export_cases_csv(user=request.user, request=request), "cases.csv")


@router.get("/exports/runs.csv", url_name="export_runs", summary="The runs of one RC as CSV (admin; import format)")
def export_runs(request: HttpRequest, rc: str = ""):
    name, chunks = services.export_runs_csv(user=request.user, release_candidate=rc, request=request)
    return csv_response(chunks, f"runs-{services.filename_clean(name)}.csv")
