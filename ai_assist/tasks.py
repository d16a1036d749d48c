"""Celery tasks of the AI assistant: thin, take ids, call a service; idempotent and acknowledged late."""

from celery import shared_task

from ai_assist.services import ai_batch_run


@shared_task(acks_late=True, name="ai_assist.tasks.ai_batch_run_task")
def ai_batch_run_task(batch_id: str) -> str:
    job = ai_batch_run(batch_id=batch_id)
    return job.status if job is not None else "missing"
