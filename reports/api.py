"""JSON endpoints of the reports app, mounted under /api/v1 by report_platform/api.py. Thin: roles are enforced by
the services (writes) and `require_role` (reads)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from ninja import Field, Query, Router, Schema, Status

from accounts.permissions import require_role
from reports import selectors, services
from reports.models import Report, ReportStatus
from reports.schemas import ReportCreatedOut, ReportIn, ReportListOut, ReportOut

router = Router(tags=["reports"])


class ReportListQuery(Schema):
    release_candidate: str = Field("", max_length=24, description="RC id.")
    suite: str = Field("", max_length=24, description="Suite id, or 'all' for all-suites reports.")
    status: str = Field("", max_length=16, description="queued, running, ready or failed.")
    mine: bool = False
    cursor: str = Field("", max_length=24, description="`next_cursor` of the previous page.")
    limit: int = Field(50, ge=1, le=200)


def _out(report: Report, user) -> dict:
    downloads = None
    expires = None
    if report.status == ReportStatus.READY:
        downloads = {fmt: services.report_download_url(report=report, user=user, fmt=fmt) for fmt in services.FORMATS}
        expires = timezone.now() + timedelta(seconds=settings.REPORTS_DOWNLOAD_MAX_AGE)
    return {
        "id": str(report.pk),
        "status": report.status,
        "progress": report.progress,
        "stage": report.stage,
        "error": {"code": report.error_code, "message": report.error_message} if report.error_code else None,
        "release_candidate": report.release_candidate_name,
        "suite": report.suite_name or None,
        "baseline": report.baseline_name or None,
        "summary": report.summary,
        "summary_source": report.summary_source,
        "summary_note": report.summary_note,
        "ai_model": report.ai_model,
        "ai_cost": float(report.ai_cost),
        "figures": report.figures,
        "generated_by": report.generated_by.email if report.generated_by else None,
        "created_at": report.created_at,
        "generated_at": report.generated_at,
        "downloads": downloads,
        "downloads_expire_at": expires,
    }


@router.post("/reports", response={202: ReportCreatedOut}, url_name="report_list", summary="Generate a report")
def report_create(request: HttpRequest, payload: ReportIn):
    """Queue a report for an RC and a suite (or all suites), optionally against a baseline RC. Poll `status_url`."""
    report = services.report_request(
        actor=request.user,
        release_candidate=payload.release_candidate,
        suite=payload.suite,
        baseline=payload.baseline,
        edition=payload.edition,
        request=request,
    )
    return Status(
        202,
        {
            "id": str(report.pk),
            "status": report.status,
            "progress": report.progress,
            "status_url": reverse("api:report_detail", kwargs={"report_id": str(report.pk)}),
            "page_url": reverse("reports:report_detail", kwargs={"pk": str(report.pk)}),
        },
    )


@router.get("/reports", response=ReportListOut, url_name="report_list", summary="List reports")
def report_list(request: HttpRequest, query: Query[ReportListQuery]):
    require_role(request.user, "viewer")
    filters = selectors.ReportFilters(
        release_candidate=query.release_candidate,
        suite=query.suite,
        status=query.status,
        mine_of=request.user if query.mine else None,
        before=query.cursor,
    )
    reports, cursor = selectors.report_list(filters=filters, limit=query.limit)
    return {"items": [_out(report, request.user) for report in reports], "next_cursor": cursor}


@router.get("/reports/{report_id}", response=ReportOut, url_name="report_detail", summary="Report status")
def report_detail(request: HttpRequest, report_id: str):
    """Status and progress; once ready, the summary, figures and signed download links (5 minutes, yours only)."""
    require_role(request.user, "viewer")
    return _out(selectors.report_get(report_id=report_id), request.user)


@router.delete("/reports/{report_id}", response={204: None}, url_name="report_detail", summary="Delete a report")
def report_delete(request: HttpRequest, report_id: str):
    require_role(request.user, "viewer")
    services.report_delete(report=selectors.report_get(report_id=report_id), actor=request.user, request=request)
    return Status(204, None)
