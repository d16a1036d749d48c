"""QUALITY.md E1 with a real worker process and real Redis: SIGKILL the worker (main process and pool child) at
~10 %, then the next one at ~50 % and the next at ~90 % of one 10,000-row import, start another worker each time,
and the job ends with exactly 10,000 rows, no duplicates (the late-acked message is redelivered; each new attempt
converges by natural key). Plus E2 with two
real workers racing for one job delivered twice."""

from __future__ import annotations

import os
import signal

import pytest
from django.db import connection

from imports import services
from imports.models import ImportJob
from tests.imports.conftest import HEADER, case_row, csv_bytes, purge_queue, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ROWS = 10_000


def _cases_file(rows: int) -> bytes:
    return csv_bytes([case_row(n, rc="")[:9] for n in range(1, rows + 1)], header=HEADER)


@pytest.fixture(scope="module")
def big_file() -> bytes:
    return _cases_file(ROWS)


def _finished(job: ImportJob, timeout: float) -> ImportJob:
    return wait_for(
        lambda: ImportJob.objects.filter(pk=job.pk, status__in=ImportJob.TERMINAL).first(), timeout=timeout, step=0.2
    )


def _assert_exactly_once(job: ImportJob, rows: int) -> None:
    database = connection.database
    assert job.status == ImportJob.Status.SUCCEEDED, (job.failure_code, job.failure_message)
    assert job.processed == rows and job.result["cases_created"] + job.result["cases_unchanged"] == rows
    assert database["testCases"].count_documents({}) == rows
    assert len(database["testCases"].distinct("key")) == rows
    assert database["importJournal"].count_documents({}) == 0


def test_it_imports_exactly_once_when_the_worker_is_killed_at_10_50_and_90_percent(
    start_worker, big_file, upload, reviewer
):
    """One 10,000-row import whose worker is SIGKILLed at ~10 %, again at ~50 % and again at ~90 %: each time a new
    worker takes the redelivered job over from what is stored, and the job ends with exactly 10,000 rows."""
    purge_queue()
    job = upload(big_file)
    assert job.status == ImportJob.Status.PREVIEWED and job.total == ROWS
    attempts = {"CSV_IMPORT_MAX_ATTEMPTS": "5"}  # three kills and the finishing attempt
    worker = start_worker(**attempts)
    services.import_job_confirm(user=reviewer, job_id=str(job.pk))
    for number, kill_at in enumerate((0.10, 0.50, 0.90), start=1):
        threshold = int(ROWS * kill_at)
        wait_for(lambda threshold=threshold: _job_at(job, threshold), timeout=180)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        job.refresh_from_db()
        assert job.status == ImportJob.Status.RUNNING and threshold <= job.processed < ROWS, (kill_at, job.processed)
        assert job.attempts == number
        assert connection.database["testCases"].count_documents({}) < ROWS
        worker = start_worker(**attempts)
    job = _finished(job, timeout=240)
    assert job.attempts == 4
    _assert_exactly_once(job, ROWS)


def _job_at(job: ImportJob, threshold: int) -> bool:
    return ImportJob.objects.filter(pk=job.pk, processed__gte=threshold).exists()


def test_it_has_one_effect_when_two_workers_get_the_same_job(start_worker, upload, reviewer):
    """E2: the job is delivered twice at once (two messages, two worker processes): one import, one audit event."""
    from audit.models import AuditEvent
    from imports.tasks import import_job_run

    purge_queue()
    job = upload(_cases_file(1000))
    start_worker()
    start_worker()
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.QUEUED)
    import_job_run.delay(str(job.pk))
    import_job_run.delay(str(job.pk))
    job = _finished(job, timeout=120)
    assert job.attempts == 1
    _assert_exactly_once(job, 1000)
    # The winner writes the event just after its conditional status update (so only a winner ever writes one).
    events = AuditEvent.objects.filter(action="import.csv", resource=f"import:{job.pk}")
    wait_for(events.exists, timeout=30)
    assert events.count() == 1
