"""Celery tasks of the imports app: thin, take ids, late acks (a killed worker's job is redelivered)."""

from __future__ import annotations

import uuid

from celery import shared_task

from imports import services


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None, ignore_result=True)
def import_job_run(self, job_id: str) -> None:
    """Process one import job. Idempotent: a second delivery of a running job waits for its lease."""
    outcome = services.import_job_process(job_id=job_id, worker=f"{self.request.hostname}:{uuid.uuid4().hex}")
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)


@shared_task(acks_late=True, ignore_result=True)
def import_jobs_sweep() -> dict[str, int]:
    """Periodic (CELERY_BEAT_SCHEDULE): stale jobs are re-enqueued or failed."""
    return services.import_jobs_sweep()
