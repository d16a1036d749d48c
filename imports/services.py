"""Writes of the imports app: upload + validate (preview), confirm, cancel, the worker's processing, the stale-job
sweep, and the CSV exports. Every import ends with exactly one audit event ("import.csv") when the job reaches a
terminal state; every export writes one ("export.csv") when it starts.

All-or-nothing: a file is validated completely before anything is written; while writing, every change is first
recorded in the job's undo journal (imports/journal.py), so a failure at any row restores the database exactly.
Redelivery: jobs are claimed with a lease (single-document conditional update); a second delivery of a job that
is being processed waits for the lease, a dead worker's lease expires and the next attempt converges on the same
result because writes are keyed by natural keys.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

from bson import Binary, ObjectId
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import connection
from django.db.models import F, Q
from django.http import HttpRequest
from django.utils import timezone
from kombu.exceptions import OperationalError

from accounts.models import User
from accounts.permissions import require_role
from audit.services import audit_record
from imports import csvformat, journal
from imports.metrics import import_failures_total, import_rows_total
from imports.models import ImportJob
from imports.selectors import import_job_get_for_user
from releases import bulk
from releases.models import ReleaseCandidate
from report_platform.errors import Conflict, NotFound, PayloadTooLarge, ServiceUnavailable, ValidationFailed

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
CHUNKS = "importChunks"
Status = ImportJob.Status
_UNSAFE_FILENAME = re.compile(r"[^\w.\- ()\[\]]+")


class LeaseLost(Exception):
    """Another worker took the job over (this one was too slow to renew its lease): stop without undoing."""


@dataclass
class ProcessOutcome:
    retry_in: float | None = None  # seconds: the task should run again later


def filename_clean(name: str) -> str:
    """A display-only file name: no directories, control or odd characters, at most 120 characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = _UNSAFE_FILENAME.sub("_", base).strip(" ._")
    return (base or "upload.csv")[-120:]


def chunks_open(job_id) -> Iterator[bytes]:
    """The stored file of a job, streamed one chunk (<= 1 MiB) at a time."""
    cursor = connection.database[CHUNKS].find({"job_id": ObjectId(str(job_id))}, {"data": 1}).sort("index", 1)
    for document in cursor.batch_size(2):
        yield bytes(document["data"])


def _chunks_store(job: ImportJob, pieces: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    buffer = bytearray()
    index = 0
    collection = connection.database[CHUNKS]
    for piece in pieces:
        digest.update(piece)
        buffer.extend(piece)
        while len(buffer) >= CHUNK_BYTES:
            collection.insert_one({"job_id": job.pk, "index": index, "data": Binary(bytes(buffer[:CHUNK_BYTES]))})
            del buffer[:CHUNK_BYTES]
            index += 1
    if buffer:
        collection.insert_one({"job_id": job.pk, "index": index, "data": Binary(bytes(buffer))})
    return digest.hexdigest()


def _chunks_delete(job_id) -> None:
    connection.database[CHUNKS].delete_many({"job_id": ObjectId(str(job_id))})


def _audit(job: ImportJob, *, outcome: str, request: HttpRequest | None = None) -> None:
    audit_record(
        action="import.csv",
        actor=job.created_by,
        resource=f"import:{job.pk}",
        outcome=outcome,
        request=request,
        metadata={
            "status": job.status,
            "filename": job.filename,
            "sha256": job.file_sha256,
            "rows": job.total,
            "errors": job.error_count,
            "failure": job.failure_code,
            "result": job.result,
        },
    )


def _users_by_email(emails: Iterable[str]) -> dict[str, ObjectId]:
    wanted = sorted({email.lower() for email in emails if email})
    found: dict[str, ObjectId] = {}
    for start in range(0, len(wanted), 100):
        query = Q()
        for email in wanted[start : start + 100]:
            query |= Q(email__iexact=email)
        for user_id, email in User.objects.filter(query).values_list("pk", "email"):
            found[email.lower()] = user_id
    return found


def import_job_create(*, user, upload: UploadedFile, dry_run: bool, request: HttpRequest | None = None) -> ImportJob:
    """Store an uploaded CSV and validate it completely (nothing is written to cases or runs).

    The job ends `invalid` (with every error) or `previewed`; unless `dry_run`, a valid file is confirmed and
    enqueued at once. Uploading a file identical to one of the user's jobs that is still waiting or running
    returns that job instead of a second one. Raises PayloadTooLarge before reading a file over the limit.
    """
    require_role(user, "reviewer")
    limit = settings.CSV_MAX_UPLOAD_BYTES
    if upload.size is None or upload.size > limit:
        import_failures_total.labels(code="file_too_large").inc()
        raise PayloadTooLarge(
            f"The file is larger than the limit of {limit // (1024 * 1024)} MiB ({limit} bytes).",
            code="file_too_large",
        )
    job = ImportJob.objects.create(
        created_by=user, filename=filename_clean(upload.name or ""), file_size=upload.size, dry_run=dry_run
    )
    upload.seek(0)
    job.file_sha256 = _chunks_store(job, upload.chunks(CHUNK_BYTES))
    duplicate = (
        ImportJob.objects.filter(
            created_by=user, file_sha256=job.file_sha256, status__in=[Status.PREVIEWED, Status.QUEUED, Status.RUNNING]
        )
        .exclude(pk=job.pk)
        .first()
    )
    if duplicate is not None:
        _chunks_delete(job.pk)
        job.delete()
        if duplicate.status == Status.PREVIEWED and not dry_run:
            return import_job_confirm(user=user, job_id=str(duplicate.pk), request=request)
        return duplicate
    report = csvformat.validate(
        lambda: chunks_open(job.pk),
        max_rows=settings.CSV_MAX_ROWS,
        max_errors=settings.CSV_MAX_ERRORS_KEPT,
        preview_rows=settings.CSV_PREVIEW_ROWS,
    )
    if report.executed_by:
        known = _users_by_email(report.executed_by)
        for email, row in report.executed_by.items():
            if email not in known:
                report.add(
                    csvformat.row_error(
                        "unknown_user", f"No user has the e-mail {email[:80]!r}.", row=row, column="executed_by"
                    ),
                    keep=settings.CSV_MAX_ERRORS_KEPT,
                )
    job.delimiter = report.delimiter
    job.mapping = report.mapping
    job.preview = report.preview
    job.errors = sorted(report.errors, key=lambda error: error["row"] or 0)
    job.error_count = report.error_count
    job.total = report.total
    job.has_runs = report.has_runs
    if report.error_count:
        job.status = Status.INVALID
        job.finished_at = timezone.now()
        for code in {error["code"] for error in report.errors}:
            import_failures_total.labels(code=code).inc()
        _chunks_delete(job.pk)
    job.save()
    if job.status == Status.INVALID:
        _audit(job, outcome="failure", request=request)
    elif not dry_run:
        job = import_job_confirm(user=user, job_id=str(job.pk), request=request)
    return job


def import_job_enqueue(job_id) -> None:
    """Send the job to the workers. Raises kombu's OperationalError when the broker cannot take it."""
    from imports.tasks import import_job_run

    import_job_run.apply_async(
        args=[str(job_id)],
        retry=True,
        retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
    )


def import_job_confirm(*, user, job_id: str, request: HttpRequest | None = None) -> ImportJob:
    """Queue a previewed job. If the broker is down the job stays `previewed` (it can be confirmed again) and
    ServiceUnavailable is raised: a job is never reported accepted and then lost."""
    job = import_job_get_for_user(user=user, job_id=job_id)
    now = timezone.now()
    queued = ImportJob.objects.filter(pk=job.pk, status=Status.PREVIEWED).update(
        status=Status.QUEUED, queued_at=now, failure_code="", failure_message=""
    )
    if not queued:
        if job.status in (Status.QUEUED, Status.RUNNING, Status.SUCCEEDED):
            return job  # confirming twice is harmless
        raise Conflict(f"This import is {job.get_status_display().lower()} and cannot be started.", code="import_state")
    try:
        import_job_enqueue(job.pk)
    except (OperationalError, ConnectionError, OSError) as error:
        logger.warning("import job %s could not be enqueued: %s", job.pk, error)
        ImportJob.objects.filter(pk=job.pk, status=Status.QUEUED).update(
            status=Status.PREVIEWED,
            queued_at=None,
            failure_code="broker_unavailable",
            failure_message="The job queue was unavailable; nothing was imported. Confirm again to retry.",
        )
        import_failures_total.labels(code="broker_unavailable").inc()
        raise ServiceUnavailable(
            "The job queue is unavailable, so the import was not started. Nothing was written; try again shortly.",
            code="broker_unavailable",
        ) from error
    job.refresh_from_db()
    return job


def import_job_cancel(*, user, job_id: str, request: HttpRequest | None = None) -> ImportJob:
    """Cancel a job that waits for confirmation; its stored file is dropped."""
    job = import_job_get_for_user(user=user, job_id=job_id)
    cancelled = ImportJob.objects.filter(pk=job.pk, status=Status.PREVIEWED).update(
        status=Status.CANCELLED, finished_at=timezone.now()
    )
    if not cancelled:
        if job.status == Status.CANCELLED:
            return job
        raise Conflict(
            f"This import is {job.get_status_display().lower()} and cannot be cancelled.", code="import_state"
        )
    _chunks_delete(job.pk)
    job.refresh_from_db()
    _audit(job, outcome="success", request=request)
    return job


def _undo(job: ImportJob) -> None:
    """Restore the database as it was before the job (idempotent) and rebuild the touched RCs' summaries."""
    from releases.services import summaries_rebuild

    release_candidate_ids = journal.journal_release_candidate_ids(job.pk)
    journal.journal_undo(job.pk)
    if release_candidate_ids:
        summaries_rebuild(release_candidate_ids=sorted(release_candidate_ids))


def _job_fail(job: ImportJob, *, code: str, message: str, worker: str | None = None) -> None:
    _undo(job)
    jobs = ImportJob.objects.filter(pk=job.pk, status__in=[Status.QUEUED, Status.RUNNING])
    if worker is not None:
        jobs = jobs.filter(lease_owner=worker)
    failed = jobs.update(
        updated_at=timezone.now(),
        status=Status.FAILED,
        failure_code=code,
        failure_message=message[:2000],
        finished_at=timezone.now(),
        lease_owner="",
        lease_expires_at=None,
        eta_seconds=None,
    )
    if failed:
        _chunks_delete(job.pk)
        job.refresh_from_db()
        import_failures_total.labels(code=code).inc()
        _audit(job, outcome="failure")


def _file_digest(job_id) -> str:
    digest = hashlib.sha256()
    for chunk in chunks_open(job_id):
        digest.update(chunk)
    return digest.hexdigest()


def _job_write(job: ImportJob, *, worker: str) -> None:
    from releases.services import summaries_rebuild

    undo_journal = journal.UndoJournal(job_id=job.pk, attempt=job.attempts)
    state = bulk.BulkState(actor_id=job.created_by_id)
    batch_rows = max(1, settings.CSV_IMPORT_BATCH_ROWS)
    lease = timedelta(seconds=settings.CSV_IMPORT_LEASE_SECONDS)
    started = time.monotonic()
    processed = 0
    batch: list[csvformat.Record] = []

    def flush() -> None:
        nonlocal processed
        emails = {record.executed_by for record in batch if record.executed_by} - state.user_ids.keys()
        if emails:
            state.user_ids.update(_users_by_email(emails))
        bulk.rows_write(batch, state=state, journal=undo_journal)
        processed += len(batch)
        runs = sum(1 for record in batch if record.rc)
        import_rows_total.labels(kind="cases").inc(len(batch) - runs)
        import_rows_total.labels(kind="runs").inc(runs)
        batch.clear()
        elapsed = max(time.monotonic() - started, 1e-6)
        rate = processed / elapsed
        renewed = ImportJob.objects.filter(pk=job.pk, lease_owner=worker, status=Status.RUNNING).update(
            updated_at=timezone.now(),
            processed=min(processed, job.total),
            rate=round(rate, 1),
            eta_seconds=round(max(job.total - processed, 0) / rate, 1),
            lease_expires_at=timezone.now() + lease,
        )
        if not renewed:
            raise LeaseLost()

    for record in csvformat.iter_records(lambda: chunks_open(job.pk)):
        batch.append(record)
        if len(batch) >= batch_rows:
            flush()
    if batch:
        flush()
    if state.release_candidate_ids:
        summaries_rebuild(release_candidate_ids=sorted(state.release_candidate_ids.values()))
    finished = ImportJob.objects.filter(pk=job.pk, lease_owner=worker, status=Status.RUNNING).update(
        updated_at=timezone.now(),
        status=Status.SUCCEEDED,
        processed=job.total,
        result=state.counts,
        eta_seconds=0.0,
        finished_at=timezone.now(),
        lease_owner="",
        lease_expires_at=None,
        failure_code="",
        failure_message="",
    )
    if not finished:
        raise LeaseLost()
    journal.journal_discard(job.pk)
    _chunks_delete(job.pk)
    job.refresh_from_db()
    _audit(job, outcome="success")


def import_job_process(*, job_id: str, worker: str) -> ProcessOutcome:
    """The worker's side (called by the Celery task; safe to call any number of times, concurrently too).

    Claims the job with a lease; if another worker holds a live lease, asks to be retried when it expires. After
    `CSV_IMPORT_MAX_ATTEMPTS` claims the job fails (a poison job never loops). Any failure undoes every write.
    """
    if not ObjectId.is_valid(str(job_id)):
        return ProcessOutcome()
    pk = ObjectId(str(job_id))
    now = timezone.now()
    claimed = ImportJob.objects.filter(
        Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now),
        pk=pk,
        status__in=[Status.QUEUED, Status.RUNNING],
    ).update(
        updated_at=timezone.now(),
        status=Status.RUNNING,
        lease_owner=worker,
        lease_expires_at=now + timedelta(seconds=settings.CSV_IMPORT_LEASE_SECONDS),
        attempts=F("attempts") + 1,
        processed=0,
    )
    job = ImportJob.objects.filter(pk=pk).select_related("created_by").first()
    if job is None:
        return ProcessOutcome()
    if not claimed:
        if job.status in (Status.QUEUED, Status.RUNNING) and job.lease_expires_at is not None:
            return ProcessOutcome(retry_in=max(1.0, (job.lease_expires_at - now).total_seconds() + 0.5))
        return ProcessOutcome()
    if job.started_at is None:
        ImportJob.objects.filter(pk=pk).update(started_at=now)
    if job.attempts > settings.CSV_IMPORT_MAX_ATTEMPTS:
        _job_fail(
            job,
            worker=worker,
            code="too_many_attempts",
            message=f"The import was attempted {job.attempts - 1} times without finishing; nothing was written.",
        )
        return ProcessOutcome()
    if _file_digest(job.pk) != job.file_sha256:
        _job_fail(job, worker=worker, code="file_corrupt", message="The stored file no longer matches its upload.")
        return ProcessOutcome()
    try:
        _job_write(job, worker=worker)
    except LeaseLost:
        logger.warning("import job %s: lease lost to another worker", job.pk)
    except csvformat.CsvFileError as error:
        _job_fail(job, worker=worker, code=error.code, message=f"Row {error.row}: {error.message}")
    except Exception as error:
        # Unknown failure (database hiccup, bug): undo now; retry until the attempts run out.
        logger.exception("import job %s failed on attempt %s", job.pk, job.attempts)
        if job.attempts >= settings.CSV_IMPORT_MAX_ATTEMPTS:
            _job_fail(
                job,
                worker=worker,
                code="import_error",
                message=f"The import failed ({type(error).__name__}); nothing was written.",
            )
            return ProcessOutcome()
        _undo(job)
        ImportJob.objects.filter(pk=job.pk, lease_owner=worker).update(
            status=Status.QUEUED, lease_owner="", lease_expires_at=None, processed=0, eta_seconds=None
        )
        return ProcessOutcome(retry_in=float(settings.CSV_IMPORT_RETRY_DELAY_SECONDS))
    return ProcessOutcome()


def import_jobs_sweep(*, now=None) -> dict[str, int]:
    """Find jobs nobody is finishing and finish or fail them (periodic task + `manage.py import_jobs_sweep`).

    - running with an expired lease (the worker died): queued again, or failed (undone) after the last attempt;
    - queued for longer than CSV_IMPORT_QUEUED_STALE_SECONDS (the message was lost): enqueued again;
    - journals left by jobs that already ended: dropped (succeeded) or undone (failed).
    """
    now = now or timezone.now()
    counts = {"requeued": 0, "failed": 0, "journals": 0}
    stale_running = ImportJob.objects.filter(status=Status.RUNNING, lease_expires_at__lt=now).select_related(
        "created_by"
    )
    for job in stale_running:
        if job.attempts >= settings.CSV_IMPORT_MAX_ATTEMPTS:
            _job_fail(
                job, code="worker_lost", message="The worker processing this import stopped; nothing was written."
            )
            counts["failed"] += 1
            continue
        requeued = ImportJob.objects.filter(pk=job.pk, status=Status.RUNNING, lease_expires_at__lt=now).update(
            status=Status.QUEUED, lease_owner="", lease_expires_at=None, queued_at=now
        )
        if requeued:
            _enqueue_quietly(job.pk)
            counts["requeued"] += 1
    lost_before = now - timedelta(seconds=settings.CSV_IMPORT_QUEUED_STALE_SECONDS)
    for job in ImportJob.objects.filter(status=Status.QUEUED, queued_at__lt=lost_before, lease_owner=""):
        if ImportJob.objects.filter(pk=job.pk, status=Status.QUEUED, queued_at__lt=lost_before).update(queued_at=now):
            _enqueue_quietly(job.pk)
            counts["requeued"] += 1
    job_ids = connection.database[journal.COLLECTION].distinct("job_id")
    for job in ImportJob.objects.filter(pk__in=job_ids, status__in=[Status.SUCCEEDED, Status.FAILED]):
        if job.status == Status.SUCCEEDED:
            journal.journal_discard(job.pk)
        else:
            _undo(job)
        counts["journals"] += 1
    return counts


def _enqueue_quietly(job_id) -> None:
    try:
        import_job_enqueue(job_id)
    except (OperationalError, ConnectionError, OSError) as error:
        # The job stays queued; the next sweep enqueues it again.
        logger.warning("import job %s could not be re-enqueued: %s", job_id, error)


# --- exports ---------------------------------------------------------------------------------------------------


def _suites_by_id() -> dict[ObjectId, dict[str, Any]]:
    return {suite["_id"]: suite for suite in connection.database[bulk.SUITES].find({}, {"product": 1, "name": 1})}


def _case_row(case: dict[str, Any], suite: dict[str, Any]) -> dict[str, Any]:
    return {
        "product": suite["product"],
        "suite": suite["name"],
        "key": case["key"],
        "title": case.get("title", ""),
        "category": case.get("category", ""),
        "task": case.get("task", ""),
        "owner": case.get("owner", ""),
        "priority": case.get("priority", 3),
        "tags": case.get("tags") or [],
    }


def _cases_rows() -> Iterator[dict[str, Any]]:
    suites = _suites_by_id()
    cursor = connection.database[bulk.CASES].find({"is_deleted": {"$ne": True}}).sort([("suite_id", 1), ("key", 1)])
    for case in cursor.batch_size(1000):
        suite = suites.get(case["suite_id"])
        if suite is not None:
            yield _case_row(case, suite)


def _runs_rows(release_candidate: ReleaseCandidate) -> Iterator[dict[str, Any]]:
    database = connection.database
    suites = _suites_by_id()
    emails = {user_id: email for user_id, email in User.objects.values_list("pk", "email")}
    cursor = (
        database[bulk.RUNS]
        .find({"release_candidate_id": release_candidate.pk})
        .sort([("case_id", 1), ("executed_at", 1)])
    )
    cases: dict[ObjectId, dict[str, Any] | None] = {}
    pending: list[dict[str, Any]] = []

    def rows(runs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        missing = list({run["case_id"] for run in runs} - cases.keys())
        for case in database[bulk.CASES].find({"_id": {"$in": missing}}):
            cases[case["_id"]] = case
        for run in runs:
            case = cases.get(run["case_id"])
            suite = suites.get(case["suite_id"]) if case else None
            if case is None or suite is None:
                continue
            yield {
                **_case_row(case, suite),
                "rc": release_candidate.name,
                "status": run["status"],
                "mantis_ids": run.get("mantis_ids") or [],
                "notes": run.get("notes", ""),
                "executed_at": run["executed_at"]
                if run["executed_at"].tzinfo
                else run["executed_at"].replace(tzinfo=UTC),
                "executed_by": emails.get(run.get("executed_by_id"), ""),
            }
        if len(cases) > 20_000:
            cases.clear()

    for run in cursor.batch_size(1000):
        pending.append(run)
        if len(pending) >= 1000:
            yield from rows(pending)
            pending = []
    if pending:
        yield from rows(pending)


def export_cases_csv(*, user, request: HttpRequest | None = None) -> Iterator[str]:
    """Every (not deleted) case as CSV text chunks in the import format, formula cells neutralised. Admins only."""
    require_role(user, "admin")
    audit_record(action="export.csv", actor=user, resource="cases", request=request, metadata={"export": "cases"})
    return csvformat.write_rows(_cases_rows())


def export_runs_csv(*, user, release_candidate: str, request: HttpRequest | None = None) -> tuple[str, Iterator[str]]:
    """Every run of one RC (by id or name) as CSV text chunks in the import format. Returns (RC name, chunks)."""
    require_role(user, "admin")
    if not release_candidate:
        raise ValidationFailed("Choose a release candidate.", fields={"rc": ["This field is required."]})
    query = Q(name=release_candidate)
    if ObjectId.is_valid(release_candidate):
        query |= Q(pk=ObjectId(release_candidate))
    rc = ReleaseCandidate.objects.filter(query).first()
    if rc is None:
        raise NotFound("No such release candidate.")
    audit_record(
        action="export.csv",
        actor=user,
        resource=f"release_candidate:{rc.pk}",
        request=request,
        metadata={"export": "runs", "release_candidate": rc.name},
    )
    return rc.name, csvformat.write_rows(_runs_rows(rc))
