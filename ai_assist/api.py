"""JSON endpoints of the ai_assist app, mounted under /api/v1 by report_platform/api.py."""

from __future__ import annotations

from django.http import HttpRequest, StreamingHttpResponse
from ninja import Query, Router, Status

from accounts.permissions import require_role
from ai_assist import selectors, services
from ai_assist.models import AiBatchJob
from ai_assist.schemas import AssistIn, AssistOut, BatchIn, BatchOut
from ai_assist.streaming import ndjson_response

router = Router(tags=["ai_assist"])


def _batch_out(job: AiBatchJob) -> dict:
    return {
        "id": str(job.pk),
        "task": job.task,
        "release_candidate": str(job.release_candidate_id),
        "status": job.status,
        "total": job.total,
        "done": job.done,
        "failed": job.failed,
        "progress_percent": job.progress_percent,
        "error": job.error,
    }


@router.post("/ai/assist", response=AssistOut, url_name="ai_assist")
def ai_assist(request: HttpRequest, payload: AssistIn):
    """Run an assistant task on a case, run or RC. With `stream: true` the answer comes as NDJSON events."""
    require_role(request.user, "viewer")
    context = selectors.assist_context_build(
        task=payload.task, case_id=payload.case, run_id=payload.run, rc_id=payload.rc
    )
    arguments = {
        "user": request.user,
        "task_id": payload.task,
        "template_id": payload.task,
        "variables": context["variables"],
        "release_candidate": context["release_candidate"],
        "subject": context["subject"],
    }
    if payload.stream:
        return ndjson_response(services.ai_stream_text(**arguments), title=context["title"])
    result = services.ai_generate_text(**arguments)
    return {
        "text": result.text,
        "provider": result.provider,
        "offline": result.provider == "offline",
        "model": result.model,
        "template": result.template_id,
        "template_version": result.template_version,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "cached_prompt_tokens": result.cached_prompt_tokens,
        "cache_write_tokens": result.cache_write_tokens,
        "reasoning_tokens": result.reasoning_tokens,
        "cost": result.cost,
        "cost_nano": result.cost_nano,
        "latency_ms": result.latency_ms,
        "outcome": result.outcome,
        "usage_log_id": result.usage_log_id,
    }


@router.get("/ai/usage", url_name="ai_usage")
def ai_usage(request: HttpRequest, days: int = Query(30, ge=1, le=90), user: str | None = None):
    """Usage totals and breakdowns by user, task, RC, model and day. Admins see everyone (or `user`)."""
    require_role(request.user, "viewer")
    summary = selectors.usage_summary(
        user=request.user, days=days, user_id=user if request.user.has_role("admin") else None
    )
    return summary


@router.get("/ai/usage/export.csv", url_name="ai_usage_export", summary="AI usage for reconciliation as CSV (admin)")
def ai_usage_export(request: HttpRequest, days: int = Query(30, ge=1, le=90), month: str = ""):
    """One row per day x model x user x task x RC: tokens by kind, cost (nano-dollars and USD), calls, failures.
    The rows add up to the usage logs exactly. `month=YYYY-MM` exports one calendar month instead."""
    require_role(request.user, "admin")
    name, chunks = services.ai_usage_export_csv(user=request.user, days=days, month=month, request=request)
    response = StreamingHttpResponse(chunks, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@router.post("/ai/batches", response={202: BatchOut}, url_name="ai_batch_create")
def ai_batch_create(request: HttpRequest, payload: BatchIn):
    """Queue a task over every failed run of an RC (within your quota); poll the batch for progress."""
    require_role(request.user, "viewer")
    job = services.ai_batch_create(user=request.user, task=payload.task, release_candidate_id=payload.rc)
    return Status(202, _batch_out(job))


@router.get("/ai/batches/{batch_id}", response=BatchOut, url_name="ai_batch_detail")
def ai_batch_detail(request: HttpRequest, batch_id: str):
    require_role(request.user, "viewer")
    return _batch_out(selectors.batch_get_for_user(user=request.user, batch_id=batch_id))
