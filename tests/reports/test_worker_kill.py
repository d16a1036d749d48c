"""A real Celery worker whose process is killed while it renders a report: the job is redelivered and finishes,
and nothing is downloadable before it is complete."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.storage import default_storage

from ai_assist.models import AiUsageLog
from reports import services
from reports.models import Report
from tests.reports.samples import seed_large_suite

pytestmark = pytest.mark.django_db(transaction=True)


def _wait_for(predicate, timeout: float) -> Report:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = Report.objects.get()
        if predicate(report):
            return report
        time.sleep(0.02)
    raise AssertionError(f"timed out; report is {Report.objects.get().status} at {Report.objects.get().progress} %")


def test_it_finishes_a_report_after_its_worker_process_is_killed(celery_worker_process, make_user):
    rc_name = seed_large_suite(2_000)
    reviewer = make_user("reviewer")
    report = services.report_request(actor=reviewer, release_candidate=rc_name)

    # Kill the pool process that runs the job once it is rendering (after figures and narrative are stored).
    running = _wait_for(lambda r: r.status == "running" and r.progress >= 45, timeout=120)
    assert running.pdf_file.name == "" and running.attempts == 1
    pid = celery_worker_process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1  # one prefork pool process (-c 1)
    os.kill(int(children[0]), signal.SIGKILL)

    done = _wait_for(lambda r: r.status in ("ready", "failed"), timeout=180)
    assert done.status == "ready", done.error_message
    assert done.attempts == 2  # redelivered once, by the broker, to the new pool process
    assert default_storage.exists(done.pdf_file.name) and default_storage.exists(done.docx_file.name)
    folder = f"reports/{report.pk}"
    tokens, _files = default_storage.listdir(folder)
    assert len(tokens) == 1  # the killed delivery's leftovers were removed
    assert AiUsageLog.objects.filter(task_id=f"report:{report.pk}").count() == 1  # narrative reused, not re-bought
    shutil.rmtree(Path(settings.MEDIA_ROOT) / folder, ignore_errors=True)
