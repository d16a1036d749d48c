"""One JSON log line and two metrics per Celery task, and the request id carried from the web request into the task.

- Publishing (web process): the request id and user id bound by RequestIdMiddleware travel as message headers
  (`rp_request_id`, `rp_user_id`).
- Running (worker): the task's log context gets `task`, `task_id`, `request_id`, `user_id`, so every line the
  task writes carries them; when it ends one `task` line records the duration and the outcome
  (`success`, `failure`, `retry`), and `rp_celery_tasks_total{task,outcome}` / `rp_celery_task_seconds{task}`
  are updated (multiprocess mode makes them visible at the web's /metrics).
- Celery keeps Django's logging configuration (JSON lines) instead of installing its own handlers.

Connected by importing this module from report_platform/celery.py. Metrics are created on first use, never at
import: this module is imported before the settings switch prometheus_client to multiprocess mode.
"""

from __future__ import annotations

import time
from functools import cache

import structlog
from celery import signals

from report_platform.logging import get_logger

task_log = get_logger("report_platform.tasks")

REQUEST_ID_HEADER = "rp_request_id"
USER_ID_HEADER = "rp_user_id"
_started: dict[str, float] = {}
_outcomes: dict[str, str] = {}
_errors: dict[str, str] = {}


@cache
def _metrics():
    from prometheus_client import Counter, Histogram

    tasks = Counter("rp_celery_tasks_total", "Celery tasks finished, by task name and outcome.", ["task", "outcome"])
    seconds = Histogram(
        "rp_celery_task_seconds",
        "Run time of Celery tasks.",
        ["task"],
        buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
    )
    return tasks, seconds


@signals.setup_logging.connect
def keep_django_logging(**kwargs) -> None:
    """With a receiver here Celery leaves logging alone; Django's LOGGING (JSON to stdout) is applied."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@signals.before_task_publish.connect
def add_request_headers(headers: dict | None = None, **kwargs) -> None:
    if headers is None:
        return
    context = structlog.contextvars.get_contextvars()
    if context.get("request_id"):
        headers.setdefault(REQUEST_ID_HEADER, context["request_id"])
    if context.get("user_id"):
        headers.setdefault(USER_ID_HEADER, context["user_id"])


@signals.task_prerun.connect
def task_started(task_id: str | None = None, task=None, **kwargs) -> None:
    if task_id is None or task is None:
        return
    _started[task_id] = time.perf_counter()
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        task=task.name,
        task_id=task_id,
        request_id=_header(task.request, REQUEST_ID_HEADER),
        user_id=_header(task.request, USER_ID_HEADER),
    )


def _header(request, name: str) -> str | None:
    """A custom message header: on the request itself (worker) or in its `headers` (eager `apply`)."""
    return request.get(name) or (getattr(request, "headers", None) or {}).get(name) or None


@signals.task_retry.connect
def task_retrying(request=None, reason=None, **kwargs) -> None:
    if request is not None and getattr(request, "id", None):
        _outcomes[request.id] = "retry"
        _errors[request.id] = type(reason).__name__ if isinstance(reason, BaseException) else "Retry"


@signals.task_failure.connect
def task_failed(task_id: str | None = None, exception: BaseException | None = None, **kwargs) -> None:
    if task_id is not None:
        _outcomes[task_id] = "failure"
        # The type only: exception messages can carry user data.
        _errors[task_id] = type(exception).__name__ if exception is not None else "Error"


@signals.task_postrun.connect
def task_finished(task_id: str | None = None, task=None, state: str | None = None, **kwargs) -> None:
    if task_id is None or task is None:
        return
    started = _started.pop(task_id, None)
    duration = time.perf_counter() - started if started is not None else 0.0
    outcome = _outcomes.pop(task_id, None) or ("success" if state in (None, "SUCCESS") else state.lower())
    error = _errors.pop(task_id, None)
    tasks, seconds = _metrics()
    tasks.labels(task=task.name, outcome=outcome).inc()
    seconds.labels(task=task.name).observe(duration)
    fields = {"outcome": outcome, "duration_ms": round(duration * 1000, 2), "state": state}
    if error:
        fields["error"] = error
    if outcome == "failure":
        task_log.error("task", **fields)
    else:
        task_log.info("task", **fields)
    structlog.contextvars.clear_contextvars()
