"""Jobs are data (QUALITY.md E2-E5 in-process): claims and leases, poison jobs, broker outage at submit, stale
jobs, the progress endpoint, confirm/cancel and audit events."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError

from audit.models import AuditEvent
from imports import services
from imports.models import ImportJob
from releases.models import TestCase, TestRun
from tests.imports.conftest import db_snapshot, valid_file

pytestmark = pytest.mark.django_db


def _queued(upload, rows: int = 5) -> ImportJob:
    job = upload(valid_file(rows))
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.QUEUED, queued_at=timezone.now())
    job.refresh_from_db()
    return job


def test_it_processes_a_job_delivered_twice_concurrently_once(upload, settings):
    settings.CSV_IMPORT_BATCH_ROWS = 5
    job = _queued(upload, rows=60)
    barrier = threading.Barrier(2)
    outcomes = []

    def deliver(worker: str) -> None:
        from django.db import connection

        barrier.wait()
        outcomes.append(services.import_job_process(job_id=str(job.pk), worker=worker))
        connection.close()

    threads = [threading.Thread(target=deliver, args=(f"w{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED and job.attempts == 1
    assert len(outcomes) == 2
    assert TestCase.objects.count() == 60 and TestRun.objects.count() == 60
    assert AuditEvent.objects.filter(action="import.csv", resource=f"import:{job.pk}").count() == 1
    # A late redelivery of a finished job does nothing.
    assert services.import_job_process(job_id=str(job.pk), worker="late").retry_in is None
    job.refresh_from_db()
    assert job.attempts == 1


def test_it_asks_a_second_delivery_to_retry_while_the_lease_is_held(upload):
    job = _queued(upload)
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJob.Status.RUNNING, lease_owner="other", lease_expires_at=timezone.now() + timedelta(seconds=30)
    )
    outcome = services.import_job_process(job_id=str(job.pk), worker="second")
    assert 29 <= outcome.retry_in <= 31
    assert TestCase.objects.count() == 0


class WorkerDied(BaseException):
    """Stands in for a worker process that dies mid-job (SIGKILL, OOM): nothing after it runs."""


def test_it_fails_a_poison_job_after_the_maximum_attempts(upload, monkeypatch):
    """E3: a job that kills its worker every time is redelivered, then failed, never looping."""
    job = _queued(upload)
    before = db_snapshot()

    def die(job, **kwargs):
        services.bulk.rows_write(
            list(services.csvformat.iter_records(lambda: services.chunks_open(job.pk)))[:2],
            state=services.bulk.BulkState(),
            journal=services.journal.UndoJournal(job_id=job.pk, attempt=job.attempts),
        )
        raise WorkerDied()

    monkeypatch.setattr(services, "_job_write", die)
    now = timezone.now()
    for attempt in range(1, settings.CSV_IMPORT_MAX_ATTEMPTS + 1):
        with time_machine.travel(now + timedelta(minutes=5 * attempt), tick=False), pytest.raises(WorkerDied):
            services.import_job_process(job_id=str(job.pk), worker=f"w{attempt}")
    with time_machine.travel(now + timedelta(hours=1), tick=False):
        outcome = services.import_job_process(job_id=str(job.pk), worker="last")
    job.refresh_from_db()
    assert outcome.retry_in is None
    assert job.status == ImportJob.Status.FAILED and job.failure_code == "too_many_attempts"
    assert job.attempts == settings.CSV_IMPORT_MAX_ATTEMPTS + 1
    assert db_snapshot() == before
    # Redelivered again: still failed, no further attempt.
    services.import_job_process(job_id=str(job.pk), worker="again")
    job.refresh_from_db()
    assert job.attempts == settings.CSV_IMPORT_MAX_ATTEMPTS + 1


def test_it_fails_a_job_that_keeps_raising_after_the_maximum_attempts(upload, monkeypatch):
    job = _queued(upload)

    def broken(*args, **kwargs):
        raise ValueError("bug")

    monkeypatch.setattr(services.bulk, "rows_write", broken)
    outcomes = [services.import_job_process(job_id=str(job.pk), worker=f"w{n}") for n in range(5)]
    job.refresh_from_db()
    assert [outcome.retry_in is not None for outcome in outcomes] == [True, True, False, False, False]
    assert job.status == ImportJob.Status.FAILED and job.failure_code == "import_error"
    assert job.attempts == settings.CSV_IMPORT_MAX_ATTEMPTS
    assert TestCase.objects.count() == 0


def test_it_reports_a_broker_outage_at_submit_and_keeps_the_job(reviewer_client, upload, reviewer, monkeypatch):
    """E4: the broker is down: a clear 503, the job stays `previewed` (never accepted-then-lost); confirm again
    later works."""
    from imports.tasks import import_job_run

    job = upload(valid_file(2))

    def down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(import_job_run, "apply_async", down)
    response = reviewer_client.post(reverse("api:import_confirm", args=[job.pk]))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "broker_unavailable"
    job.refresh_from_db()
    assert job.status == ImportJob.Status.PREVIEWED and job.failure_code == "broker_unavailable"
    sent = []
    monkeypatch.setattr(import_job_run, "apply_async", lambda *args, **kwargs: sent.append(kwargs["args"]))
    response = reviewer_client.post(reverse("api:import_confirm", args=[job.pk]))
    assert response.status_code == 202 and response.json()["status"] == "queued"
    assert sent == [[str(job.pk)]]


def test_it_reports_a_real_unreachable_broker_at_submit(upload, reviewer, monkeypatch):
    """The publish goes to a Redis port where nothing listens (a real connection refusal)."""
    from imports.tasks import import_job_run
    from report_platform.celery import app

    job = upload(valid_file(2))
    real_apply_async = import_job_run.apply_async

    def via_dead_broker(*args, **kwargs):
        with app.connection_for_write("redis://127.0.0.1:1/0") as dead:
            return real_apply_async(*args, connection=dead, **kwargs)

    monkeypatch.setattr(import_job_run, "apply_async", via_dead_broker)
    with pytest.raises(services.ServiceUnavailable) as raised:
        services.import_job_confirm(user=reviewer, job_id=str(job.pk))
    assert raised.value.code == "broker_unavailable"
    job.refresh_from_db()
    assert job.status == ImportJob.Status.PREVIEWED


def test_it_requeues_or_fails_stale_jobs(upload, monkeypatch):
    """E5: a running job whose worker died is queued again (or failed after the last attempt); a queued job whose
    message was lost is enqueued again; the management command and the beat schedule run the sweep."""
    sent = []
    monkeypatch.setattr(services, "import_job_enqueue", lambda job_id: sent.append(str(job_id)))
    now = timezone.now()
    dead = _queued(upload, rows=2)
    ImportJob.objects.filter(pk=dead.pk).update(
        status=ImportJob.Status.RUNNING, attempts=1, lease_owner="gone", lease_expires_at=now - timedelta(seconds=1)
    )
    exhausted = upload(valid_file(3))
    ImportJob.objects.filter(pk=exhausted.pk).update(
        status=ImportJob.Status.RUNNING,
        attempts=settings.CSV_IMPORT_MAX_ATTEMPTS,
        lease_owner="gone",
        lease_expires_at=now - timedelta(seconds=1),
    )
    lost = upload(valid_file(4))
    ImportJob.objects.filter(pk=lost.pk).update(
        status=ImportJob.Status.QUEUED, queued_at=now - timedelta(seconds=settings.CSV_IMPORT_QUEUED_STALE_SECONDS + 1)
    )
    fresh = upload(valid_file(5))
    ImportJob.objects.filter(pk=fresh.pk).update(status=ImportJob.Status.QUEUED, queued_at=now)
    counts = services.import_jobs_sweep(now=now)
    assert counts == {"requeued": 2, "failed": 1, "rolled_back": 0, "journals": 0}
    assert sorted(sent) == sorted([str(dead.pk), str(lost.pk)])
    statuses = dict(ImportJob.objects.values_list("pk", "status"))
    assert statuses[dead.pk] == "queued" and statuses[lost.pk] == "queued" and statuses[fresh.pk] == "queued"
    assert statuses[exhausted.pk] == "failed"
    assert ImportJob.objects.get(pk=exhausted.pk).failure_code == "worker_lost"
    sent.clear()
    call_command("import_jobs_sweep", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert sent == []  # nothing stale any more
    assert settings.CELERY_BEAT_SCHEDULE["imports-sweep-stale-jobs"]["task"] == "imports.tasks.import_jobs_sweep"


def test_it_shows_progress_through_the_api(reviewer_client, upload, run_job):
    job = upload(valid_file(4))
    body = reviewer_client.get(reverse("api:import_get", args=[job.pk])).json()
    assert body["status"] == "previewed" and body["total"] == 4 and body["processed"] == 0
    assert body["progress_url"] == reverse("api:import_get", args=[job.pk])
    run_job(job)
    body = reviewer_client.get(body["progress_url"]).json()
    assert {key: body[key] for key in ("status", "processed", "total", "percent", "error_count", "errors")} == {
        "status": "succeeded",
        "processed": 4,
        "total": 4,
        "percent": 100,
        "error_count": 0,
        "errors": [],
    }
    assert body["rate"] > 0 and body["eta_seconds"] == 0 and body["finished_at"]


def test_it_queues_at_once_without_dry_run(reviewer_client, monkeypatch):
    from django.core.files.uploadedfile import SimpleUploadedFile

    sent = []
    monkeypatch.setattr(services, "import_job_enqueue", lambda job_id: sent.append(str(job_id)))
    response = reviewer_client.post("/api/v1/imports/csv", {"file": SimpleUploadedFile("a.csv", valid_file(2))})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and sent == [body["id"]]
    # The same file again while that job waits: the same job, not a second one.
    again = reviewer_client.post("/api/v1/imports/csv", {"file": SimpleUploadedFile("a.csv", valid_file(2))})
    assert again.json()["id"] == body["id"] and ImportJob.objects.count() == 1


def test_it_hides_other_reviewers_jobs_and_bad_ids(client, make_user, upload):
    job = upload(valid_file(2))
    other = make_user("reviewer")
    client.force_login(other)
    assert client.get(reverse("api:import_get", args=[job.pk])).status_code == 404
    assert client.get(reverse("api:import_get", args=["not-an-id"])).status_code == 404
    assert client.post(reverse("api:import_confirm", args=[job.pk])).status_code == 404
    admin = make_user("admin")
    client.force_login(admin)
    assert client.get(reverse("api:import_get", args=[job.pk])).status_code == 200


def test_it_refuses_viewers(viewer_client, upload):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = viewer_client.post("/api/v1/imports/csv", {"file": SimpleUploadedFile("a.csv", valid_file(2))})
    assert response.status_code == 403
    assert ImportJob.objects.count() == 0


def test_it_cancels_a_previewed_job(reviewer_client, upload):
    job = upload(valid_file(2))
    response = reviewer_client.post(reverse("api:import_cancel", args=[job.pk]))
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert reviewer_client.post(reverse("api:import_confirm", args=[job.pk])).status_code == 409
    assert TestCase.objects.count() == 0
    assert AuditEvent.objects.filter(action="import.csv", resource=f"import:{job.pk}").count() == 1
