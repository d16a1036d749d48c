"""Writes of the imports app: upload + validate (preview), confirm, cancel, the worker's processing, the stale-job
sweep, and the CSV exports. Every import ends with exactly one audit event ("import.csv") when the job reaches a
terminal state; every export writes one ("export.csv") when it starts.

All-or-nothing: a file is validated completely before anything is written; while writing, each batch's changes
and their undo journal entry (imports/journal.py) commit in one transaction, so a failure at any row, a kill, or a
cancel restores the database exactly (rollback is resumable; the sweep finishes an interrupted one).
Redelivery: jobs are claimed with a lease and a fencing token (imports/leases.py); a heartbeat renews the lease
while the worker lives, a second delivery waits for it, a dead worker's lease expires and the next attempt resumes
after the last committed batch. A worker that lost its lease cannot commit another batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import Binary, ObjectId
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import connection
from django.db.models import F, Q
from django.http import HttpRequest
from django.utils import timezone
from django_mongodb_backend import transaction
from kombu.exceptions import OperationalError
from pymongo.errors import DuplicateKeyError, PyMongoError

from accounts.models import User
from accounts.permissions import require_role
from audit.services import audit_record
from imports import csvformat, journal, junit, leases
from imports.metrics import import_failures_total, import_rows_total
from imports.models import ImportJob
from imports.selectors import import_job_get_for_user
from releases import bulk, rules, store
from releases import selectors as release_selectors
from releases.models import ReleaseCandidate
from report_platform import interactive
from report_platform.errors import Conflict, NotFound, PayloadTooLarge, ServiceUnavailable, ValidationFailed

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
CHUNKS = "importChunks"
Status = ImportJob.Status
_UNSAFE_FILENAME = re.compile(r"[^\w.\- ()\[\]]+")


LeaseLost = leases.LeaseLost


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
    actor = job.created_by
    cancelled_by = (job.result or {}).get("cancelled_by")
    if cancelled_by and ObjectId.is_valid(cancelled_by):
        actor = User.objects.filter(pk=ObjectId(cancelled_by)).first() or actor
    target = {}
    if job.kind == job.Kind.JUNIT:  # "ci_prefix": the public prefix of the CI token used (a *_token key is redacted)
        target = {"rc": job.options.get("rc", ""), "product": job.options.get("product", "")}
        target["ci_prefix"] = job.options.get("via_token", "")
    audit_record(
        action=f"import.{job.kind}",
        actor=actor,
        resource=f"import:{job.pk}",
        outcome=outcome,
        request=request,
        metadata={
            **target,
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
        # Every row naming an unknown user is told so, beside that row's other problems.
        known = _users_by_email(report.executed_by)
        for email, rows in report.executed_by.items():
            if email not in known:
                for row in rows:
                    report.add(
                        csvformat.row_error(
                            "unknown_user",
                            f"No user has the e-mail {email[:80]!r}.",
                            row=row,
                            column=report.executed_by_column,
                        ),
                        keep=settings.CSV_MAX_ERRORS_KEPT,
                    )
    _release_candidate_products_check(report)
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


def _release_candidate_products_check(report: csvformat.ValidationReport) -> None:
    """An RC belongs to one product: a file whose rows name one RC under several products, or an existing RC of
    another product, is refused at the first such row (code "rc_product_mismatch"). RCs the file creates get the
    product of their rows (releases/bulk.py)."""
    if not report.release_candidate_products:
        return
    existing = {
        rc.name: rc.product
        for rc in ReleaseCandidate.objects.filter(name__in=list(report.release_candidate_products)).only(
            "name", "product"
        )
    }
    for name, rows_by_product in report.release_candidate_products.items():
        stored = existing.get(name)
        allowed = stored if stored else next(iter(rows_by_product))
        for product, row in rows_by_product.items():
            if product != allowed:
                report.add(
                    csvformat.row_error(
                        "rc_product_mismatch",
                        f"RC {name[:64]!r} belongs to {allowed[:120]!r}; this row's suite is of {product[:120]!r}.",
                        row=row,
                        column="rc",
                    ),
                    keep=settings.CSV_MAX_ERRORS_KEPT,
                )


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
    """Cancel a job (its reviewer or an admin). One waiting for confirmation ends `cancelled` at once. A queued or
    running one is taken from its worker (the lease and the fence move to the cancel, so the worker's next batch is
    refused and its heartbeat notices) and rolled back by a worker or the sweep; it ends `cancelled`, database as
    before, with one audit event. Cancelling twice is harmless."""
    job = import_job_get_for_user(user=user, job_id=job_id)
    now = timezone.now()
    cancelled = ImportJob.objects.filter(pk=job.pk, status=Status.PREVIEWED).update(
        status=Status.CANCELLED, finished_at=now
    )
    if cancelled:
        _chunks_delete(job.pk)
        job.refresh_from_db()
        _audit(job, outcome="success", request=request)
        return job
    stopping = ImportJob.objects.filter(pk=job.pk, status__in=[Status.QUEUED, Status.RUNNING]).update(
        updated_at=now,
        status=Status.ROLLING_BACK,
        rollback_to=Status.CANCELLED,
        failure_code="cancelled",
        failure_message="",
        lease_owner="",
        lease_expires_at=None,
        lease_token=F("lease_token") + 1,
        eta_seconds=None,
        result={"final_message": "Cancelled; nothing was written.", "cancelled_by": str(user.pk)},
    )
    if stopping:
        job.refresh_from_db()
        leases.fence_take(job.pk, job.lease_token)  # from here on the worker cannot commit another batch
        _enqueue_quietly(job.pk)  # a worker rolls it back; if the broker is down, the sweep does
        return job
    if job.status in (Status.CANCELLED, Status.ROLLING_BACK):
        return job
    raise Conflict(f"This import is {job.get_status_display().lower()} and cannot be cancelled.", code="import_state")


def _pymongo_error(error: BaseException) -> PyMongoError | None:
    while error is not None:
        if isinstance(error, PyMongoError):
            return error
        error = error.__cause__ or error.__context__
    return None


def _atomically(function):
    """Run `function()` in one MongoDB transaction (the ORM and `audit_record` join it), again on a transient
    conflict."""
    for attempt in range(20):
        try:
            with transaction.atomic():
                return function()
        except Exception as error:
            if connection.session is not None:  # a failed commit leaves the session open
                with contextlib.suppress(PyMongoError):
                    connection.session.abort_transaction()
                connection._end_session()
            connection.in_atomic_block_mongo = False
            cause = _pymongo_error(error)
            if cause is None or not leases.is_transient(cause) or attempt == 19:
                raise
            time.sleep(min(0.02 * (attempt + 1), 0.5))
    return None


def _job_end(job_id, *, token: int, from_status: str, updates: dict[str, Any], outcome: str) -> ImportJob | None:
    """The terminal transition and its audit event in one transaction: exactly one event per job, written only
    by the holder of `token`. Returns the ended job, or None when another claim holds it."""

    def end() -> ImportJob | None:
        fields = {"lease_owner": "", "lease_expires_at": None, "eta_seconds": None, **updates}
        ended = ImportJob.objects.filter(pk=job_id, status=from_status, lease_token=token).update(
            updated_at=timezone.now(), finished_at=timezone.now(), **fields
        )
        if not ended:
            return None
        job = ImportJob.objects.select_related("created_by").get(pk=job_id)
        _audit(job, outcome=outcome)
        return job

    job = _atomically(end)
    if job is not None:
        _chunks_delete(job.pk)
        leases.fence_drop(job.pk)
    return job


def _rollback(job_id, *, owner: str, token: int) -> ImportJob | None:
    """Undo everything the job wrote (idempotent, resumable, fenced by `token`), rebuild the touched RCs'
    summaries, then end the job in its `rollback_to` status with one audit event."""
    from releases.services import summaries_rebuild

    with leases.Heartbeat(job_id=job_id, worker=owner, token=token, lease_seconds=settings.CSV_IMPORT_LEASE_SECONDS):
        if leases.fence_take(job_id, token) is None:
            return None
        release_candidate_ids = journal.journal_undo(job_id, token=token)
        # Always: the file may have added or changed cases (coverage counts) without naming any RC.
        summaries_rebuild(release_candidate_ids=sorted(release_candidate_ids or ()))
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is None or job.status != Status.ROLLING_BACK or job.lease_token != token:
        return None
    final = dict(job.result or {})
    message = final.pop("final_message", "The import failed; nothing was written.")
    failed = job.rollback_to != Status.CANCELLED
    ended = _job_end(
        job_id,
        token=token,
        from_status=Status.ROLLING_BACK,
        updates={
            "status": Status.FAILED if failed else Status.CANCELLED,
            "failure_message": message[:2000],
            "processed": 0,
            "rate": 0.0,
            "result": final,
        },
        outcome="failure" if failed else "success",
    )
    if ended is not None and failed:
        import_failures_total.labels(code=ended.failure_code).inc()
    return ended


def _job_fail(
    job: ImportJob, *, code: str, message: str, worker: str | None = None, token: int | None = None
) -> ImportJob | None:
    """Take the job over (a new token: any writer still running is fenced out), roll it back, end it `failed`.
    With `token`, only if that claim still holds the job."""
    owner = f"rollback:{uuid.uuid4().hex}"
    jobs = ImportJob.objects.filter(pk=job.pk, status__in=[Status.QUEUED, Status.RUNNING])
    if token is not None:
        jobs = jobs.filter(lease_token=token)
    elif worker is not None:
        jobs = jobs.filter(lease_owner=worker)
    taken = jobs.update(
        updated_at=timezone.now(),
        status=Status.ROLLING_BACK,
        rollback_to=Status.FAILED,
        failure_code=code,
        failure_message="",
        lease_owner=owner,
        lease_token=F("lease_token") + 1,
        lease_expires_at=timezone.now() + timedelta(seconds=settings.CSV_IMPORT_LEASE_SECONDS),
        eta_seconds=None,
        result={"final_message": message},
    )
    if not taken:
        return None
    job.refresh_from_db()
    return _rollback(job.pk, owner=owner, token=job.lease_token)


def _file_digest(job_id) -> str:
    digest = hashlib.sha256()
    for chunk in chunks_open(job_id):
        digest.update(chunk)
    return digest.hexdigest()


def _job_records(job: ImportJob) -> Iterator[Any]:
    """The rows of a job's stored file, in file order, as the bulk writer takes them."""
    if job.kind == ImportJob.Kind.JUNIT:
        return junit.iter_records(
            _stored_files(job),
            upload=_junit_upload(job),
            expanded_limit=settings.JUNIT_MAX_EXPANDED_BYTES,
            max_files=settings.JUNIT_MAX_FILES,
        )
    return csvformat.iter_records(lambda: chunks_open(job.pk))


class _Progress:
    """Rows per second of what this attempt actually committed, exponentially smoothed, and the ETA from it."""

    def __init__(self) -> None:
        self.rate: float | None = None

    def add(self, rows: int, seconds: float) -> float:
        current = rows / max(seconds, 1e-6)
        self.rate = current if self.rate is None else 0.3 * current + 0.7 * self.rate
        return self.rate


def _batch_write(
    batch: list[csvformat.Record],
    *,
    job: ImportJob,
    token: int,
    state: bulk.BulkState,
    undo_journal: journal.UndoJournal,
    done: int,
) -> bulk.BulkState:
    """Write one batch in one fenced transaction (journal entries + writes + the fence's progress), again with
    fresh state on a transient conflict. Returns the state to go on with."""
    delay = settings.CSV_IMPORT_BATCH_DELAY_SECONDS
    for attempt in range(settings.CSV_IMPORT_BATCH_RETRIES):
        emails = {record.executed_by for record in batch if record.executed_by} - state.user_ids.keys()
        if emails:
            state.user_ids.update(_users_by_email(emails))
        try:
            with leases.fenced_batch(job_id=job.pk, token=token) as (session, fence_update):
                state.session = undo_journal.session = session
                bulk.rows_write(batch, state=state, journal=undo_journal)
                if delay:
                    time.sleep(delay)  # test hook: a batch slower than the lease
                fence_update["$set"] = {"rows_done": done + len(batch), "counts": dict(state.counts)}
            state.session = None
            return state
        except (PyMongoError, DuplicateKeyError) as error:
            state.session = None
            if not (isinstance(error, DuplicateKeyError) or leases.is_transient(error)):
                raise
            if attempt == settings.CSV_IMPORT_BATCH_RETRIES - 1:
                raise
            logger.info("import job %s: batch at row %s conflicted (%s); retrying", job.pk, done, error)
            fence = leases.fence_get(job.pk) or {}
            if fence.get("token") != token:
                raise LeaseLost() from error
            if fence.get("rows_done", 0) >= done + len(batch):  # the commit went through after all
                state.counts = dict(fence["counts"])
                return state
            # What the aborted batch put in the caches never reached the database: start them afresh.
            state = bulk.BulkState(
                actor_id=state.actor_id,
                update_existing_cases=state.update_existing_cases,
                counts=dict(fence.get("counts") or state.counts),
            )
            time.sleep(min(0.1 * 2**attempt, 2.0))
    raise AssertionError("unreachable")


def _pace(seconds: float) -> None:
    """The import's pause between two batches while people are using the product."""
    time.sleep(seconds)


def _junit_target_recheck(job: ImportJob) -> None:
    """The RC a queued JUnit job targets may have been created since the upload: it must still be of the job's
    product (else the job fails with `rc_product_mismatch` and writes nothing)."""
    rc, product = job.options.get("rc", ""), job.options.get("product", "")
    existing = ReleaseCandidate.objects.filter(name=rc).only("product").first()
    if existing is not None and existing.product != product:
        raise junit.JunitFileError(
            "rc_product_mismatch",
            f"The release candidate {rc[:64]!r} now belongs to another product ({existing.product[:120] or 'none'}); "
            "nothing was written.",
        )


def _job_write(job: ImportJob, *, worker: str, token: int, fence: dict[str, Any], heartbeat: leases.Heartbeat):
    from releases.services import summaries_rebuild

    if job.kind == ImportJob.Kind.JUNIT:
        _junit_target_recheck(job)
    counts = fence.get("counts") or {}
    state = bulk.BulkState(actor_id=job.created_by_id, update_existing_cases=job.kind != ImportJob.Kind.JUNIT)
    state.counts.update(counts)
    batch_rows = max(1, settings.CSV_IMPORT_BATCH_ROWS)
    pace = max(settings.CSV_IMPORT_PACE_FRACTION, 0.0)
    limit = batch_rows  # the size of the next batch: smaller while people are using the product
    done = skip = int(fence.get("rows_done") or 0)  # rows committed by earlier attempts: resume after them
    progress = _Progress()
    # One journal per attempt: its `seq` grows across the batches (and past the committed attempts' entries).
    undo_journal = journal.UndoJournal(job_id=job.pk, attempt=job.attempts)
    batch: list[csvformat.Record] = []

    def flush() -> None:
        nonlocal done, state, limit
        if heartbeat.lost.is_set():
            raise LeaseLost()
        started = time.monotonic()
        state = _batch_write(batch, job=job, token=token, state=state, undo_journal=undo_journal, done=done)
        done += len(batch)
        runs = sum(1 for record in batch if record.rc)
        import_rows_total.labels(kind="cases").inc(len(batch) - runs)
        import_rows_total.labels(kind="runs").inc(runs)
        written = time.monotonic() - started
        # Pacing: the stand-in (and a busy server) serves interactive requests while the import waits; with
        # nobody using the product the import does not wait.
        if pace and not job.options.get("inline") and interactive.recently(settings.CSV_IMPORT_PACE_WINDOW_SECONDS):
            _pace(min(written * pace, settings.CSV_IMPORT_PACE_MAX_SECONDS))
            limit = max(1, min(batch_rows, settings.CSV_IMPORT_BATCH_ROWS_INTERACTIVE))
        else:
            limit = batch_rows
        rate = progress.add(len(batch), time.monotonic() - started)
        batch.clear()
        shown = ImportJob.objects.filter(pk=job.pk, lease_token=token, status=Status.RUNNING).update(
            updated_at=timezone.now(),
            processed=min(done, job.total),
            rate=round(rate, 1),
            eta_seconds=round(max(job.total - done, 0) / rate, 1),
        )
        if not shown:
            raise LeaseLost()

    for index, record in enumerate(_job_records(job)):
        if index < skip:
            continue
        batch.append(record)
        if len(batch) >= limit:
            flush()
    if batch:
        flush()
    heartbeat.stop()
    if heartbeat.lost.is_set():
        raise LeaseLost()
    release_candidate_ids = journal.journal_release_candidate_ids(job.pk)
    # Always: the file may have added or changed cases (coverage counts) without naming any RC.
    summaries_rebuild(release_candidate_ids=sorted(release_candidate_ids or ()))
    finished = _job_end(
        job.pk,
        token=token,
        from_status=Status.RUNNING,
        updates={
            "status": Status.SUCCEEDED,
            "processed": job.total,
            "eta_seconds": 0.0,
            "result": state.counts,
            "failure_code": "",
            "failure_message": "",
        },
        outcome="success",
    )
    if finished is None:
        raise LeaseLost()
    journal.journal_discard(job.pk)


def _claim(pk: ObjectId, *, worker: str, now) -> tuple[ImportJob | None, bool]:
    """Claim the job's lease with a new fencing token: (job, claimed). A job rolling back is claimed to finish its
    rollback (not counted as an attempt)."""
    free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    lease_until = now + timedelta(seconds=settings.CSV_IMPORT_LEASE_SECONDS)
    claimed = ImportJob.objects.filter(free, pk=pk, status=Status.ROLLING_BACK).update(
        updated_at=now, lease_owner=worker, lease_expires_at=lease_until, lease_token=F("lease_token") + 1
    )
    if not claimed:
        claimed = ImportJob.objects.filter(free, pk=pk, status__in=[Status.QUEUED, Status.RUNNING]).update(
            updated_at=now,
            status=Status.RUNNING,
            lease_owner=worker,
            lease_expires_at=lease_until,
            lease_token=F("lease_token") + 1,
            attempts=F("attempts") + 1,
            rate=0.0,
            eta_seconds=None,
        )
    return ImportJob.objects.filter(pk=pk).select_related("created_by").first(), bool(claimed)


def import_job_process(*, job_id: str, worker: str) -> ProcessOutcome:
    """The worker's side (called by the Celery task; safe to call any number of times, concurrently too).

    Claims the job with a lease and a new fencing token, renewed by a heartbeat while it works; if another worker
    holds a live lease, asks to be retried when it expires. Resumes after the rows earlier attempts committed.
    After `CSV_IMPORT_MAX_ATTEMPTS` claims the job fails (a poison job never loops). Any failure undoes every
    write; a job being cancelled or failed is rolled back to the end.
    """
    if not ObjectId.is_valid(str(job_id)):
        return ProcessOutcome()
    pk = ObjectId(str(job_id))
    now = timezone.now()
    job, claimed = _claim(pk, worker=worker, now=now)
    if job is None:
        return ProcessOutcome()
    if not claimed:
        if job.status in (Status.QUEUED, Status.RUNNING, Status.ROLLING_BACK) and job.lease_expires_at is not None:
            return ProcessOutcome(retry_in=max(1.0, (job.lease_expires_at - now).total_seconds() + 0.5))
        return ProcessOutcome()
    token = job.lease_token
    if job.status == Status.ROLLING_BACK:
        _rollback(job.pk, owner=worker, token=token)
        return ProcessOutcome()
    if job.started_at is None:
        ImportJob.objects.filter(pk=pk).update(started_at=now)
    if job.attempts > settings.CSV_IMPORT_MAX_ATTEMPTS:
        _job_fail(
            job,
            token=token,
            code="too_many_attempts",
            message=f"The import was attempted {job.attempts - 1} times without finishing; nothing was written.",
        )
        return ProcessOutcome()
    if _file_digest(job.pk) != job.options.get("content_sha256", job.file_sha256):
        _job_fail(job, token=token, code="file_corrupt", message="The stored file no longer matches its upload.")
        return ProcessOutcome()
    fence = leases.fence_take(job.pk, token)
    if fence is None:
        return ProcessOutcome()
    ImportJob.objects.filter(pk=pk, lease_token=token).update(processed=min(fence.get("rows_done", 0), job.total))
    heartbeat = leases.Heartbeat(
        job_id=job.pk, worker=worker, token=token, lease_seconds=settings.CSV_IMPORT_LEASE_SECONDS
    )
    try:
        with heartbeat:
            _job_write(job, worker=worker, token=token, fence=fence, heartbeat=heartbeat)
    except LeaseLost:
        logger.warning("import job %s: lease lost (cancelled or taken over); this worker stops", job.pk)
    except csvformat.CsvFileError as error:
        _job_fail(job, token=token, code=error.code, message=f"Row {error.row}: {error.message}; nothing was written.")
    except junit.JunitFileError as error:
        where = f"{error.file} line {error.line}: " if error.line else ""
        _job_fail(job, token=token, code=error.code, message=f"{where}{error.message}"[:1900])
    except Exception as error:
        # Unknown failure (database hiccup, bug): undo now; retry until the attempts run out.
        logger.exception("import job %s failed on attempt %s", job.pk, job.attempts)
        if job.attempts >= settings.CSV_IMPORT_MAX_ATTEMPTS:
            _job_fail(
                job,
                token=token,
                code="import_error",
                message=f"The import failed ({type(error).__name__}); nothing was written.",
            )
            return ProcessOutcome()
        from releases.services import summaries_rebuild

        try:
            release_candidate_ids = journal.journal_undo(job.pk, token=token)
        except LeaseLost:
            return ProcessOutcome()
        # Always: the file may have added or changed cases (coverage counts) without naming any RC.
        summaries_rebuild(release_candidate_ids=sorted(release_candidate_ids or ()))
        leases.fence_drop(job.pk)
        ImportJob.objects.filter(pk=job.pk, lease_token=token, status=Status.RUNNING).update(
            status=Status.QUEUED, lease_owner="", lease_expires_at=None, processed=0, eta_seconds=None, rate=0.0
        )
        return ProcessOutcome(retry_in=float(settings.CSV_IMPORT_RETRY_DELAY_SECONDS))
    return ProcessOutcome()


def import_jobs_sweep(*, now=None) -> dict[str, int]:
    """Find jobs nobody is finishing and finish or fail them (periodic task + `manage.py import_jobs_sweep`).

    - running with an expired lease (its heartbeat stopped: the worker died): queued again, or failed (rolled back)
      after the last attempt;
    - rolling back with no live lease (a rollback or cancel was interrupted): the rollback is finished here;
    - queued for longer than CSV_IMPORT_QUEUED_STALE_SECONDS (the message was lost): enqueued again;
    - journals left by jobs that already ended: dropped (succeeded) or undone (failed, cancelled).
    """
    now = now or timezone.now()
    counts = {"requeued": 0, "failed": 0, "rolled_back": 0, "journals": 0}
    stale_running = ImportJob.objects.filter(status=Status.RUNNING, lease_expires_at__lt=now).select_related(
        "created_by"
    )
    for job in stale_running:
        if job.attempts >= settings.CSV_IMPORT_MAX_ATTEMPTS:
            if _job_fail(
                job,
                token=job.lease_token,
                code="worker_lost",
                message="The worker processing this import stopped; nothing was written.",
            ):
                counts["failed"] += 1
            continue
        requeued = ImportJob.objects.filter(pk=job.pk, status=Status.RUNNING, lease_expires_at__lt=now).update(
            status=Status.QUEUED, lease_owner="", lease_expires_at=None, queued_at=now
        )
        if requeued:
            _enqueue_quietly(job.pk)
            counts["requeued"] += 1
    free = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    for job in ImportJob.objects.filter(free, status=Status.ROLLING_BACK):
        owner = f"sweep:{uuid.uuid4().hex}"
        if ImportJob.objects.filter(free, pk=job.pk, status=Status.ROLLING_BACK).update(
            lease_owner=owner,
            lease_token=F("lease_token") + 1,
            lease_expires_at=timezone.now() + timedelta(seconds=settings.CSV_IMPORT_LEASE_SECONDS),
        ):
            job.refresh_from_db()
            if _rollback(job.pk, owner=owner, token=job.lease_token):
                counts["rolled_back"] += 1
    lost_before = now - timedelta(seconds=settings.CSV_IMPORT_QUEUED_STALE_SECONDS)
    for job in ImportJob.objects.filter(status=Status.QUEUED, queued_at__lt=lost_before, lease_owner=""):
        if ImportJob.objects.filter(pk=job.pk, status=Status.QUEUED, queued_at__lt=lost_before).update(queued_at=now):
            _enqueue_quietly(job.pk)
            counts["requeued"] += 1
    job_ids = connection.database[journal.COLLECTION].distinct("job_id")
    ended = [Status.SUCCEEDED, Status.FAILED, Status.CANCELLED]
    for job in ImportJob.objects.filter(pk__in=job_ids, status__in=ended):
        if job.status == Status.SUCCEEDED:
            journal.journal_discard(job.pk)
        else:
            _undo(job)
        counts["journals"] += 1
    return counts


def _undo(job: ImportJob) -> None:
    """Restore what an ended job's journal still records (an old, unfenced leftover) and rebuild the summaries."""
    from releases.services import summaries_rebuild

    release_candidate_ids = journal.journal_undo(job.pk)
    # Always: the file may have added or changed cases (coverage counts) without naming any RC.
    summaries_rebuild(release_candidate_ids=sorted(release_candidate_ids or ()))


def _enqueue_quietly(job_id) -> None:
    try:
        import_job_enqueue(job_id)
    except (OperationalError, ConnectionError, OSError) as error:
        # The job stays queued; the next sweep enqueues it again.
        logger.warning("import job %s could not be re-enqueued: %s", job_id, error)


# --- JUnit / xUnit reports -------------------------------------------------------------------------------------


def _stored_files(job: ImportJob) -> list[tuple[str, Any]]:
    """The files of an upload, stored one after the other in the job's chunks: (name, opener) each."""
    files, start = [], 0
    for item in job.options.get("files") or [{"name": job.filename, "size": job.file_size}]:
        size = int(item["size"])
        files.append(
            (item["name"], lambda start=start, size=size: junit.ByteStream(chunks_open(job.pk), start=start, size=size))
        )
        start += size
    return files


def _junit_upload(job: ImportJob) -> junit.Upload:
    options = job.options
    return junit.Upload(
        product=options["product"],
        rc=options["rc"],
        owner=options["owner"],
        category=options["category"],
        uploaded_at=datetime.fromisoformat(options["uploaded_at"]),
        executed_by=job.created_by.email.lower() if job.created_by is not None else "",
        failure_text_bytes=settings.JUNIT_FAILURE_TEXT_MAX_BYTES,
    )


def _junit_defaults(product: str) -> dict[str, str]:
    defaults = settings.JUNIT_CASE_DEFAULTS
    return {**defaults.get("*", {}), **defaults.get(product, {})}


def _junit_target(*, user, rc: str, product: str, owner: str, category: str, request) -> dict[str, Any]:
    """The upload's fields checked against the rule table; the RC must be absent or of `product`."""
    product, rc = (product or "").strip(), (rc or "").strip()
    problems: dict[str, list[str]] = {}
    if not product:
        problems["product"] = ["This field is required."]
    if not rc:
        problems["rc"] = ["This field is required."]
    if problems:
        raise ValidationFailed("Give the product and the release candidate.", code="field_required", fields=problems)
    defaults = _junit_defaults(product)
    owner = (owner or "").strip() or defaults.get("owner", "ci")
    category = (category or "").strip() or defaults.get("category", "automated")
    rules.check_values(
        {"rc": rc, "product": product, "owner": owner, "category": category},
        text={"rc": rules.RC_NAME, "product": rules.PRODUCT, "owner": rules.OWNER, "category": rules.CATEGORY},
    )
    existing = ReleaseCandidate.objects.filter(name=rc).first()
    if existing is not None and existing.product != product:
        raise Conflict(
            f"The release candidate {rc!r} belongs to another product ({existing.product or 'none'}).",
            code="rc_product_mismatch",
            fields={"rc": [f"This RC is of product {existing.product or '(none)'}, not {product}."]},
        )
    return {"rc": rc, "product": product, "owner": owner, "category": category}


def _junit_job_share(job: ImportJob, *, user) -> ImportJob:
    """Let `user`, who uploaded the same report for the same RC again, follow the earlier job (read only: its page
    and progress, not confirm or cancel; imports/selectors.py)."""
    connection.database[ImportJob._meta.db_table].update_one(
        {"_id": job.pk}, {"$addToSet": {"options.shared_with": str(user.pk)}}
    )
    job.refresh_from_db()
    return job


def junit_import_create(
    *,
    user,
    uploads: list[UploadedFile],
    rc: str,
    product: str,
    owner: str = "",
    category: str = "",
    via_token=None,
    request: HttpRequest | None = None,
) -> ImportJob:
    """Import JUnit / xUnit XML reports (plain, gzip, zip; one or several files) into the runs of RC `rc` of
    `product` as one import job (kind "junit"), through the same batches, journal, lease and fence as CSV imports.

    The upload is read completely first (imports/junit.py; nothing is written): an unreadable or hostile report
    ends the job `invalid` with a coded error (its file and line). A valid one is queued, or processed at once when
    it holds at most JUNIT_INLINE_MAX_TESTCASES testcases. The RC is created (of `product`) if absent, by the
    job's first batch and undone with the rest if the job fails or is cancelled; an RC of another product is
    refused (`rc_product_mismatch`), at upload and again when the job runs. Uploading the same files for the same
    RC and product as a job that is waiting, running or succeeded returns that job, whoever uploaded it: nothing
    changes (another reviewer may then follow that job, read only). One audit event "import.junit" per job at its
    end."""
    require_role(user, "reviewer")
    if not uploads:
        raise ValidationFailed(
            "Choose a JUnit XML report to upload.", code="file_missing", fields={"file": ["A file is required."]}
        )
    limit = settings.JUNIT_MAX_UPLOAD_BYTES
    if sum(upload.size or 0 for upload in uploads) > limit or len(uploads) > settings.JUNIT_MAX_FILES:
        import_failures_total.labels(code="file_too_large").inc()
        raise PayloadTooLarge(
            f"The upload is larger than the limit of {limit // (1024 * 1024)} MiB or {settings.JUNIT_MAX_FILES} files.",
            code="file_too_large",
        )
    target = _junit_target(user=user, rc=rc, product=product, owner=owner, category=category, request=request)
    names = [filename_clean(upload.name or "report.xml") for upload in uploads]
    shown = names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1} more)"
    job = ImportJob.objects.create(
        created_by=user,
        kind=ImportJob.Kind.JUNIT,
        filename=shown[:120],
        file_size=sum(upload.size or 0 for upload in uploads),
        has_runs=True,
        options={
            **target,
            "uploaded_at": store.to_millis(timezone.now()).isoformat(),
            "via_token": via_token.prefix if via_token is not None else "",
            "files": [{"name": name, "size": upload.size or 0} for name, upload in zip(names, uploads, strict=True)],
        },
    )

    def pieces() -> Iterator[bytes]:
        for upload in uploads:
            upload.seek(0)
            yield from upload.chunks(CHUNK_BYTES)

    digest = _chunks_store(job, pieces())
    # The digest covers the target too: the same report for another RC is another import.
    job.file_sha256 = hashlib.sha256(f"{digest}|{target['product']}|{target['rc']}".encode()).hexdigest()
    job.options["content_sha256"] = digest
    duplicate = (
        ImportJob.objects.filter(
            kind=ImportJob.Kind.JUNIT,
            file_sha256=job.file_sha256,
            status__in=[Status.QUEUED, Status.RUNNING, Status.SUCCEEDED],
        )
        .exclude(pk=job.pk)
        .first()
    )
    if duplicate is not None:  # whoever uploaded it first: the same report for the same RC changes nothing
        _chunks_delete(job.pk)
        job.delete()
        if duplicate.created_by_id != user.pk and not user.has_role("admin"):
            duplicate = _junit_job_share(duplicate, user=user)
        return duplicate
    report = junit.validate(
        _stored_files(job),
        upload=_junit_upload(job),
        expanded_limit=settings.JUNIT_MAX_EXPANDED_BYTES,
        max_files=settings.JUNIT_MAX_FILES,
        max_testcases=settings.JUNIT_MAX_TESTCASES,
        preview_rows=settings.CSV_PREVIEW_ROWS,
    )
    job.total = report.total
    job.errors = report.errors
    job.error_count = len(report.errors)
    job.preview = report.preview
    job.mapping = [{"column": name, "field": name} for name in ("suite", "key", "status", "failure_signature")]
    job.result = {"statuses": report.statuses, "files": report.files}
    if report.errors:
        job.status = Status.INVALID
        job.finished_at = timezone.now()
        for code in {error["code"] for error in report.errors}:
            import_failures_total.labels(code=code).inc()
        _chunks_delete(job.pk)
        job.save()
        _audit(job, outcome="failure", request=request)
        return job
    # A missing RC is not created here: the first batch creates it (releases/bulk.py) in its fenced transaction,
    # journaled like the suites and cases, so a job that fails or is cancelled leaves no RC behind.
    inline = report.total <= settings.JUNIT_INLINE_MAX_TESTCASES
    job.options = {**job.options, "inline": inline}
    job.status = Status.PREVIEWED
    job.save()
    if not inline:
        return import_job_confirm(user=user, job_id=str(job.pk), request=request)
    ImportJob.objects.filter(pk=job.pk, status=Status.PREVIEWED).update(status=Status.QUEUED, queued_at=timezone.now())
    outcome = import_job_process(job_id=str(job.pk), worker=f"inline:{uuid.uuid4().hex}")
    if outcome.retry_in is not None:  # a transient failure: the workers finish it
        _enqueue_quietly(job.pk)
    job.refresh_from_db()
    return job


# --- exports ---------------------------------------------------------------------------------------------------


def _cases_rows() -> Iterator[dict[str, Any]]:
    return release_selectors.cases_for_export()


def _runs_rows(release_candidate: ReleaseCandidate) -> Iterator[dict[str, Any]]:
    emails = {user_id: email for user_id, email in User.objects.values_list("pk", "email")}
    for row in release_selectors.runs_for_export(release_candidate=release_candidate):
        executed_by_id = row.pop("executed_by_id")
        yield {**row, "executed_by": emails.get(executed_by_id, "")}


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
