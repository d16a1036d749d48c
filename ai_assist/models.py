"""AI assistance data: one usage log per call (blueprint `aiUsageLogs`), quota counters, batch jobs.

`aiUsageLogs` expires after 90 days through a TTL index on `created_at` (created in migration 0002).
Quota counters live in Redis, reserved and settled by Lua scripts (ai_assist/quotas.py), re-seeded from the logs.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Outcome(models.TextChoices):
    SUCCESS = "success", "Success"
    REFUSED = "refused", "Refused"  # quota or open circuit: the provider was not called
    FAILED = "failed", "Failed"  # the provider was called and failed (after retries)


class UsageLogManager(models.Manager):
    """Read-your-writes: rows still queued in Redis (ai_assist/usage_buffer.py) are moved to MongoDB before any
    queryset is built, so pages, the API, the admin, quota seeding and exports see every call made so far."""

    def get_queryset(self):
        from ai_assist import usage_buffer

        usage_buffer.flush_quietly()
        return super().get_queryset()


class AiUsageLog(models.Model):
    """One row per AI call, whatever the outcome. Prompt and response are stored redacted and truncated.

    The gateway writes rows through a Redis list that is drained in batches (ai_assist/usage_buffer.py)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    user_email = models.CharField(max_length=254, blank=True)
    role = models.CharField(max_length=16, blank=True)
    task_id = models.CharField(max_length=100, db_index=True)
    template_id = models.CharField(max_length=64)
    template_version = models.PositiveIntegerField(default=1)
    release_candidate = models.ForeignKey(
        "releases.ReleaseCandidate", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    release_candidate_name = models.CharField(max_length=64, blank=True)
    subject = models.CharField(max_length=80, blank=True, help_text='What the call was about, e.g. "run:<id>".')
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=64)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.FloatField(default=0.0)
    price_prompt_per_1k = models.FloatField(default=0.0)
    price_completion_per_1k = models.FloatField(default=0.0)
    reserved_tokens = models.PositiveIntegerField(default=0)
    reserved_cost_usd = models.FloatField(default=0.0)
    latency_ms = models.FloatField(default=0.0)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    streamed = models.BooleanField(default=False)
    prompt_redacted = models.TextField(blank=True)
    response_redacted = models.TextField(blank=True)
    redactions = models.JSONField(default=dict, blank=True)
    batch_id = models.CharField(max_length=24, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = UsageLogManager()

    class Meta:
        db_table = "aiUsageLogs"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "created_at"], name="ailog_user_created"),
            models.Index(fields=["release_candidate", "created_at"], name="ailog_rc_created"),
            models.Index(fields=["model", "created_at"], name="ailog_model_created"),
        ]

    def __str__(self) -> str:
        return f"{self.task_id} {self.model} {self.outcome}"


class BatchStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIAL = "partial", "Partial (quota or provider stopped it)"
    FAILED = "failed", "Failed"


class AiBatchJob(models.Model):
    """One task template run over many items (e.g. triage every failed run of an RC). Jobs are data."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    task = models.CharField(max_length=40)
    release_candidate = models.ForeignKey("releases.ReleaseCandidate", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=BatchStatus.choices, default=BatchStatus.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "aiBatchJobs"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.task} @ {self.release_candidate_id}: {self.status}"

    @property
    def progress_percent(self) -> int:
        return int(100 * (self.done + self.failed) / self.total) if self.total else 100


class BatchItemStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class AiBatchItem(models.Model):
    """One item of a batch; claimed with a conditional update so a redelivered job never repeats an item."""

    batch = models.ForeignKey(AiBatchJob, on_delete=models.CASCADE, related_name="items")
    run = models.ForeignKey("releases.TestRun", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=BatchItemStatus.choices, default=BatchItemStatus.PENDING)
    text = models.TextField(blank=True)
    error = models.CharField(max_length=500, blank=True)
    usage_log_id = models.CharField(max_length=24, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "aiBatchItems"
        constraints = [models.UniqueConstraint(fields=["batch", "run"], name="aibatch_unique_run")]

    def __str__(self) -> str:
        return f"{self.batch_id}/{self.run_id}: {self.status}"
