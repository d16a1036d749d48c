"""AI assistance data: one usage log per call (blueprint `aiUsageLogs`), dated model prices, budgets, batch jobs.

`aiUsageLogs` expires after 90 days through a TTL index on `created_at` (created in migration 0002).
Quota and budget counters live in Redis, reserved and settled by Lua scripts (ai_assist/quotas.py), re-seeded from
the logs. Money is exact: costs are integer nano-dollars (1e-9 USD), rates integer nano-dollars per million tokens.
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
    # Token kinds (ai_assist/pricing.py normalises each provider's usage shape to these): `prompt_tokens` is every
    # input token and includes the cache reads and cache writes; `completion_tokens` includes the reasoning tokens.
    prompt_tokens = models.PositiveIntegerField(default=0)
    cached_prompt_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    cost_nano = models.BigIntegerField(default=0, help_text="What the call cost, in nano-dollars (exact).")
    cost_usd = models.FloatField(default=0.0, help_text="cost_nano / 1e9, for display and older readers.")
    # The price the call was made at, copied from AiModelPrice when it was admitted: the row keeps it forever.
    price_id = models.CharField(max_length=24, blank=True)
    price_valid_from = models.DateTimeField(null=True, blank=True)
    price_rates = models.JSONField(default=dict, blank=True, help_text="Nano-dollars per million tokens, by kind.")
    price_prompt_per_1k = models.FloatField(default=0.0)
    price_completion_per_1k = models.FloatField(default=0.0)
    reserved_tokens = models.PositiveIntegerField(default=0)
    reserved_cost_nano = models.BigIntegerField(default=0)
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
            models.Index(fields=["role", "created_at"], name="ailog_role_created"),
            models.Index(fields=["template_id", "created_at"], name="ailog_template_created"),
        ]

    def __str__(self) -> str:
        return f"{self.task_id} {self.model} {self.outcome}"


class TokenKind(models.TextChoices):
    PROMPT = "prompt", "Prompt (not cached)"
    CACHED_PROMPT = "cached_prompt", "Cached prompt (cache read)"
    CACHE_WRITE = "cache_write", "Cache write"
    COMPLETION = "completion", "Completion (not reasoning)"
    REASONING = "reasoning", "Reasoning"


class AiModelPrice(models.Model):
    """The rates of one provider/model from `valid_from` on, until a later row of the same model takes over.

    Rates are integer nano-dollars per million tokens (USD 0.15 per 1M tokens = 150_000_000), so prices quoted to
    any fraction of a cent per million stay exact. Edited in the Django admin; seeded from settings.AI_MODEL_PRICES
    (ai_assist/pricing.py `price_table_seed`). A call is priced at the row valid when it was admitted and the usage
    row keeps a copy, so editing or adding a price never changes what past calls cost."""

    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=64)
    valid_from = models.DateTimeField(default=timezone.now)
    prompt_nano_per_mtok = models.PositiveBigIntegerField("prompt", default=0)
    cached_prompt_nano_per_mtok = models.PositiveBigIntegerField("cached prompt (read)", default=0)
    cache_write_nano_per_mtok = models.PositiveBigIntegerField("cache write", default=0)
    completion_nano_per_mtok = models.PositiveBigIntegerField("completion", default=0)
    reasoning_nano_per_mtok = models.PositiveBigIntegerField("reasoning", default=0)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "aiModelPrices"
        ordering = ["provider", "model", "-valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "model", "valid_from"], name="aiprice_unique_valid_from")
        ]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model} from {self.valid_from:%Y-%m-%d %H:%M}"

    def rates(self) -> dict[str, int]:
        """Nano-dollars per million tokens by token kind."""
        return {kind: int(getattr(self, f"{kind}_nano_per_mtok")) for kind in TokenKind.values}


class BudgetScope(models.TextChoices):
    ROLE = "role", "Role (all its users together)"
    RELEASE_CANDIDATE = "release_candidate", "Release candidate"
    TEMPLATE = "template", "Task template"


class BudgetPeriod(models.TextChoices):
    DAY = "day", "Day (UTC)"
    MONTH = "month", "Month (UTC)"
    TOTAL = "total", "Total (never resets)"


class AiBudget(models.Model):
    """A pooled spending ceiling above the per-user quotas: for a role, a release candidate or a task template.

    Reserved atomically before each call with the user's quota (ai_assist/quotas.py); admins are mailed at 80 % and
    at 100 % once per budget and period. Edited in the Django admin; changes apply within AI_CONFIG_CACHE_SECONDS."""

    name = models.CharField(max_length=80, unique=True, help_text="Shown in refusals, e-mails and metrics.")
    scope = models.CharField(max_length=24, choices=BudgetScope.choices)
    role = models.CharField(max_length=16, blank=True, help_text="For a role budget: viewer, reviewer or admin.")
    release_candidate = models.ForeignKey(
        "releases.ReleaseCandidate", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    template_id = models.CharField(max_length=64, blank=True, help_text="For a task template budget.")
    period = models.CharField(max_length=8, choices=BudgetPeriod.choices, default=BudgetPeriod.MONTH)
    limit_nano = models.PositiveBigIntegerField(help_text="The ceiling in nano-dollars (USD 1 = 1_000_000_000).")
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "aiBudgets"
        ordering = ["scope", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def target(self) -> str:
        """What the budget applies to: the role, the RC's id or the template id."""
        if self.scope == BudgetScope.ROLE:
            return self.role
        if self.scope == BudgetScope.RELEASE_CANDIDATE:
            return str(self.release_candidate_id or "")
        return self.template_id


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
