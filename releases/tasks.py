"""Celery tasks of the releases app: thin, idempotent."""

from __future__ import annotations

from celery import shared_task

from releases import store


@shared_task(ignore_result=True)
def summary_deltas_apply() -> int:
    """Periodic (CELERY_BEAT_SCHEDULE): apply summary deltas left by processes that died before their thread ran."""
    return store.summary_deltas_apply()
