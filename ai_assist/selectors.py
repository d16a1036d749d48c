"""Reads for the AI assistant: prompt context from release data, usage summaries, the reconciliation export, the
month's forecast, budgets, batch jobs. Money is summed as integer nano-dollars (`cost_nano`) and only turned into
USD for display, so every figure equals the sum of the usage rows exactly."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from django.conf import settings
from django.db import connection
from django.utils import timezone

from ai_assist import budgets as budgets_module
from ai_assist import usage_buffer
from ai_assist.breaker import breaker_states
from ai_assist.metrics import task_label
from ai_assist.models import AiBatchJob, AiUsageLog
from ai_assist.pricing import NANO
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


TOKEN_FIELDS = (
    "prompt_tokens",
    "cached_prompt_tokens",
    "cache_write_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "total_tokens",
)


def _usage_match(*, user, since: datetime, until: datetime | None = None, user_id: str | None = None) -> dict:
    """The rows a user may see: admins everyone (or one user with `user_id`), everybody else their own."""
    match: dict[str, Any] = {"created_at": {"$gte": since}}
    if until is not None:
        match["created_at"]["$lt"] = until
    if not user.has_role("admin"):
        match["user_id"] = user.pk
    elif user_id:
        match["user_id"] = _object_id(user_id, "user")
    return match


def _usage_rows(match: dict) -> Iterator[dict[str, Any]]:
    usage_buffer.flush_quietly()  # a raw aggregate bypasses the model manager's drain: read-your-writes by hand
    fields = ("user_email", "task_id", "release_candidate_name", "model", "outcome", "latency_ms", "created_at")
    projection = dict.fromkeys((*fields, *TOKEN_FIELDS, "cost_nano", "cost_usd"), 1)
    return connection.database[AiUsageLog._meta.db_table].aggregate([{"$match": match}, {"$project": projection}])


def row_cost_nano(row: dict[str, Any]) -> int:
    """A row's cost in nano-dollars (rows from before migration 0005 carry only the float USD figure)."""
    value = row.get("cost_nano")
    return int(value) if value is not None else round(float(row.get("cost_usd") or 0) * NANO)


def usage_summary(*, user, days: int = 30, user_id: str | None = None) -> dict[str, Any]:
    """Totals and breakdowns (user, task, RC, model, day) of AI usage: tokens by kind, cost, calls, failures,
    p95 latency. Admins see everyone (or one user with `user_id`); everybody else sees only their own calls.
    """
    days = max(1, min(int(days), settings.AI_USAGE_LOG_TTL_DAYS))
    since = timezone.now() - timedelta(days=days)
    rows = _usage_rows(_usage_match(user=user, since=since, user_id=user_id))
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
        **dict.fromkeys(TOKEN_FIELDS[:-1], 0),
        "cost_nano": 0,
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
    for field in TOKEN_FIELDS[:-1]:
        bucket[field] += int(row.get(field) or 0)
    bucket["cost_nano"] += row_cost_nano(row)


def _finish(bucket: dict[str, Any]) -> dict[str, Any]:
    latencies = bucket.pop("latencies", [])
    return {**bucket, "cost_usd": round(bucket["cost_nano"] / NANO, 9), "p95_latency_ms": _p95(latencies)}


EXPORT_COLUMNS = (
    "day",
    "model",
    "user",
    "task",
    "release_candidate",
    "calls",
    "failures",
    "refused",
    *TOKEN_FIELDS,
    "cost_nano",
    "cost_usd",
)


def usage_export_rows(*, user, since: datetime, until: datetime | None = None) -> list[dict[str, Any]]:
    """One row per day x model x user x task x RC with tokens by kind, cost (nano-dollars, and the same as exact
    USD text), calls, failures and refusals; sorted. The rows add up to the usage rows to the nano-dollar."""
    from ai_assist.pricing import nano_to_usd_text

    groups: dict[tuple, dict[str, Any]] = {}
    for row in _usage_rows(_usage_match(user=user, since=since, until=until)):
        key = (
            row["created_at"].strftime("%Y-%m-%d"),
            row.get("model") or "",
            row.get("user_email") or "",
            task_label(row.get("task_id") or ""),
            row.get("release_candidate_name") or "",
        )
        bucket = groups.get(key)
        if bucket is None:
            bucket = groups[key] = {"calls": 0, "failures": 0, "refused": 0, **dict.fromkeys(TOKEN_FIELDS, 0)}
            bucket["cost_nano"] = 0
        bucket["calls"] += 1
        bucket["failures"] += row.get("outcome") == "failed"
        bucket["refused"] += row.get("outcome") == "refused"
        for field in TOKEN_FIELDS:
            bucket[field] += int(row.get(field) or 0)
        bucket["cost_nano"] += row_cost_nano(row)
    return [
        {
            **dict(zip(EXPORT_COLUMNS[:5], key, strict=True)),
            **bucket,
            "failures": int(bucket["failures"]),
            "refused": int(bucket["refused"]),
            "cost_usd": nano_to_usd_text(bucket["cost_nano"]),
        }
        for key, bucket in sorted(groups.items())
    ]


def usage_forecast(*, user, now: datetime | None = None) -> dict[str, Any]:
    """The month's spend so far and a forecast for the whole month: what is spent plus the last 7 days' daily
    average for each day (and part of a day) still to come. Same scope as `usage_summary`."""
    now = now or timezone.now()
    month_start = budgets_module.month_start(now)
    month_end = budgets_module.next_month(now)
    week_ago = now - timedelta(days=7)
    spent_month = spent_week = 0
    for row in _usage_rows(_usage_match(user=user, since=min(month_start, week_ago))):
        cost = row_cost_nano(row)
        created = row["created_at"]
        created = created if created.tzinfo else created.replace(tzinfo=now.tzinfo)
        if created >= month_start:
            spent_month += cost
        if created >= week_ago:
            spent_week += cost
    remaining_seconds = max(0, int((month_end - now).total_seconds()))
    # Integer arithmetic: the 7-day rate per second times the seconds left, rounded to the nano-dollar.
    rest = (spent_week * remaining_seconds + 7 * 86400 // 2) // (7 * 86400)
    return {
        "month": f"{now:%Y-%m}",
        "spent_nano": spent_month,
        "last_7_days_nano": spent_week,
        "daily_average_nano": spent_week // 7,
        "forecast_nano": spent_month + rest,
        "spent_usd": spent_month / NANO,
        "daily_average_usd": spent_week / 7 / NANO,
        "forecast_usd": (spent_month + rest) / NANO,
    }


def budget_list(*, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every enabled budget with its use in the current period (for the usage page)."""
    now = now or timezone.now()
    return [
        {
            "name": row["budget"].name,
            "scope": budgets_module.SCOPE_LABELS.get(row["budget"].scope, row["budget"].scope),
            "period": row["budget"].period,
            "used_usd": row["used_nano"] / NANO,
            "limit_usd": row["budget"].limit_nano / NANO,
            "left_usd": row["left_nano"] / NANO,
            "percent": round(100 * row["ratio"], 1),
            "resets_at": row["resets_at"],
        }
        for row in budgets_module.budget_usage(now=now)
    ]


def usage_page_data(*, user, days: int = 30) -> dict[str, Any]:
    """Everything the usage page shows: the summary, the user's own quota, circuit breaker states, recent calls."""
    logs = AiUsageLog.objects.all() if user.has_role("admin") else AiUsageLog.objects.filter(user=user)
    return {
        "summary": usage_summary(user=user, days=days),
        "forecast": usage_forecast(user=user),
        "budgets": budget_list() if user.has_role("admin") else [],
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
