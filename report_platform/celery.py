"""The Celery app: Redis broker and result backend, late acks, tasks from every app's `tasks.py`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "report_platform.settings.dev")

app = Celery("report_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

from report_platform import task_logging  # noqa: E402, F401 - JSON line, metrics and request id per task
