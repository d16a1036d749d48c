"""Reads of the imports app."""

from __future__ import annotations

from bson import ObjectId
from django.db.models import QuerySet

from accounts.permissions import require_role
from imports.models import ImportJob
from report_platform.errors import NotFound


def import_job_get_for_user(*, user, job_id: str) -> ImportJob:
    """The job if `user` may see it: its reviewer, or any admin. Anything else (bad id included) is NotFound."""
    require_role(user, "reviewer")
    if not ObjectId.is_valid(str(job_id)):
        raise NotFound("No such import.")
    job = ImportJob.objects.filter(pk=ObjectId(str(job_id))).first()
    if job is None or (job.created_by_id != user.pk and not user.has_role("admin")):
        raise NotFound("No such import.")
    return job


def import_job_list_for_user(*, user, limit: int = 20) -> QuerySet[ImportJob]:
    """The newest jobs of `user` (all jobs for admins)."""
    require_role(user, "reviewer")
    jobs = ImportJob.objects.defer("errors", "preview", "mapping")
    if not user.has_role("admin"):
        jobs = jobs.filter(created_by=user)
    return jobs.order_by("-created_at")[:limit]
