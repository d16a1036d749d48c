from django.contrib import admin

from ai_assist.models import AiBatchItem, AiBatchJob, AiUsageLog


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
