"""Import jobs in the Django admin: read-only (jobs change only through the services)."""

from django.contrib import admin

from imports.models import ImportJob


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ("filename", "status", "created_by", "total", "processed", "error_count", "attempts", "created_at")
    list_filter = ("status",)
    search_fields = ("filename", "file_sha256")
    exclude = ("preview", "mapping")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
