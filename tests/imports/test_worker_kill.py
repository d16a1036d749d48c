"""QUALITY.md E1 with a real worker process and real Redis: SIGKILL the worker (main process and pool child) at
~10 / 50 / 90 % of a 10,000-row import, start another worker, and the job ends with exactly 10,000 rows, no
duplicates (the late-acked message is redelivered; the new attempt converges by natural key). Plus E2 with two
real workers racing for one job delivered twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings
from django.db import connection

from imports import services
from imports.models import ImportJob
from report_platform.celery import app
from tests.imports.conftest import HEADER, case_row, csv_bytes

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ROWS = 10_000
# Short lease and visibility timeout so a killed worker's job is taken over within seconds.
WORKER_ENV = {
    "CSV_IMPORT_LEASE_SECONDS": "2",
    "CELERY_VISIBILITY_TIMEOUT": "3",
    "CELERY_UNACKED_RESTORE_INTERVAL": "1",
    "CSV_IMPORT_BATCH_ROWS": "250",
    "CSV_IMPORT_RETRY_DELAY_SECONDS": "1",
}


@pytest.fixture
def start_worker(transactional_db):
    processes: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        name = f"imports-{uuid.uuid4().hex[:8]}@%h"
        env = {
            **os.environ,
            **WORKER_ENV,
            "DJANGO_SETTINGS_MODULE": "report_platform.settings.test",
            "MONGODB_NAME": connection.settings_dict["NAME"],
        }
        command = [sys.executable, "-m", "celery", "-A", "report_platform", "worker", "-l", "warning", "-c", "1"]
        command += ["-P", "prefork", "--without-heartbeat", "--without-gossip", "--without-mingle", "-n", name]
        process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, start_new_session=True)
        processes.append(process)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if app.control.ping(timeout=0.5):
                return process
            if process.poll() is not None:
                raise RuntimeError(f"worker exited with {process.returncode}")
        raise RuntimeError("worker did not answer a ping within 30 s")

    yield start
    # The test is over: no warm shutdown (it would wait for retries still queued); the next test purges the queue.
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _cases_file(rows: int) -> bytes:
    return csv_bytes([case_row(n, rc="")[:9] for n in range(1, rows + 1)], header=HEADER)


@pytest.fixture(scope="module")
def big_file() -> bytes:
    return _cases_file(ROWS)


def _purge_queue() -> None:
    with app.connection_for_write() as conn:
        conn.default_channel.client.delete("celery", "unacked", "unacked_index")


def _wait(predicate, *, timeout: float, step: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out")


def _finished(job: ImportJob, timeout: float) -> ImportJob:
    return _wait(
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
    _purge_queue()
    job = upload(big_file)
    assert job.status == ImportJob.Status.PREVIEWED and job.total == ROWS
    first = start_worker()
    services.import_job_confirm(user=reviewer, job_id=str(job.pk))
    threshold = int(ROWS * kill_at)
    _wait(lambda: ImportJob.objects.filter(pk=job.pk, processed__gte=threshold).exists(), timeout=180)
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

    _purge_queue()
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
    _wait(events.exists, timeout=30)
    assert events.count() == 1
