from decimal import Decimal

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from ai_assist.budgets import budget_cache_clear
from ai_assist.models import AiBatchItem, AiBatchJob, AiBudget, AiModelPrice, AiUsageLog, BudgetScope, TokenKind
from ai_assist.pricing import nano_to_usd_text, price_cache_clear, usd_to_nano


@admin.register(AiUsageLog)
class AiUsageLogAdmin(admin.ModelAdmin):
    """Usage logs are the accountability record: readable, never edited by hand."""

    list_display = (
        "created_at",
        "user_email",
        "task_id",
        "release_candidate_name",
        "model",
        "outcome",
        "total_tokens",
        "cost_usd",
        "latency_ms",
    )
    list_filter = ("outcome", "model", "provider", "task_id")
    search_fields = ("user_email", "task_id", "release_candidate_name")
    readonly_fields = ("price_rates", "price_id", "price_valid_from", "cost_nano")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # they expire through the TTL index, never by hand


class AiBatchItemInline(admin.TabularInline):
    model = AiBatchItem
    extra = 0
    readonly_fields = ("run", "status", "error", "usage_log_id", "updated_at")
    fields = readonly_fields


@admin.register(AiBatchJob)
class AiBatchJobAdmin(admin.ModelAdmin):
    list_display = ("created_at", "user", "task", "release_candidate", "status", "total", "done", "failed")
    list_filter = ("status", "task")
    inlines = [AiBatchItemInline]


def _usd_field(label: str, *, required: bool = True) -> forms.DecimalField:
    return forms.DecimalField(label=label, min_value=Decimal(0), max_digits=18, decimal_places=9, required=required)


class AiModelPriceForm(forms.ModelForm):
    """Rates are entered in USD per million tokens and stored exactly as integer nano-dollars per million tokens."""

    class Meta:
        model = AiModelPrice
        fields = ("provider", "model", "valid_from", "note")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for kind, label in TokenKind.choices:
            field = _usd_field(f"{label}: USD per 1M tokens")
            field.help_text = {
                "cached_prompt": "Prompt tokens read from the provider's cache.",
                "cache_write": "Prompt tokens written to the provider's cache.",
                "reasoning": "Reasoning tokens (part of the completion); usually the completion rate.",
            }.get(kind, "")
            self.fields[f"{kind}_usd_per_mtok"] = field
            if self.instance.pk:
                field.initial = Decimal(nano_to_usd_text(getattr(self.instance, f"{kind}_nano_per_mtok")))

    def clean(self):
        cleaned = super().clean()
        for kind in TokenKind.values:
            value = cleaned.get(f"{kind}_usd_per_mtok")
            if value is None:
                continue
            try:
                setattr(self.instance, f"{kind}_nano_per_mtok", usd_to_nano(value))
            except ValueError as error:
                self.add_error(f"{kind}_usd_per_mtok", str(error))
        return cleaned


@admin.register(AiModelPrice)
class AiModelPriceAdmin(admin.ModelAdmin):
    """Dated prices. Add a row with a later `valid_from` to change a price: calls keep the price they were made at."""

    form = AiModelPriceForm
    list_display = (
        "provider",
        "model",
        "valid_from",
        "prompt",
        "cached_prompt",
        "cache_write",
        "completion",
        "reasoning",
    )
    list_filter = ("provider", "model")
    ordering = ("provider", "model", "-valid_from")

    def _rate(self, obj: AiModelPrice, kind: str) -> str:
        return nano_to_usd_text(getattr(obj, f"{kind}_nano_per_mtok"), 4)

    @admin.display(description="prompt $/1M")
    def prompt(self, obj):
        return self._rate(obj, "prompt")

    @admin.display(description="cached prompt $/1M")
    def cached_prompt(self, obj):
        return self._rate(obj, "cached_prompt")

    @admin.display(description="cache write $/1M")
    def cache_write(self, obj):
        return self._rate(obj, "cache_write")

    @admin.display(description="completion $/1M")
    def completion(self, obj):
        return self._rate(obj, "completion")

    @admin.display(description="reasoning $/1M")
    def reasoning(self, obj):
        return self._rate(obj, "reasoning")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        price_cache_clear()  # this process at once; the others within AI_CONFIG_CACHE_SECONDS

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        price_cache_clear()


class AiBudgetForm(forms.ModelForm):
    """The limit is entered in USD and stored as integer nano-dollars; the scope decides which target is required."""

    limit_usd = _usd_field("Limit (USD)")

    class Meta:
        model = AiBudget
        fields = ("name", "scope", "role", "release_candidate", "template_id", "period", "enabled")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["limit_usd"].initial = Decimal(nano_to_usd_text(self.instance.limit_nano))

    def clean(self):
        from accounts.models import Role
        from ai_assist.prompts import TEMPLATES

        cleaned = super().clean()
        scope = cleaned.get("scope")
        if scope == BudgetScope.ROLE and cleaned.get("role") not in Role.values:
            self.add_error("role", f"A role budget needs one of: {', '.join(Role.values)}.")
        if scope == BudgetScope.RELEASE_CANDIDATE and not cleaned.get("release_candidate"):
            self.add_error("release_candidate", "A release candidate budget needs its RC.")
        if scope == BudgetScope.TEMPLATE and cleaned.get("template_id") not in TEMPLATES:
            self.add_error("template_id", f"A task template budget needs one of: {', '.join(sorted(TEMPLATES))}.")
        # Only the field of the scope is kept, so a budget never matches on a stale target.
        if scope != BudgetScope.ROLE:
            cleaned["role"] = ""
        if scope != BudgetScope.RELEASE_CANDIDATE:
            cleaned["release_candidate"] = None
        if scope != BudgetScope.TEMPLATE:
            cleaned["template_id"] = ""
        if cleaned.get("limit_usd") is not None:
            try:
                self.instance.limit_nano = usd_to_nano(cleaned["limit_usd"])
            except ValueError as error:
                raise ValidationError({"limit_usd": str(error)}) from error
        return cleaned


@admin.register(AiBudget)
class AiBudgetAdmin(admin.ModelAdmin):
    """Pooled budgets. Changes apply within AI_CONFIG_CACHE_SECONDS in every process."""

    form = AiBudgetForm
    list_display = ("name", "scope", "target_display", "period", "limit", "enabled")
    list_filter = ("scope", "period", "enabled")

    @admin.display(description="applies to")
    def target_display(self, obj: AiBudget) -> str:
        return str(obj.release_candidate) if obj.release_candidate_id else obj.target

    @admin.display(description="limit (USD)")
    def limit(self, obj: AiBudget) -> str:
        return nano_to_usd_text(obj.limit_nano, 2)

    def save_model(self, request, obj, form, change):
        from django.utils import timezone

        obj.updated_at = timezone.now()
        super().save_model(request, obj, form, change)
        budget_cache_clear()

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        budget_cache_clear()
