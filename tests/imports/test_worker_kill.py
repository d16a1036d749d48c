"""QUALITY.md E1 with a real worker process and real Redis: SIGKILL the worker (main process and pool child) at
~10 / 50 / 90 % of a 10,000-row import, start another worker, and the job ends with exactly 10,000 cases and
10,000 runs, no duplicates. Plus E2 with two real workers racing for one job delivered twice."""

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
from tests.imports.conftest import case_row, csv_bytes

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
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="module")
def big_file() -> bytes:
    return csv_bytes([case_row(n, day=1 + n % 28) for n in range(1, ROWS + 1)])


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


def _assert_exactly_once(job: ImportJob) -> None:
    database = connection.database
    assert job.status == ImportJob.Status.SUCCEEDED, (job.failure_code, job.failure_message)
    assert database["testCases"].count_documents({}) == ROWS
    assert database["testRuns"].count_documents({}) == ROWS
    assert len(database["testCases"].distinct("key")) == ROWS
    duplicates = list(
        database["testRuns"].aggregate(
            [
                {
                    "$group": {
                        "_id": {"c": "$case_id", "r": "$release_candidate_id", "e": "$executed_at"},
                        "n": {"$sum": 1},
                    }
                },
                {"$match": {"n": {"$gt": 1}}},
            ]
        )
    )
    assert duplicates == []
    assert database["testRuns"].count_documents({"is_latest": True}) == ROWS
    assert database["importJournal"].count_documents({}) == 0


@pytest.mark.parametrize("kill_at", [0.10, 0.50, 0.90], ids=["10pct", "50pct", "90pct"])
def test_it_imports_exactly_once_when_the_worker_is_killed(kill_at, start_worker, big_file, upload, reviewer):
    _purge_queue()
    job = upload(big_file)
    assert job.status == ImportJob.Status.PREVIEWED and job.total == ROWS
    first = start_worker()
    services.import_job_confirm(user=reviewer, job_id=str(job.pk))
    threshold = int(ROWS * kill_at)
    _wait(lambda: ImportJob.objects.filter(pk=job.pk, processed__gte=threshold).exists(), timeout=60)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    job.refresh_from_db()
    assert job.status == ImportJob.Status.RUNNING and threshold <= job.processed < ROWS
    assert connection.database["testRuns"].count_documents({}) < ROWS
    print(
        "DEBUG killed at",
        time.monotonic(),
        ImportJob.objects.filter(pk=job.pk).values("status", "processed", "attempts", "lease_expires_at").first(),
    )
    start_worker()
    print("DEBUG second worker up", time.monotonic())
    for _ in range(30):
        time.sleep(1)
        with app.connection_for_write() as conn:
            client = conn.default_channel.client
            print(
                "DEBUG",
                time.monotonic(),
                client.llen("celery"),
                client.hlen("unacked"),
                client.zrange("unacked_index", 0, -1, withscores=True),
                time.time(),
                ImportJob.objects.filter(pk=job.pk)
                .values("status", "processed", "attempts", "lease_expires_at")
                .first(),
            )
    job = _wait(
        lambda: ImportJob.objects.filter(pk=job.pk, status__in=ImportJob.TERMINAL).first(), timeout=60, step=0.2
    )
    assert job.attempts == 2
    _assert_exactly_once(job)


def test_it_has_one_effect_when_two_workers_get_the_same_job(start_worker, big_file, upload, reviewer):
    """E2: the job is delivered twice at once (two messages, two worker processes): one import, one audit event."""
    from audit.models import AuditEvent
    from imports.tasks import import_job_run

    _purge_queue()
    job = upload(big_file)
    start_worker()
    start_worker()
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.QUEUED)
    import_job_run.delay(str(job.pk))
    import_job_run.delay(str(job.pk))
    job = _wait(
        lambda: ImportJob.objects.filter(pk=job.pk, status__in=ImportJob.TERMINAL).first(), timeout=90, step=0.2
    )
    assert job.attempts == 1
    _assert_exactly_once(job)
    assert AuditEvent.objects.filter(action="import.csv", resource=f"import:{job.pk}").count() == 1
