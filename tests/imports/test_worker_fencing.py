"""Leases, fencing and cancel with real worker processes and real Redis (the user's report: a batch outlived the
lease, the sweep re-queued the job while the first worker was alive, two workers wrote at once, and the failed job
left 8,000 cases behind).

- a batch slower than the lease: the heartbeat keeps the one live worker's lease, the sweep (run all along, as
  beat would) never re-queues, the job succeeds at the first attempt;
- a worker paused (SIGSTOP: alive, silent) in the middle of a batch loses its lease; a second worker takes the job
  over; the first wakes up and writes nothing more; one effect, no duplicates;
- a running import cancelled through the API: the worker stops at its next batch, the job is rolled back to
  `cancelled`, the database is as before, one audit event.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.db import connection
from django.urls import reverse

from audit.models import AuditEvent
from imports import journal, leases, services
from imports.models import ImportJob
from tests.imports.conftest import case_row, csv_bytes, db_snapshot, purge_queue, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

SLOW = {"CSV_IMPORT_BATCH_ROWS": "50", "CSV_IMPORT_BATCH_DELAY_SECONDS": "1"}


def _file(rows: int) -> bytes:
    return csv_bytes([case_row(n) for n in range(1, rows + 1)])


def _job(pk) -> ImportJob:
    return ImportJob.objects.get(pk=pk)


def _finished(job: ImportJob, timeout: float) -> ImportJob:
    return wait_for(
        lambda: ImportJob.objects.filter(pk=job.pk, status__in=ImportJob.TERMINAL).first(), timeout=timeout, step=0.2
    )


def _assert_one_effect(job: ImportJob, rows: int) -> None:
    database = connection.database
    assert job.status == ImportJob.Status.SUCCEEDED, (job.failure_code, job.failure_message)
    assert database["testCases"].count_documents({}) == rows and len(database["testCases"].distinct("key")) == rows
    assert database["testRuns"].count_documents({}) == rows
    assert len(database["testRuns"].distinct("case_id")) == rows
    assert job.result["cases_created"] == rows and job.result["runs_created"] == rows
    assert database[journal.COLLECTION].count_documents({}) == 0


def _events(job: ImportJob) -> list[str]:
    events = AuditEvent.objects.filter(action="import.csv", resource=f"import:{job.pk}")
    wait_for(events.exists, timeout=30)
    return [event.outcome for event in events]


def test_it_completes_when_every_batch_outlives_the_lease(start_worker, upload, reviewer):
    purge_queue()
    job = upload(_file(150))
    start_worker(CSV_IMPORT_BATCH_ROWS="50", CSV_IMPORT_BATCH_DELAY_SECONDS="3")  # lease: 2 s
    services.import_job_confirm(user=reviewer, job_id=str(job.pk))
    deadline = time.monotonic() + 90
    sweeps = []
    while time.monotonic() < deadline and not _job(job.pk).is_terminal:
        sweeps.append(services.import_jobs_sweep())
        time.sleep(0.3)
    job = _job(job.pk)
    assert len(sweeps) > 20 and not any(counts["requeued"] or counts["failed"] for counts in sweeps)
    assert job.attempts == 1
    _assert_one_effect(job, 150)


def test_it_fences_out_a_worker_that_lost_its_lease_mid_batch(start_worker, upload, reviewer):
    purge_queue()
    rows = 600
    job = upload(_file(rows))
    first = start_worker(**SLOW)
    services.import_job_confirm(user=reviewer, job_id=str(job.pk))
    wait_for(lambda: _job(job.pk).processed >= 100, timeout=60)
    time.sleep(0.5)  # inside the next batch (it holds its transaction open for 1 s)
    os.killpg(first.pid, signal.SIGSTOP)  # alive, but its heartbeat is silent: the lease runs out
    try:
        stale_token = _job(job.pk).lease_token
        wait_for(lambda: services.import_jobs_sweep()["requeued"], timeout=30, step=0.3)
        start_worker(**SLOW)
        wait_for(lambda: (leases.fence_get(job.pk) or {}).get("token", 0) > stale_token, timeout=60)
        stale = {"job_id": job.pk, "seq": {"$lt": 2 * 10_000_000}}  # journal entries of the first attempt
        before = connection.database[journal.COLLECTION].count_documents(stale)
    finally:
        os.killpg(first.pid, signal.SIGCONT)  # it wakes up in the middle of its batch
    time.sleep(3)
    assert not _job(job.pk).is_terminal
    assert connection.database[journal.COLLECTION].count_documents(stale) == before  # it wrote nothing more
    job = _finished(job, timeout=120)
    assert job.attempts == 2
    _assert_one_effect(job, rows)
    assert _events(job) == ["success"]


def test_it_cancels_a_running_import(start_worker, upload, reviewer, client):
    purge_queue()
    client.force_login(reviewer)
    before = db_snapshot()
    job = upload(_file(600))
    start_worker(**SLOW)
    services.import_job_confirm(user=reviewer, job_id=str(job.pk))
    wait_for(lambda: _job(job.pk).processed >= 100, timeout=60)
    response = client.post(reverse("api:import_cancel", args=[job.pk]))
    assert response.status_code == 200 and response.json()["status"] == "rolling_back"
    job = _finished(job, timeout=60)
    assert job.status == ImportJob.Status.CANCELLED, (job.failure_code, job.failure_message)
    assert db_snapshot() == before
    assert connection.database[journal.COLLECTION].count_documents({}) == 0 and leases.fence_get(job.pk) is None
    assert _events(job) == ["success"]
    assert (
        client.get(reverse("api:import_get", args=[job.pk])).json()["failure_message"].endswith("nothing was written.")
    )
