"""QUALITY.md E1 with a real worker process and real Redis: SIGKILL the worker (main process and pool child) at
~10 / 50 / 90 % of a 10,000-row import, start another worker, and the job ends with exactly 10,000 rows, no
duplicates (the late-acked message is redelivered; the new attempt converges by natural key). Plus E2 with two
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


@pytest.mark.parametrize("kill_at", [0.10, 0.50, 0.90], ids=["10pct", "50pct", "90pct"])
def test_it_imports_exactly_once_when_the_worker_is_killed(kill_at, start_worker, big_file, upload, reviewer):
    purge_queue()
    job = upload(big_file)
    assert job.status == ImportJob.Status.PREVIEWED and job.total == ROWS
    first = start_worker()
    services.import_job_confirm(user=reviewer, job_id=str(job.pk))
    threshold = int(ROWS * kill_at)
    wait_for(lambda: ImportJob.objects.filter(pk=job.pk, processed__gte=threshold).exists(), timeout=180)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    job.refresh_from_db()
    assert job.status == ImportJob.Status.RUNNING and threshold <= job.processed < ROWS
    assert connection.database["testCases"].count_documents({}) < ROWS
    start_worker()
    job = _finished(job, timeout=240)
    assert job.attempts == 2
    _assert_exactly_once(job, ROWS)


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
