"""Celery tasks of the AI assistant: thin, take ids, call a service; idempotent and acknowledged late."""

from celery import shared_task

from ai_assist import usage_buffer
from ai_assist.services import ai_batch_run


@shared_task(acks_late=True, name="ai_assist.tasks.ai_batch_run_task")
def ai_batch_run_task(batch_id: str) -> str:
    job = ai_batch_run(batch_id=batch_id)
    return job.status if job is not None else "missing"


@shared_task(name="ai_assist.usage_flush")
def ai_usage_flush_task() -> int:
    """Beat, every AI_USAGE_FLUSH_BEAT_SECONDS: move usage rows a process queued but never drained (it died)."""
    return usage_buffer.flush()
