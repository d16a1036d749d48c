"""Pages of the AI assistant: ask for a task (answer streamed in), usage with charts, batch progress."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.permissions import role_required
from ai_assist import selectors, services
from ai_assist.prompts import ASSIST_TASKS, TEMPLATES
from ai_assist.streaming import ndjson_response
from releases import selectors as release_selectors
from report_platform.errors import DomainError, ValidationFailed

# What each task is asked about, for the picker.
_TASK_SUBJECTS = {"triage_failure": "run", "draft_bug_report": "run", "draft_steps": "case", "summarise_rc": "rc"}
PICKER_LIMIT = 50


def _picker(request: HttpRequest, *, task: str) -> dict[str, Any]:
    """What the assistant's picker offers for a task that still lacks its subject: the RCs, and the chosen RC's
    failing runs (run tasks) or the cases matching a search (case tasks)."""
    rcs = release_selectors.release_candidate_list()
    rc_value = request.GET.get("rc", "")
    rc = next((item for item in rcs if str(item.pk) == rc_value or item.name == rc_value), None)
    rc = rc or release_selectors.release_candidate_current()
    subject = _TASK_SUBJECTS.get(task, "rc")
    picker: dict[str, Any] = {"subject": subject, "rcs": rcs, "rc": rc, "q": request.GET.get("q", "")[:100]}
    if subject == "run" and rc is not None:
        picker["runs"] = release_selectors.release_candidate_failing_runs(release_candidate=rc, limit=PICKER_LIMIT)
    elif subject == "case":
        filters = release_selectors.CaseFilters(search=picker["q"].strip())
        picker["cases"] = [row["case"] for row in release_selectors.case_list(filters=filters, limit=PICKER_LIMIT).rows]
    return picker


@require_GET
@role_required("viewer")
def assist(request: HttpRequest) -> HttpResponse:
    """The assistant: a task about one run, case or RC. Without its subject the page opens on a picker."""
    task = request.GET.get("task", "") or "triage_failure"
    ids = {name: request.GET.get(name, "") for name in ("case", "run", "rc")}
    context_error = ""
    title = ""
    picker = None
    try:
        built = selectors.assist_context_build(task=task, case_id=ids["case"], run_id=ids["run"], rc_id=ids["rc"])
        title = built["title"]
        release_candidate = built["release_candidate"]
    except ValidationFailed as error:
        release_candidate = None
        if task in _TASK_SUBJECTS and set(error.fields) & {"run", "case", "rc"}:
            picker = _picker(request, task=task)  # nothing chosen yet: offer the choice, no error
        else:
            context_error = error.message
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
            "picker": picker,
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
