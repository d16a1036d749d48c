"""Celery tasks of the audit trail: thin, idempotent."""

from celery import shared_task

from audit.sealing import audit_seal_pending


@shared_task(name="audit.seal", ignore_result=True)
def audit_seal_task() -> int:
    """Beat, every ~2 s: seal the events recorded since (under the sealer lease; a no-op when another holds it)."""
    return audit_seal_pending(wait_seconds=0)
