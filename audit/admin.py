"""The Django admin shows the audit trail read-only: no add, change, delete, or bulk actions."""

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["sequence", "created_at", "action", "outcome", "actor_email", "resource", "ip"]
    list_filter = ["outcome", "action"]
    search_fields = ["actor_email", "action", "resource", "request_id"]
    ordering = ["-sequence"]
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
