"""Reads of the imports app."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from django.db.models import QuerySet

from accounts.permissions import require_role
from imports.models import ImportJob
from report_platform.errors import NotFound


def import_job_get_for_user(*, user, job_id: str, read_only: bool = False) -> ImportJob:
    """The job if `user` may see it: its reviewer, or any admin; with `read_only` (its page and progress) also a
    reviewer whose upload of the same JUnit report was answered with this job (`options.shared_with`). Anything
    else (bad id included) is NotFound."""
    require_role(user, "reviewer")
    if not ObjectId.is_valid(str(job_id)):
        raise NotFound("No such import.")
    job = ImportJob.objects.filter(pk=ObjectId(str(job_id))).first()
    if job is None:
        raise NotFound("No such import.")
    shared = read_only and str(user.pk) in ((job.options or {}).get("shared_with") or ())
    if job.created_by_id != user.pk and not shared and not user.has_role("admin"):
        raise NotFound("No such import.")
    return job


def import_job_list_for_user(*, user, limit: int = 20) -> QuerySet[ImportJob]:
    """The newest jobs of `user` (all jobs for admins)."""
    require_role(user, "reviewer")
    jobs = ImportJob.objects.defer("errors", "preview", "mapping")
    if not user.has_role("admin"):
        jobs = jobs.filter(created_by=user)
    return jobs.order_by("-created_at")[:limit]


def import_preview_rows(*, job: ImportJob) -> list[dict[str, Any]]:
    """The job's preview rows with their problems marked: [{"row": file row number, "problems": [row-wide
    messages], "cells": [{"value", "problems": [messages]}]}]. Preview row i is file row i + 2 (the validator keeps
    blank lines as empty rows); empty rows are left out. Cells are matched to errors by the column's title."""
    columns = [column.get("column") for column in job.mapping or []]
    by_row: dict[int, dict[str | None, list[str]]] = {}
    for error in job.errors or []:
        if error.get("row") is not None:
            by_row.setdefault(int(error["row"]), {}).setdefault(error.get("column"), []).append(error["message"])
    rows = []
    for index, cells in enumerate(job.preview or []):
        if not cells:
            continue
        number = index + 2
        problems = by_row.get(number, {})
        marked = [
            {"value": value, "problems": problems.get(columns[position] if position < len(columns) else None, [])}
            for position, value in enumerate(cells)
        ]
        known = set(columns)
        rows.append(
            {
                "row": number,
                "problems": [
                    message for column, messages in problems.items() if column not in known for message in messages
                ],
                "cells": marked,
            }
        )
    return rows
