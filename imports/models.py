"""Import jobs are data: the uploaded file (in chunks, so every worker can read it), the preview, validation
errors, progress and the outcome. Status flow:

    invalid (validation errors)        previewed -> queued -> running -> succeeded
    previewed -> cancelled             queued/running -> rolling_back -> failed | cancelled (database restored)

A job is written under a lease: `lease_token` grows on every claim (a worker's, a rollback's, a cancel's) and every
write batch is fenced by it (imports/leases.py), so a worker that lost its lease can write nothing more.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ImportJob(models.Model):
    class Status(models.TextChoices):
        INVALID = "invalid", "Invalid"
        PREVIEWED = "previewed", "Awaiting confirmation"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        ROLLING_BACK = "rolling_back", "Rolling back"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Kind(models.TextChoices):
        CSV = "csv", "CSV"
        JUNIT = "junit", "JUnit / xUnit XML"

    TERMINAL = (Status.INVALID, Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.CSV)
    # JUnit: the upload's target and defaults {"rc", "product", "owner", "category", "uploaded_at", "files"}, and
    # "shared_with": ids of reviewers whose upload of the same report was answered with this job (they may view it).
    options = models.JSONField(default=dict, blank=True)

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    filename = models.CharField(max_length=120)
    file_size = models.PositiveIntegerField(default=0)
    file_sha256 = models.CharField(max_length=64, db_index=True)
    delimiter = models.CharField(max_length=4, blank=True)
    has_runs = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PREVIEWED, db_index=True)
    dry_run = models.BooleanField(default=False)
    # Preview: the column mapping and the first rows as parsed.
    mapping = models.JSONField(default=list, blank=True)
    preview = models.JSONField(default=list, blank=True)
    # Validation errors, each {"row", "column", "code", "message"}; at most CSV_MAX_ERRORS_KEPT, all counted.
    errors = models.JSONField(default=list, blank=True)
    error_count = models.PositiveIntegerField(default=0)
    # Why a confirmed job failed (coded), shown on the page and by the API.
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.TextField(blank=True)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    rate = models.FloatField(default=0.0)  # rows per second of the running attempt
    eta_seconds = models.FloatField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)  # counts of created / updated / unchanged cases and runs
    # Claiming: one worker at a time holds the lease; a dead worker's lease expires and the job is taken over.
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    lease_token = models.PositiveIntegerField(default=0)  # the fencing token of the current holder
    # While rolling back: the terminal status it ends in ("failed" or "cancelled").
    rollback_to = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "importJobs"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["created_by", "-created_at"], name="importjob_user_created"),
            models.Index(fields=["status", "lease_expires_at"], name="importjob_status_lease"),
        ]

    def __str__(self) -> str:
        return f"import {self.pk} {self.filename} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @property
    def percent(self) -> int:
        if self.status == self.Status.SUCCEEDED:
            return 100
        return int(self.processed * 100 / self.total) if self.total else 0


class ImportChunk(models.Model):
    """One piece (<= 1 MiB) of an uploaded file, kept in MongoDB so any worker can stream it."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    data = models.BinaryField()

    class Meta:
        db_table = "importChunks"
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="importchunk_unique_job_index")]

    def __str__(self) -> str:
        return f"{self.job_id}#{self.index}"
