"""Release reports (blueprint collection `reports`): the inputs, the job state and the published files.

Blueprint field → model field: `suiteId` → `suite` (empty = all suites), `releaseCandidate` → `release_candidate`,
`summary` → `summary`, `pdfUrl`/`docUrl` → `pdf_file`/`docx_file` (storage names; downloads go through signed,
user-bound URLs, never a public URL), `generatedBy` → `generated_by`, `generatedAt` → `generated_at`,
`status` → `status`. A report is a job record: progress, stage, error, attempts, and the AI model and cost.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from releases.models import ReleaseCandidate, TestSuite


class ReportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Generating"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class SummarySource(models.TextChoices):
    AI = "ai", "AI narrative"
    FALLBACK = "fallback", "Generated without AI"


class ReportEdition(models.TextChoices):
    SHORT = "short", "Short (cover and one-page executive summary)"
    FULL = "full", "Full (with breakdowns, failures and the appendix of every case)"


class Report(models.Model):
    # Inputs
    edition = models.CharField(max_length=8, choices=ReportEdition.choices, default=ReportEdition.FULL)
    suite = models.ForeignKey(TestSuite, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    release_candidate = models.ForeignKey(ReleaseCandidate, on_delete=models.PROTECT, related_name="+")
    baseline = models.ForeignKey(
        ReleaseCandidate,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="RC compared against; empty = the previous RC.",
    )
    # Names copied at request time: the report stays readable if a suite or RC is renamed or removed.
    suite_name = models.CharField(max_length=300, blank=True)
    release_candidate_name = models.CharField(max_length=64)
    baseline_name = models.CharField(max_length=64, blank=True)

    # Job state
    status = models.CharField(max_length=16, choices=ReportStatus.choices, default=ReportStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    stage = models.CharField(max_length=120, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The delivery currently allowed to write (fencing token): a duplicate or stale delivery loses its claim.
    lease_token = models.CharField(max_length=32, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    # Results
    figures = models.JSONField(default=dict, blank=True)
    summary = models.TextField(blank=True)
    narrative = models.JSONField(default=dict, blank=True)
    summary_source = models.CharField(max_length=16, choices=SummarySource.choices, blank=True)
    summary_note = models.CharField(max_length=300, blank=True)
    ai_provider = models.CharField(max_length=64, blank=True)
    ai_model = models.CharField(max_length=120, blank=True)
    ai_prompt_tokens = models.PositiveIntegerField(default=0)
    ai_completion_tokens = models.PositiveIntegerField(default=0)
    ai_cost = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    ai_usage_log_id = models.CharField(max_length=24, blank=True)
    pdf_file = models.FileField(max_length=300, blank=True)
    docx_file = models.FileField(max_length=300, blank=True)
    pdf_size = models.PositiveBigIntegerField(default=0)
    docx_size = models.PositiveBigIntegerField(default=0)

    generated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    generated_at = models.DateTimeField(null=True, blank=True, help_text="When the files were published.")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "reports"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["-created_at"], name="report_created"),
            models.Index(fields=["release_candidate", "-created_at"], name="report_rc_created"),
            models.Index(fields=["status", "lease_expires_at"], name="report_status_lease"),
        ]

    def __str__(self) -> str:
        return f"Report {self.release_candidate_name} / {self.scope_label}"

    @property
    def scope_label(self) -> str:
        return self.suite_name or "All suites"

    @property
    def is_terminal(self) -> bool:
        return self.status in (ReportStatus.READY, ReportStatus.FAILED)
