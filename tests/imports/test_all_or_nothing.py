"""All-or-nothing per file: a failure injected at the first, middle and last row of a valid file (between the
case and run writes of a batch, or after a whole batch) leaves the database exactly as before."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from imports import journal
from imports.models import ImportJob
from releases import bulk
from releases.models import QualitySummary, TestRun
from tests.imports.conftest import case_row, csv_bytes, db_snapshot

pytestmark = pytest.mark.django_db

ROWS = 25


class InjectedFailure(RuntimeError):
    pass


def _file() -> bytes:
    # Row 2 updates an existing case and adds a newer run (flipping an existing run's is_latest); others are new,
    # some in a new RC that the import creates.
    rows = [case_row(1, title="Changed title", day=9)]
    rows += [case_row(n, rc="RC-NEW" if n % 2 else "RC-1") for n in range(2, ROWS + 1)]
    return csv_bytes(rows)


@pytest.fixture
def seeded(upload, run_job, settings):
    run_job(upload(csv_bytes([case_row(1, day=1), case_row(100, day=1)])))
    settings.CSV_IMPORT_BATCH_ROWS = 10
    return db_snapshot(), _summaries()


def _summaries():
    return sorted(
        QualitySummary.objects.values_list(
            "release_candidate_id", "suite_id", "dimension", "key", "pass_count", "fail_count", "pending_count"
        )
    )


def _inject(monkeypatch, target: str, failing_row: int):
    original = getattr(bulk, target)

    def failing(rows, *args, **kwargs):
        result = original(rows, *args, **kwargs)
        if any(row.row == failing_row for row in rows):
            raise InjectedFailure(f"injected at row {failing_row}")
        return result

    monkeypatch.setattr(bulk, target, failing)


@pytest.mark.parametrize("target", ["rows_write", "_cases_write"])
@pytest.mark.parametrize("failing_row", [2, 2 + ROWS // 2, ROWS + 1], ids=["first", "middle", "last"])
def test_it_restores_the_database_when_a_row_fails(failing_row, target, seeded, upload, run_job, monkeypatch, settings):
    before, summaries_before = seeded
    settings.CSV_IMPORT_MAX_ATTEMPTS = 1
    job = upload(_file())
    assert job.status == ImportJob.Status.PREVIEWED
    _inject(monkeypatch, target, failing_row)
    job, outcome = run_job(job)
    assert outcome.retry_in is None
    assert job.status == ImportJob.Status.FAILED and job.failure_code == "import_error"
    assert "nothing was written" in job.failure_message
    assert db_snapshot() == before
    assert _summaries() == summaries_before
    assert TestRun.objects.filter(is_latest=True).count() == 2
    assert not list(journal_entries(job))
    failures = AuditEvent.objects.filter(action="import.csv", resource=f"import:{job.pk}")
    assert [event.outcome for event in failures] == ["failure"]


def journal_entries(job):
    from django.db import connection

    return connection.database[journal.COLLECTION].find({"job_id": job.pk})


def test_it_undoes_a_failed_attempt_and_succeeds_on_the_retry(seeded, upload, run_job, monkeypatch, settings):
    before, _ = seeded
    settings.CSV_IMPORT_MAX_ATTEMPTS = 3
    job = upload(_file())
    _inject(monkeypatch, "rows_write", 2 + ROWS // 2)
    job, outcome = run_job(job)
    assert outcome.retry_in == settings.CSV_IMPORT_RETRY_DELAY_SECONDS
    assert job.status == ImportJob.Status.QUEUED and job.attempts == 1
    assert db_snapshot() == before
    monkeypatch.undo()
    from imports.services import import_job_process

    import_job_process(job_id=str(job.pk), worker="second")
    job.refresh_from_db()
    assert job.status == ImportJob.Status.SUCCEEDED and job.attempts == 2
    assert TestRun.objects.count() == 2 + ROWS


def test_it_restores_after_a_crashed_attempt_left_partial_writes(seeded, upload, run_job, monkeypatch, settings):
    """A worker that died mid-file left writes behind; when the job is then failed, they are undone too."""
    from imports import services

    before, _ = seeded
    job = upload(_file())

    class WorkerDied(BaseException):
        pass

    _inject(monkeypatch, "rows_write", 2 + ROWS // 2)
    original = bulk.rows_write

    def dying(rows, *args, **kwargs):
        try:
            return original(rows, *args, **kwargs)
        except InjectedFailure as error:
            raise WorkerDied() from error

    monkeypatch.setattr(bulk, "rows_write", dying)
    with pytest.raises(WorkerDied):
        run_job(job)
    assert TestRun.objects.count() > 2  # partial writes are there
    job.refresh_from_db()
    services._job_fail(job, code="worker_lost", message="test")
    assert db_snapshot() == before
