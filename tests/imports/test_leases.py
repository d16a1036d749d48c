"""Leases, heartbeats, fencing, cancel and resumable rollback, in-process (real server, threads as workers).

The same behaviours with real worker processes are in test_worker_fencing.py."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from imports import journal, leases, services
from imports.models import ImportJob
from releases import bulk
from releases.models import TestCase, TestRun
from tests.imports.conftest import case_row, csv_bytes, db_snapshot, wait_for

pytestmark = pytest.mark.django_db

ROWS = 40


class WorkerDied(BaseException):
    """Stands in for a worker process that dies (SIGKILL, OOM): nothing after it runs."""


def _file(rows: int = ROWS) -> bytes:
    return csv_bytes([case_row(n, rc="RC-NEW" if n % 2 else "RC-1") for n in range(1, rows + 1)])


@pytest.fixture
def seeded(upload, run_job, settings):
    run_job(upload(csv_bytes([case_row(1000, day=1), case_row(1001, day=1)])))
    settings.CSV_IMPORT_BATCH_ROWS = 10
    settings.CSV_IMPORT_PACE_FRACTION = 0
    return db_snapshot()


def _queued(upload, data: bytes) -> ImportJob:
    job = upload(data)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.QUEUED, queued_at=timezone.now())
    job.refresh_from_db()
    return job


def _events(job: ImportJob) -> list[str]:
    return [event.outcome for event in AuditEvent.objects.filter(action="import.csv", resource=f"import:{job.pk}")]


def test_it_refuses_a_batch_whose_lease_was_lost_mid_batch(seeded, upload, monkeypatch):
    """Worker A is inside its second batch's transaction when B takes the job over (A's lease looked expired):
    A's batch cannot commit, B resumes after A's committed batch, and the job converges exactly once."""
    job = _queued(upload, _file())
    in_batch, resume = threading.Event(), threading.Event()
    original_rows_write, original_batch_write = bulk.rows_write, services._batch_write
    calls, refused = [], []

    def rows_write(rows, **kwargs):
        result = original_rows_write(rows, **kwargs)
        if threading.current_thread().name == "worker-a":
            calls.append(len(rows))
            if len(calls) == 2:
                in_batch.set()
                assert resume.wait(30)
        return result

    def batch_write(*args, **kwargs):
        try:
            return original_batch_write(*args, **kwargs)
        except leases.LeaseLost:
            refused.append(threading.current_thread().name)
            raise

    monkeypatch.setattr(bulk, "rows_write", rows_write)
    monkeypatch.setattr(services, "_batch_write", batch_write)

    def work(worker: str) -> None:
        services.import_job_process(job_id=str(job.pk), worker=worker)
        connection.close()

    worker_a = threading.Thread(target=work, args=("a",), name="worker-a")
    worker_a.start()
    assert in_batch.wait(30)
    token_a = ImportJob.objects.get(pk=job.pk).lease_token
    # A is alive but its lease is taken (as after a pause longer than the lease).
    ImportJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    worker_b = threading.Thread(target=work, args=("b",), name="worker-b")
    worker_b.start()
    wait_for(lambda: (leases.fence_get(job.pk) or {}).get("token", 0) > token_a, timeout=30)
    resume.set()
    worker_a.join(60)
    worker_b.join(60)
    job.refresh_from_db()
    assert refused == ["worker-a"]
    assert job.status == ImportJob.Status.SUCCEEDED and job.attempts == 2
    assert TestCase.objects.count() == ROWS + 2 and TestRun.objects.count() == ROWS + 2
    assert len(TestRun.objects.values_list("case_id", flat=True).distinct()) == ROWS + 2
    assert job.result["cases_created"] == ROWS and job.result["runs_created"] == ROWS
    assert _events(job) == ["success"]


def test_it_renews_the_lease_while_a_batch_outlives_it(seeded, upload, settings):
    """A batch longer than the lease: the heartbeat keeps the lease alive, so the sweep never takes the job."""
    settings.CSV_IMPORT_LEASE_SECONDS = 1
    settings.CSV_IMPORT_BATCH_DELAY_SECONDS = 1.5
    job = _queued(upload, _file(20))
    sweeps = []
    done = threading.Event()

    def sweeper() -> None:
        while not done.is_set():
            sweeps.append(services.import_jobs_sweep())
            done.wait(0.2)
        connection.close()

    thread = threading.Thread(target=sweeper)
    thread.start()
    try:
        services.import_job_process(job_id=str(job.pk), worker="slow")
    finally:
        done.set()
        thread.join(30)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED and job.attempts == 1
    assert len(sweeps) > 5 and all(counts["requeued"] == 0 and counts["failed"] == 0 for counts in sweeps)
    assert TestCase.objects.count() == 22


def test_it_finishes_a_rollback_killed_half_way(seeded, upload, run_job, monkeypatch, reviewer):
    """The worker dies in the middle of an import, the import is cancelled, the rollback's worker dies half-way:
    the sweep finishes the rollback; nothing is left behind and one audit event says `cancelled`."""
    before = seeded
    job = upload(_file())
    original_rows_write = bulk.rows_write

    def dying_write(rows, **kwargs):
        original_rows_write(rows, **kwargs)
        if any(row.row > 31 for row in rows):  # file rows: the header is row 1
            raise WorkerDied()

    monkeypatch.setattr(bulk, "rows_write", dying_write)
    with pytest.raises(WorkerDied):
        run_job(job)
    monkeypatch.setattr(bulk, "rows_write", original_rows_write)
    assert TestCase.objects.count() == 2 + 30  # three batches committed, the fourth died with its transaction
    assert journal.journal_count(job.pk) > 2

    job = services.import_job_cancel(user=reviewer, job_id=str(job.pk))
    assert job.status == ImportJob.Status.ROLLING_BACK
    original_restore = bulk.documents_restore
    restored = []

    def dying_restore(*args, **kwargs):
        if len(restored) == 2:
            raise WorkerDied()
        restored.append(args)
        return original_restore(*args, **kwargs)

    monkeypatch.setattr(bulk, "documents_restore", dying_restore)
    with pytest.raises(WorkerDied):
        services.import_job_process(job_id=str(job.pk), worker="rollback-worker")
    monkeypatch.setattr(bulk, "documents_restore", original_restore)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.ROLLING_BACK and journal.journal_count(job.pk) > 0
    assert db_snapshot() != before
    # While its lease lives, the sweep leaves the rollback alone; after it expired, the sweep finishes it.
    assert services.import_jobs_sweep()["rolled_back"] == 0
    with time_machine.travel(timezone.now() + timedelta(minutes=5), tick=False):
        assert services.import_jobs_sweep()["rolled_back"] == 1
    job.refresh_from_db()
    assert job.status == ImportJob.Status.CANCELLED
    assert "nothing was written" in job.failure_message
    assert db_snapshot() == before
    assert journal.journal_count(job.pk) == 0 and leases.fence_get(job.pk) is None
    assert _events(job) == ["success"]
    assert services.import_jobs_sweep()["rolled_back"] == 0


def test_it_cancels_a_queued_import_through_the_api(reviewer_client, upload, monkeypatch):
    sent = []
    monkeypatch.setattr(services, "import_job_enqueue", lambda job_id: sent.append(str(job_id)))
    job = _queued(upload, _file(5))
    response = reviewer_client.post(reverse("api:import_cancel", args=[job.pk]))
    assert response.status_code == 200 and response.json()["status"] == "rolling_back"
    assert sent == [str(job.pk)]
    services.import_job_process(job_id=str(job.pk), worker="w")
    job.refresh_from_db()
    assert job.status == ImportJob.Status.CANCELLED and TestCase.objects.count() == 0
    assert _events(job) == ["success"]
    # Cancelling again is harmless; confirming a cancelled job is refused.
    assert reviewer_client.post(reverse("api:import_cancel", args=[job.pk])).json()["status"] == "cancelled"
    assert reviewer_client.post(reverse("api:import_confirm", args=[job.pk])).status_code == 409


def test_it_lets_only_the_owner_or_an_admin_cancel(client, make_user, upload, monkeypatch):
    monkeypatch.setattr(services, "import_job_enqueue", lambda job_id: None)
    job = _queued(upload, _file(5))
    client.force_login(make_user("reviewer"))
    assert client.post(reverse("api:import_cancel", args=[job.pk])).status_code == 404
    assert ImportJob.objects.get(pk=job.pk).status == ImportJob.Status.QUEUED
    client.force_login(make_user("admin"))
    assert client.post(reverse("api:import_cancel", args=[job.pk])).json()["status"] == "rolling_back"


def test_it_shows_a_cancel_button_while_running(reviewer_client, upload):
    job = _queued(upload, _file(5))
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING)
    page = reviewer_client.get(reverse("imports:import_detail", args=[job.pk])).content.decode()
    assert 'id="import-cancel"' in page and reverse("imports:import_cancel", args=[job.pk]) in page


def test_it_reports_an_honest_rate_for_a_resumed_attempt(seeded, upload, monkeypatch):
    """The rate counts only what this attempt wrote (a resumed attempt does not claim the rows it skipped)."""
    job = _queued(upload, _file())
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING, attempts=1, lease_token=1)
    leases.fence_take(job.pk, 1)
    connection.database[leases.FENCES].update_one({"_id": job.pk}, {"$set": {"rows_done": 30}})
    rates = []
    original = services._Progress.add

    def add(self, rows, seconds):
        rates.append(rows)
        return original(self, rows, seconds)

    monkeypatch.setattr(services._Progress, "add", add)
    ImportJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    services.import_job_process(job_id=str(job.pk), worker="resumed")
    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED
    assert rates == [10]  # one batch written by this attempt; rows 1-30 were (said to be) committed before
