"""Reads for the AI assistant: prompt context from release data, usage summaries, batch jobs."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import timedelta
from typing import Any

from bson import ObjectId
from django.conf import settings
from django.db import connection
from django.utils import timezone

from ai_assist import usage_buffer
from ai_assist.breaker import breaker_states
from ai_assist.metrics import task_label
from ai_assist.models import AiBatchJob, AiUsageLog
from ai_assist.prompts import ASSIST_TASKS
from ai_assist.quotas import quota_usage
from releases import selectors as release_selectors
from releases.models import TestCase, TestRun
from report_platform.errors import NotFound, ValidationFailed

HISTORY_RUNS = 8
RC_FAILURES_LISTED = 40


def _object_id(value: str | None, what: str) -> ObjectId | None:
    if not value:
        return None
    if not ObjectId.is_valid(value):
        raise NotFound(f"No such {what}.")
    return ObjectId(value)


def _case_dict(case: TestCase) -> dict[str, Any]:
    return {
        "key": case.key,
        "title": case.title,
        "category": case.category,
        "task": case.task,
        "owner": case.owner,
        "priority": case.priority,
        "tags": list(case.tags or []),
    }


def _history(case: TestCase) -> list[dict[str, Any]]:
    """The case's latest status on each RC, newest RC first."""
    return [
        {"rc": run.release_candidate.name, "status": run.status, "notes": (run.notes or "")[:200]}
        for run in release_selectors.case_latest_runs(case=case, limit=HISTORY_RUNS)
    ]


def _run_dict(run: TestRun) -> dict[str, Any]:
    return {
        "rc": run.release_candidate.name,
        "status": run.status,
        "executed_at": run.executed_at.isoformat(timespec="minutes"),
        "mantis_ids": list(run.mantis_ids or []),
        "notes": (run.notes or "")[:1500],
    }


def assist_context_build(
    *, task: str, case_id: str | None = None, run_id: str | None = None, rc_id: str | None = None
) -> dict[str, Any]:
    """The prompt variables, release candidate and subject for an assistant task, read from release data through
    the releases selectors. Soft-deleted cases are left out everywhere, and RC counts are the dashboard's."""
    if task not in ASSIST_TASKS:
        raise ValidationFailed(
            f"Unknown task {task!r}.", code="ai_unknown_task", fields={"task": [f"One of: {', '.join(ASSIST_TASKS)}."]}
        )
    if task in ("triage_failure", "draft_bug_report"):
        pk = _object_id(run_id, "run")
        if pk is None:
            raise ValidationFailed("This task needs a run.", fields={"run": ["This field is required."]})
        run = release_selectors.run_get(run_id=pk)
        if run.case.is_deleted:
            raise NotFound("No such run.")
        release_selectors.suites_attach(cases=[run.case])
        related = release_selectors.release_candidate_failing_runs(
            release_candidate=run.release_candidate, limit=10, category=run.category, exclude_run_id=run.pk
        )
        variables = {
            "run": _run_dict(run),
            "case": _case_dict(run.case),
            "suite": {"product": run.case.suite.product, "name": run.case.suite.name},
            "history": _history(run.case),
            "related": [{"case": item.case.key, "notes": (item.notes or "")[:120]} for item in related],
        }
        return {
            "variables": variables,
            "release_candidate": run.release_candidate,
            "subject": f"run:{run.pk}",
            "title": f"{run.case.key} on {run.release_candidate.name}",
        }
    if task == "draft_steps":
        pk = _object_id(case_id, "case")
        if pk is None:
            raise ValidationFailed("This task needs a case.", fields={"case": ["This field is required."]})
        case = release_selectors.case_get(case_id=pk)
        variables = {
            "case": _case_dict(case),
            "suite": {"product": case.suite.product, "name": case.suite.name, "description": case.suite.description},
            "history": _history(case),
        }
        return {"variables": variables, "release_candidate": None, "subject": f"case:{case.pk}", "title": case.key}
    pk = _object_id(rc_id, "release candidate")
    if pk is None:
        raise ValidationFailed("This task needs a release candidate.", fields={"rc": ["This field is required."]})
    rc = release_selectors.release_candidate_get(release_candidate_id=pk)
    failures = release_selectors.release_candidate_failing_runs(release_candidate=rc, limit=RC_FAILURES_LISTED)
    previous = release_selectors.release_candidate_previous(release_candidate=rc)
    variables = {
        "release_candidate": {"name": rc.name, "state": rc.state},
        "counts": release_selectors.release_candidate_counts(release_candidate=rc),
        "failures": [
            {
                "case": run.case.key,
                "title": run.case.title,
                "category": run.category,
                "owner": run.owner,
                "notes": (run.notes or "")[:120],
            }
            for run in failures
        ],
        "previous": (
            {"name": previous.name, "counts": release_selectors.release_candidate_counts(release_candidate=previous)}
            if previous
            else {}
        ),
    }
    return {"variables": variables, "release_candidate": rc, "subject": f"rc:{rc.pk}", "title": rc.name}


def _p95(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)], 1)


def usage_summary(*, user, days: int = 30, user_id: str | None = None) -> dict[str, Any]:
    """Totals and breakdowns (user, task, RC, model, day) of AI usage: tokens, cost, calls, failures, p95 latency.

    Admins see everyone (or one user with `user_id`); everybody else sees only their own calls.
    """
    days = max(1, min(int(days), settings.AI_USAGE_LOG_TTL_DAYS))
    since = timezone.now() - timedelta(days=days)
    match: dict[str, Any] = {"created_at": {"$gte": since}}
    if not user.has_role("admin"):
        match["user_id"] = user.pk
    elif user_id:
        match["user_id"] = _object_id(user_id, "user")
    usage_buffer.flush_quietly()  # a raw aggregate bypasses the model manager's drain: read-your-writes by hand
    rows = connection.database[AiUsageLog._meta.db_table].aggregate(
        [
            {"$match": match},
            {
                "$project": {
                    "user_email": 1,
                    "task_id": 1,
                    "release_candidate_name": 1,
                    "model": 1,
                    "outcome": 1,
                    "total_tokens": 1,
                    "prompt_tokens": 1,
                    "completion_tokens": 1,
                    "cost_usd": 1,
                    "latency_ms": 1,
                    "created_at": 1,
                }
            },
        ]
    )
    dimensions = {"user": "user_email", "task": "task_id", "rc": "release_candidate_name", "model": "model"}
    groups: dict[str, dict[str, dict[str, Any]]] = {name: defaultdict(_bucket) for name in [*dimensions, "day"]}
    total = _bucket()
    for row in rows:
        keys = {name: row.get(field) or "(none)" for name, field in dimensions.items()}
        keys["task"] = task_label(keys["task"])  # "report:<id>" counts as "report"
        keys["day"] = row["created_at"].strftime("%Y-%m-%d")
        for name, key in keys.items():
            _add(groups[name][key], row)
        _add(total, row)
    return {
        "days": days,
        "scope": ("user" if user_id else "everyone") if user.has_role("admin") else "own",
        "totals": _finish(total),
        **{
            name: [{"key": key, **_finish(bucket)} for key, bucket in sorted(group.items())]
            for name, group in groups.items()
        },
    }


def _bucket() -> dict[str, Any]:
    return {
        "calls": 0,
        "failures": 0,
        "refused": 0,
        "tokens": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost_usd": 0.0,
        "latencies": [],
    }


def _add(bucket: dict[str, Any], row: dict[str, Any]) -> None:
    bucket["calls"] += 1
    if row.get("outcome") == "failed":
        bucket["failures"] += 1
    elif row.get("outcome") == "refused":
        bucket["refused"] += 1
    else:
        bucket["latencies"].append(float(row.get("latency_ms") or 0))
    bucket["tokens"] += int(row.get("total_tokens") or 0)
    bucket["prompt_tokens"] += int(row.get("prompt_tokens") or 0)
    bucket["completion_tokens"] += int(row.get("completion_tokens") or 0)
    bucket["cost_usd"] += float(row.get("cost_usd") or 0)


def _finish(bucket: dict[str, Any]) -> dict[str, Any]:
    latencies = bucket.pop("latencies", [])
    return {**bucket, "cost_usd": round(bucket["cost_usd"], 6), "p95_latency_ms": _p95(latencies)}


def usage_page_data(*, user, days: int = 30) -> dict[str, Any]:
    """Everything the usage page shows: the summary, the user's own quota, circuit breaker states, recent calls."""
    logs = AiUsageLog.objects.all() if user.has_role("admin") else AiUsageLog.objects.filter(user=user)
    return {
        "summary": usage_summary(user=user, days=days),
        "quota": quota_usage(user_id=str(user.pk), role=user.role),
        "breakers": breaker_states(),
        "recent": list(logs.order_by("-created_at")[:25]),
        "provider": settings.AI_PROVIDER,
    }


def batch_get_for_user(*, user, batch_id: str) -> AiBatchJob:
    pk = _object_id(batch_id, "batch")
    job = AiBatchJob.objects.filter(pk=pk).first()
    if job is None or (job.user_id != user.pk and not user.has_role("admin")):
        raise NotFound("No such batch.")
    return job
