from django.contrib import admin

from reports import services
from reports.models import Report


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ("release_candidate_name", "suite_name", "status", "progress", "generated_by", "created_at")
    list_filter = ("status", "summary_source")
    search_fields = ("release_candidate_name", "suite_name")
    ordering = ("-created_at",)
    readonly_fields = [field.name for field in Report._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # reports are generated from the reports page or the API

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def delete_model(self, request, obj) -> None:
        services.report_delete(report=obj, actor=request.user, request=request)

    def delete_queryset(self, request, queryset) -> None:
        for report in queryset:
            services.report_delete(report=report, actor=request.user, request=request)
