"""Writes of the reports app: request a report, generate it (the Celery task's body), sign and serve downloads,
delete. Each public function performs its audit event itself.

Generation is a leased job: every delivery claims the report with a fresh token (fencing), all its writes are
conditional on that token, and the files are written under a name that contains the token. The report only becomes
`ready` when one conditional update publishes both file names at once, so a killed or duplicate delivery can never
make a half-written file downloadable; a redelivery takes over and finishes, and a job that fails
REPORTS_MAX_ATTEMPTS deliveries ends `failed`.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, BinaryIO

from bson import ObjectId
from django.conf import settings
from django.core import signing
from django.core.files import File
from django.core.files.storage import default_storage
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from accounts.permissions import require_role
from audit.services import audit_record
from releases import selectors as release_selectors
from releases.models import ReleaseCandidate, TestSuite
from report_platform.errors import (
    Conflict,
    DomainError,
    Forbidden,
    NotAuthenticated,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from reports.content import ReportContent
from reports.docx_renderer import render_docx
from reports.figures import figures_compute
from reports.metrics import REPORT_DURATION, REPORTS_TOTAL
from reports.models import Report, ReportEdition, ReportStatus
from reports.narrative import (
    Narrative,
    fallback_narrative,
    narrative_grounded,
    parse_ai_text,
    prompt_variables,
    ungrounded_numbers,
)
from reports.pdf_renderer import render_pdf

logger = logging.getLogger(__name__)

FORMATS = {
    "pdf": ("pdf_file", "application/pdf", "pdf"),
    "docx": ("docx_file", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
}
SIGNING_SALT = "reports.download"
_ACTIVE = (ReportStatus.QUEUED, ReportStatus.RUNNING)


# --- requesting --------------------------------------------------------------------------------------------------


def _require(actor, role: str, *, action: str, resource: str, request: HttpRequest | None) -> None:
    """`require_role`, with the refusal written to the audit trail."""
    try:
        require_role(actor, role)
    except (Forbidden, NotAuthenticated):
        audit_record(action=action, actor=actor, resource=resource, outcome="denied", request=request)
        raise


def _resolve_release_candidate(value: str, *, field: str) -> ReleaseCandidate:
    try:
        return release_selectors.release_candidate_by_name_or_id(value=str(value or "").strip())
    except NotFound:
        raise ValidationFailed(
            "That release candidate does not exist.",
            code=f"report_unknown_{field}",
            fields={field: ["Unknown release candidate."]},
        ) from None


def _resolve_suite(value: str | None) -> TestSuite | None:
    if not value or value == "all":
        return None
    try:
        return release_selectors.suite_get(suite_id=value)
    except NotFound:
        raise ValidationFailed(
            "That suite does not exist.", code="report_unknown_suite", fields={"suite": ["Unknown suite."]}
        ) from None


def report_request(
    *,
    actor,
    release_candidate: str,
    suite: str | None = None,
    baseline: str | None = None,
    edition: str = ReportEdition.FULL,
    request: HttpRequest | None = None,
) -> Report:
    """Store a queued report for an RC (id or name), a suite id (None/"all" = all suites of the RC's product), an
    optional baseline RC (of the same product) and an edition ("short": cover and a one-page executive summary;
    "full": with breakdowns, failures and the appendix), and enqueue its generation. Reviewers and admins only.
    Raises ValidationFailed with codes report_unknown_release_candidate / report_unknown_suite /
    report_unknown_baseline / report_baseline_same / report_baseline_other_product / report_suite_other_product /
    report_unknown_edition / report_no_runs (nothing stored), ServiceUnavailable report_queue_unavailable (the
    report is stored as failed). One audit event "report.generate" (success, failure or denied)."""
    _require(actor, "reviewer", action="report.generate", resource="report:new", request=request)
    rc = _resolve_release_candidate(release_candidate, field="release_candidate")
    scope = _resolve_suite(suite)
    compared = _resolve_release_candidate(baseline, field="baseline") if baseline else None
    if compared is not None and compared.pk == rc.pk:
        raise ValidationFailed(
            "Compare with a different release candidate.",
            code="report_baseline_same",
            fields={"baseline": ["The baseline must differ from the release candidate."]},
        )
    if compared is not None and compared.product != rc.product:
        raise ValidationFailed(
            f"{compared.name} is a release candidate of another product than {rc.name}.",
            code="report_baseline_other_product",
            fields={"baseline": [f"Choose a release candidate of {rc.product or 'the same product'}."]},
        )
    if scope is not None and rc.product and scope.product != rc.product:
        raise ValidationFailed(
            f"{scope.name} is a suite of {scope.product}, {rc.name} a release candidate of {rc.product}.",
            code="report_suite_other_product",
            fields={"suite": [f"Choose a suite of {rc.product}."]},
        )
    if edition not in ReportEdition.values:
        raise ValidationFailed(
            "Unknown edition.",
            code="report_unknown_edition",
            fields={"edition": [f"Use one of: {', '.join(ReportEdition.values)}."]},
        )
    if not release_selectors.release_candidate_has_runs(release_candidate=rc, suite=scope):
        where = f" in {scope.name}" if scope is not None else ""
        raise ValidationFailed(
            f"{rc.name} has no runs{where} yet: there is nothing to report.",
            code="report_no_runs",
            fields={"release_candidate": [f"No runs recorded{where} for this release candidate."]},
        )
    now = timezone.now()
    report = Report.objects.create(
        edition=edition,
        suite=scope,
        release_candidate=rc,
        baseline=compared,
        suite_name=scope.name if scope is not None else "",
        release_candidate_name=rc.name,
        baseline_name=compared.name if compared is not None else "",
        generated_by=actor,
        stage="Waiting for a worker",
        created_at=now,
        updated_at=now,
    )
    metadata = {
        "release_candidate": rc.name,
        "suite": scope.name if scope is not None else "all",
        "baseline": compared.name if compared is not None else "",
        "edition": edition,
    }
    from reports.tasks import report_generate_task

    try:
        report_generate_task.apply_async(args=[str(report.pk)], retry=False)
    except Exception as error:  # any broker failure: the job must not look accepted
        logger.warning("report enqueue failed", exc_info=error)
        _finish_failed(report, code="report_queue_unavailable", message="The job queue is unavailable.")
        audit_record(
            action="report.generate",
            actor=actor,
            resource=f"report:{report.pk}",
            outcome="failure",
            request=request,
            metadata={**metadata, "error": "report_queue_unavailable"},
        )
        raise ServiceUnavailable(
            "Reports cannot be generated right now (the job queue is down). Try again shortly.",
            code="report_queue_unavailable",
        ) from None
    REPORTS_TOTAL.labels(outcome="requested").inc()
    audit_record(
        action="report.generate", actor=actor, resource=f"report:{report.pk}", request=request, metadata=metadata
    )
    return report


def _finish_failed(report: Report, *, code: str, message: str, token: str | None = None) -> bool:
    """Mark a report failed (only while it is active, and only by the lease holder when `token` is given)."""
    queryset = Report.objects.filter(pk=report.pk, status__in=_ACTIVE)
    if token is not None:
        queryset = queryset.filter(lease_token=token)
    updated = queryset.update(
        status=ReportStatus.FAILED,
        error_code=code,
        error_message=message[:500],
        stage="Failed",
        lease_token="",
        lease_expires_at=None,
        updated_at=timezone.now(),
    )
    if updated:
        REPORTS_TOTAL.labels(outcome="failed").inc()
    return bool(updated)


# --- generating --------------------------------------------------------------------------------------------------


class LeaseLost(Exception):
    """Another delivery of the same job took over: this one stops without writing anything more."""


@dataclass
class _Job:
    report: Report
    token: str

    def write(self, **fields: Any) -> None:
        """Conditional update by the lease holder; renews the lease."""
        now = timezone.now()
        fields.update(updated_at=now, lease_expires_at=now + timedelta(seconds=settings.REPORTS_LEASE_SECONDS))
        updated = Report.objects.filter(pk=self.report.pk, lease_token=self.token, status=ReportStatus.RUNNING).update(
            **fields
        )
        if updated != 1:
            raise LeaseLost()
        for name, value in fields.items():
            setattr(self.report, name, value)


def _claim(report_id: str) -> _Job | None:
    """Take the job for this delivery, or None when there is nothing to do (ready, failed, unknown, attempts used)."""
    if not ObjectId.is_valid(str(report_id)):
        return None
    pk = ObjectId(str(report_id))
    for _attempt in range(5):
        report = Report.objects.filter(pk=pk).first()
        if report is None or report.status not in _ACTIVE:
            return None
        if report.attempts >= settings.REPORTS_MAX_ATTEMPTS:
            _finish_failed(
                report,
                code="report_generation_abandoned",
                message=f"Generation was interrupted {report.attempts} times; giving up. Generate the report again.",
            )
            return None
        token = uuid.uuid4().hex
        now = timezone.now()
        claimed = Report.objects.filter(pk=pk, status__in=_ACTIVE, attempts=report.attempts).update(
            status=ReportStatus.RUNNING,
            attempts=report.attempts + 1,
            lease_token=token,
            lease_expires_at=now + timedelta(seconds=settings.REPORTS_LEASE_SECONDS),
            started_at=now,
            stage="Starting",
            updated_at=now,
        )
        if claimed == 1:
            report.refresh_from_db()
            return _Job(report=report, token=token)
    return None


def _narrative_from_ai(job: _Job, headline: dict[str, Any], scope: str) -> Narrative:
    """Stream the AI narrative into the report (the page shows it arriving); fall back on any AI refusal."""
    from ai_assist.services import ai_bookkeeping_wait, ai_stream_text

    report = job.report
    variables = prompt_variables(headline, scope=scope)
    try:
        stream = ai_stream_text(
            user=report.generated_by,
            task_id=f"report:{report.pk}",
            template_id="report_summary",
            variables=variables,
            release_candidate=report.release_candidate,
            subject=f"report:{report.pk}",
        )
        pieces: list[str] = []
        last_write = time.monotonic()
        for piece in stream:
            pieces.append(piece)
            if time.monotonic() - last_write > 0.4:
                job.write(summary="".join(pieces), stage="Writing the summary (AI)")
                last_write = time.monotonic()
    except LeaseLost:
        raise
    except DomainError as error:
        reason = {"ai_quota_exceeded": "AI quota exceeded", "ai_unavailable": "AI unavailable"}.get(
            error.code, f"AI error: {error.code}"
        )
        return fallback_narrative(headline, scope=scope, note=reason)
    except Exception as error:  # the AI is optional: any failure of it still yields the report
        logger.warning("report narrative: AI call failed", exc_info=error)
        return fallback_narrative(headline, scope=scope, note="AI unavailable")
    finally:
        ai_bookkeeping_wait()  # the report's usage row is queued before the report says it is ready
    result = stream.result
    text = "".join(pieces)
    cost = Decimal(str(result.cost)) if result is not None else Decimal("0")
    usage = {
        "provider": stream.provider,
        "model": stream.model,
        "prompt_tokens": result.prompt_tokens if result else 0,
        "completion_tokens": result.completion_tokens if result else 0,
        "cost": cost,
        "usage_log_id": stream.usage_log_id,
    }
    stray = ungrounded_numbers(text, variables)
    if stray:
        fallback = fallback_narrative(
            headline, scope=scope, note=f"AI narrative discarded: it cited numbers not in the figures ({stray[0]})"
        )
        for name, value in usage.items():
            setattr(fallback, name, value)
        return fallback
    summary, risks, recommendation = parse_ai_text(text)
    written = Narrative(summary=summary, risks=risks, recommendation=recommendation, source="ai", **usage)
    return narrative_grounded(written, headline, scope=scope)


def _render(render, content: ReportContent, label: str, out: BinaryIO) -> int:
    """Render into `out` (a spooled temp file: memory up to 8 MB, then disk) and return the size in bytes."""
    started = time.perf_counter()
    render(content, out)
    REPORT_DURATION.labels(format=label).observe(time.perf_counter() - started)
    size = out.tell()
    out.seek(0)
    return size


def _file_base(report: Report) -> str:
    """A safe file name stem: report-<rc>-<suite> in ASCII (slugified; HTML or path characters never survive)."""
    return slugify(f"report-{report.release_candidate_name}-{report.suite_name or 'all-suites'}")[:80] or "report"


def _storage_names(report: Report, token: str) -> dict[str, str]:
    base = _file_base(report)
    folder = f"{settings.REPORTS_STORAGE_PREFIX}/{report.pk}/{token}"
    return {fmt: f"{folder}/{base}.{extension}" for fmt, (_field, _type, extension) in FORMATS.items()}


def _delete_files(names: list[str]) -> None:
    for name in names:
        if name:
            default_storage.delete(name)


def _remove_other_attempts(report: Report, keep: str) -> None:
    """Delete files left by interrupted deliveries (never referenced by the report, so never served)."""
    folder = f"{settings.REPORTS_STORAGE_PREFIX}/{report.pk}"
    try:
        tokens, _files = default_storage.listdir(folder)
    except FileNotFoundError:
        return  # no attempt left anything behind
    except NotImplementedError:
        logger.info("report storage cannot list folders: files of interrupted attempts stay", extra={"folder": folder})
        return
    for token in tokens:
        if token != keep:
            _subfolders, files = default_storage.listdir(f"{folder}/{token}")
            _delete_files([f"{folder}/{token}/{name}" for name in files])


def report_generate(*, report_id: str) -> Report | None:
    """Generate a queued report (the body of the Celery task): figures, narrative, PDF, DOCX, publish.

    Idempotent: a ready or failed report is left alone; a redelivered job takes over from an interrupted one and
    reuses its figures' narrative (the AI is not paid twice). Never raises for a bad job: it ends `failed` with a
    code. Returns the report as this delivery left it, or None when there was nothing to do."""
    job = _claim(report_id)
    if job is None:
        return None
    report = job.report
    written: list[str] = []
    try:
        job.write(progress=5, stage="Computing figures", error_code="", error_message="")
        figures = figures_compute(
            release_candidate=report.release_candidate, suite=report.suite, baseline=report.baseline
        )
        job.write(progress=20, stage="Writing the summary", figures=figures.headline)
        product = report.release_candidate.product
        scope = report.suite_name or (f"All suites of {product}" if product else "All suites")
        if report.summary_source:
            narrative = Narrative(
                summary=report.narrative.get("summary", ""),
                risks=list(report.narrative.get("risks", [])),
                recommendation=report.narrative.get("recommendation", ""),
                source=report.summary_source,
                note=report.summary_note,
                model=report.ai_model,
                cost=report.ai_cost,
                sources=dict(report.narrative.get("sources") or {}),
            )
        else:
            narrative = _narrative_from_ai(job, figures.headline, scope)
            job.write(
                progress=45,
                stage="Rendering the PDF",
                summary=narrative.text,
                narrative=narrative.as_dict(),
                summary_source=narrative.source,
                summary_note=narrative.note[:300],
                ai_provider=narrative.provider,
                ai_model=narrative.model,
                ai_prompt_tokens=narrative.prompt_tokens,
                ai_completion_tokens=narrative.completion_tokens,
                ai_cost=narrative.cost,
                ai_usage_log_id=narrative.usage_log_id,
            )
        content = ReportContent(
            release_candidate=report.release_candidate_name,
            scope=scope,
            baseline=figures.headline["delta"]["baseline"],
            generated_at=timezone.now(),
            generated_by=report.generated_by.email if report.generated_by else "",
            figures=figures.headline,
            narrative=narrative.as_dict(),
            summary_source=narrative.source,
            summary_note=narrative.note,
            ai_model=narrative.model,
            ai_cost=Decimal(narrative.cost),
            cases=figures.cases,
            edition=report.edition,
            narrative_sources=narrative.sources,
        )
        spool = 8 * 1024 * 1024
        with (
            tempfile.SpooledTemporaryFile(max_size=spool) as pdf,
            tempfile.SpooledTemporaryFile(max_size=spool) as docx,
        ):
            sizes = {"pdf": _render(render_pdf, content, "pdf", pdf)}
            job.write(progress=75, stage="Rendering the DOCX")
            sizes["docx"] = _render(render_docx, content, "docx", docx)
            job.write(progress=92, stage="Publishing the files")
            names = _storage_names(report, job.token)
            for fmt, handle in (("pdf", pdf), ("docx", docx)):
                names[fmt] = default_storage.save(names[fmt], File(handle, name=names[fmt]))
                written.append(names[fmt])
        now = timezone.now()
        published = Report.objects.filter(pk=report.pk, lease_token=job.token, status=ReportStatus.RUNNING).update(
            status=ReportStatus.READY,
            pdf_file=names["pdf"],
            docx_file=names["docx"],
            pdf_size=sizes["pdf"],
            docx_size=sizes["docx"],
            progress=100,
            stage="Ready",
            generated_at=now,
            updated_at=now,
            lease_token="",
            lease_expires_at=None,
        )
        if published != 1:
            raise LeaseLost()
        written = []
        REPORTS_TOTAL.labels(outcome="ready").inc()
        _remove_other_attempts(report, keep=job.token)
    except LeaseLost:
        _delete_files(written)
        return None
    except DomainError as error:
        _delete_files(written)
        _finish_failed(report, code=error.code, message=error.message, token=job.token)
    except Exception as error:  # a poison job ends failed with a code, never loops
        logger.exception("report generation failed", extra={"report_id": str(report.pk)})
        _delete_files(written)
        _finish_failed(
            report,
            code="report_generation_failed",
            message=f"The report could not be generated ({type(error).__name__}). Try again or contact an admin.",
            token=job.token,
        )
    report.refresh_from_db()
    return report


def report_recover_stale() -> int:
    """Re-enqueue running jobs whose lease expired (their worker died without a redelivery) and queued jobs nobody
    picked up; jobs out of attempts are failed by their next claim. Returns how many were re-enqueued."""
    from reports.tasks import report_generate_task

    cutoff = timezone.now()
    stale = list(
        Report.objects.filter(status=ReportStatus.RUNNING, lease_expires_at__lt=cutoff).values_list("pk", flat=True)
    )
    stale += list(
        Report.objects.filter(
            status=ReportStatus.QUEUED, created_at__lt=cutoff - timedelta(seconds=settings.REPORTS_LEASE_SECONDS)
        ).values_list("pk", flat=True)
    )
    for pk in stale:
        report_generate_task.apply_async(args=[str(pk)])
    return len(stale)


# --- downloads ---------------------------------------------------------------------------------------------------


def report_download_url(*, report: Report, user, fmt: str) -> str:
    """A signed download path for `user`, valid REPORTS_DOWNLOAD_MAX_AGE seconds (the user is part of the
    signature, so a forwarded link does not work for anyone else)."""
    require_role(user, "viewer")
    if fmt not in FORMATS:
        raise NotFound("Reports come as pdf or docx.", code="report_unknown_format")
    if report.status != ReportStatus.READY:
        raise Conflict("The report is not ready yet.", code="report_not_ready")
    token = signing.dumps({"r": str(report.pk), "u": str(user.pk), "f": fmt}, salt=SIGNING_SALT, compress=False)
    return reverse("reports:report_download", kwargs={"token": token})


@dataclass
class Download:
    file: BinaryIO
    filename: str
    content_type: str
    size: int


def report_download_open(*, token: str, user, request: HttpRequest | None = None) -> Download:
    """Check a signed link and open its file. Expired, tampered or someone else's link → Forbidden (codes
    report_link_expired / report_link_invalid / report_link_not_yours); every attempt writes one audit event
    "report.download" (success or denied)."""
    require_role(user, "viewer")
    try:
        payload = signing.loads(token, salt=SIGNING_SALT, max_age=settings.REPORTS_DOWNLOAD_MAX_AGE)
    except signing.SignatureExpired:
        audit_record(
            action="report.download",
            actor=user,
            resource="report:?",
            outcome="denied",
            request=request,
            metadata={"reason": "report_link_expired"},
        )
        raise Forbidden(
            "This download link has expired (links last 5 minutes). Open the report and download again.",
            code="report_link_expired",
        ) from None
    except signing.BadSignature:
        audit_record(
            action="report.download",
            actor=user,
            resource="report:?",
            outcome="denied",
            request=request,
            metadata={"reason": "report_link_invalid"},
        )
        raise Forbidden("This download link is not valid.", code="report_link_invalid") from None
    resource = f"report:{payload.get('r', '?')}"
    if str(payload.get("u")) != str(user.pk):
        audit_record(
            action="report.download",
            actor=user,
            resource=resource,
            outcome="denied",
            request=request,
            metadata={"reason": "report_link_not_yours"},
        )
        raise Forbidden("This download link was made for another user.", code="report_link_not_yours")
    fmt = payload.get("f")
    report = Report.objects.filter(pk=ObjectId(payload["r"])).first() if ObjectId.is_valid(payload.get("r")) else None
    if report is None or fmt not in FORMATS or report.status != ReportStatus.READY:
        audit_record(
            action="report.download",
            actor=user,
            resource=resource,
            outcome="failure",
            request=request,
            metadata={"reason": "report_not_found"},
        )
        raise NotFound("That report no longer exists.", code="report_not_found")
    field, content_type, extension = FORMATS[fmt]
    name = getattr(report, field).name
    handle = default_storage.open(name, "rb")
    audit_record(
        action="report.download",
        actor=user,
        resource=resource,
        request=request,
        metadata={"format": fmt, "release_candidate": report.release_candidate_name},
    )
    filename = f"{_file_base(report)}.{extension}"
    return Download(file=handle, filename=filename, content_type=content_type, size=getattr(report, f"{fmt}_size"))


# --- deleting ----------------------------------------------------------------------------------------------------


def report_delete(*, report: Report, actor, request: HttpRequest | None = None) -> None:
    """Delete a report and its files (admins only). One audit event "report.delete" (success or denied)."""
    _require(actor, "admin", action="report.delete", resource=f"report:{report.pk}", request=request)
    names = [report.pdf_file.name, report.docx_file.name]
    report_pk = report.pk
    metadata = {"release_candidate": report.release_candidate_name, "suite": report.suite_name or "all"}
    Report.objects.filter(pk=report_pk).delete()
    _delete_files(names)
    _remove_other_attempts(report, keep="")
    audit_record(
        action="report.delete", actor=actor, resource=f"report:{report_pk}", request=request, metadata=metadata
    )
