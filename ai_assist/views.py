"""Pages of the AI assistant: ask for a task (answer streamed in), usage with charts, batch progress."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.permissions import role_required
from ai_assist import selectors, services
from ai_assist.prompts import ASSIST_TASKS, TEMPLATES
from ai_assist.streaming import ndjson_response
from report_platform.errors import DomainError


@require_GET
@role_required("viewer")
def assist(request: HttpRequest) -> HttpResponse:
    task = request.GET.get("task", "") or "triage_failure"
    ids = {name: request.GET.get(name, "") for name in ("case", "run", "rc")}
    context_error = ""
    title = ""
    try:
        built = selectors.assist_context_build(task=task, case_id=ids["case"], run_id=ids["run"], rc_id=ids["rc"])
        title = built["title"]
        release_candidate = built["release_candidate"]
    except DomainError as error:
        context_error = error.message
        release_candidate = None
    return render(
        request,
        "ai_assist/assist.html",
        {
            "task": task,
            "ids": ids,
            "tasks": [(name, TEMPLATES[name].title) for name in ASSIST_TASKS],
            "title": title,
            "context_error": context_error,
            "release_candidate": release_candidate,
            "provider": settings.AI_PROVIDER,
            "assist_config": {"streamUrl": reverse("ai_assist:assist_stream"), "task": task, **ids},
        },
    )


@require_POST
@role_required("viewer")
def assist_stream(request: HttpRequest) -> HttpResponse:
    """The answer as NDJSON events; refusals (quota, open circuit) are JSON errors before any streaming."""
    task = request.POST.get("task", "")
    built = selectors.assist_context_build(
        task=task, case_id=request.POST.get("case"), run_id=request.POST.get("run"), rc_id=request.POST.get("rc")
    )
    stream = services.ai_stream_text(
        user=request.user,
        task_id=task,
        template_id=task,
        variables=built["variables"],
        release_candidate=built["release_candidate"],
        subject=built["subject"],
    )
    return ndjson_response(stream, title=built["title"])


@require_GET
@role_required("viewer")
def usage(request: HttpRequest) -> HttpResponse:
    try:
        days = int(request.GET.get("days", "30"))
    except ValueError:
        days = 30
    data = selectors.usage_page_data(user=request.user, days=days)
    summary = data["summary"]
    charts = {name: summary[name] for name in ("day", "task", "model", "rc", "user")}
    return render(request, "ai_assist/usage.html", {**data, "charts": charts, "days": summary["days"]})


@require_POST
@role_required("viewer")
def batch_create(request: HttpRequest) -> HttpResponse:
    job = services.ai_batch_create(
        user=request.user, task=request.POST.get("task", "triage_failure"), release_candidate_id=request.POST.get("rc")
    )
    return redirect("ai_assist:batch_detail", pk=str(job.pk))


@require_GET
@role_required("viewer")
def batch_detail(request: HttpRequest, pk: str) -> HttpResponse:
    job = selectors.batch_get_for_user(user=request.user, batch_id=pk)
    items = list(job.items.select_related("run__case").order_by("pk"))
    template = "ai_assist/partials/batch_status.html" if request.htmx else "ai_assist/batch_detail.html"
    return render(request, template, {"job": job, "items": items})
