"""API shapes of the imports app."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.urls import reverse
from ninja import Schema

from imports.models import ImportJob


class ImportErrorOut(Schema):
    row: int | None
    column: str | None
    code: str
    message: str


class ImportJobOut(Schema):
    id: str
    kind: str
    status: str
    filename: str
    dry_run: bool
    total: int
    processed: int
    percent: int
    rate: float
    eta_seconds: float | None
    error_count: int
    errors: list[ImportErrorOut]
    failure_code: str
    failure_message: str
    result: dict[str, Any]
    mapping: list[dict[str, Any]]
    preview: list[list[str]]
    attempts: int
    progress_url: str
    page_url: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @staticmethod
    def from_job(job: ImportJob) -> ImportJobOut:
        return ImportJobOut(
            id=str(job.pk),
            kind=job.kind,
            status=job.status,
            filename=job.filename,
            dry_run=job.dry_run,
            total=job.total,
            processed=job.processed,
            percent=job.percent,
            rate=job.rate,
            eta_seconds=job.eta_seconds,
            error_count=job.error_count,
            errors=job.errors,
            failure_code=job.failure_code,
            failure_message=job.failure_message,
            result=job.result,
            mapping=job.mapping,
            preview=job.preview,
            attempts=job.attempts,
            progress_url=reverse("api:import_get", args=[str(job.pk)]),
            page_url=reverse("imports:import_detail", args=[str(job.pk)]),
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )
