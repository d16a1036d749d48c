"""Django admin for release data. Every write goes through `releases.services` (validation, summaries, audit);
runs and summary documents are read-only history."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from releases import services
from releases.models import KnownIssue, QualitySummary, ReleaseCandidate, TestCase, TestRun, TestSuite
from report_platform.errors import DomainError


def _report(modeladmin: admin.ModelAdmin, request: HttpRequest, error: DomainError) -> None:
    details = "; ".join(f"{field}: {' '.join(messages_)}" for field, messages_ in error.fields.items())
    modeladmin.message_user(request, f"{error.message} {details}".strip(), level=messages.ERROR)


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class RunInline(ReadOnlyMixin, admin.TabularInline):
    model = TestRun
    fk_name = "case"
    fields = ["release_candidate", "status", "is_latest", "executed_at", "executed_by", "mantis_ids", "notes"]
    readonly_fields = fields
    ordering = ["-executed_at"]
    extra = 0
    show_change_link = True


@admin.register(TestSuite)
class TestSuiteAdmin(admin.ModelAdmin):
    list_display = ["name", "product", "created_by", "created_at", "updated_at"]
    list_filter = ["product"]
    search_fields = ["name", "product", "description"]
    readonly_fields = ["created_by", "created_at", "updated_at"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # suites are kept: their cases and runs reference them

    def save_model(self, request, obj, form, change):
        try:
            if change:
                services.suite_update(
                    suite=TestSuite.objects.get(pk=obj.pk),
                    name=obj.name,
                    product=obj.product,
                    description=obj.description,
                    actor=request.user,
                    request=request,
                )
            else:
                created = services.suite_create(
                    name=obj.name, product=obj.product, description=obj.description, actor=request.user, request=request
                )
                obj.pk = created.pk
        except DomainError as error:
            _report(self, request, error)


class ProductAssignedFilter(admin.SimpleListFilter):
    """RCs that migration 0006 could not give a product (their runs span several products, or none) until an
    admin picks one; then per product."""

    title = "product"
    parameter_name = "product"
    NONE = "__none__"

    def lookups(self, request, model_admin):
        from releases.selectors import products_list

        return [(self.NONE, "Without a product"), *((product, product) for product in products_list())]

    def queryset(self, request, queryset):
        value = self.value()
        if value == self.NONE:
            return queryset.filter(product="")
        if value:
            return queryset.filter(product=value)
        return queryset


@admin.register(ReleaseCandidate)
class ReleaseCandidateAdmin(admin.ModelAdmin):
    list_display = ["name", "product", "sequence", "state", "created_at"]
    list_filter = [ProductAssignedFilter, "state"]
    search_fields = ["name", "product"]
    ordering = ["sequence"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # runs reference RCs; mark an RC rejected instead

    def get_readonly_fields(self, request, obj=None):
        return ["sequence", "created_at"] if obj is not None else ["created_at"]

    def save_model(self, request, obj, form, change):
        try:
            if change:
                services.release_candidate_update(
                    release_candidate=ReleaseCandidate.objects.get(pk=obj.pk),
                    name=obj.name,
                    state=obj.state,
                    product=obj.product,
                    actor=request.user,
                    request=request,
                )
            else:
                created = services.release_candidate_create(
                    name=obj.name,
                    product=obj.product,
                    sequence=obj.sequence,
                    state=obj.state,
                    actor=request.user,
                    request=request,
                )
                obj.pk = created.pk
        except DomainError as error:
            _report(self, request, error)


@admin.register(TestCase)
class TestCaseAdmin(admin.ModelAdmin):
    list_display = ["key", "title", "suite", "category", "owner", "priority", "is_deleted", "updated_at"]
    list_filter = ["is_deleted", "priority", "suite", "category"]
    search_fields = ["key", "title", "owner", "task"]
    readonly_fields = ["is_deleted", "deleted_at", "created_by", "created_at", "updated_at"]
    list_select_related = ["suite"]
    inlines = [RunInline]
    actions = ["soft_delete_selected", "restore_selected"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # soft delete only, through the actions below

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def save_model(self, request, obj, form, change):
        try:
            if change:
                stored = TestCase.objects.get(pk=obj.pk)
                changes = {
                    name: getattr(obj, name) for name in form.changed_data if name in services.CASE_EDITABLE_FIELDS
                }
                services.case_update(case=stored, actor=request.user, request=request, **changes)
            else:
                created = services.case_create(
                    suite=obj.suite,
                    key=obj.key,
                    title=obj.title,
                    category=obj.category,
                    owner=obj.owner,
                    task=obj.task,
                    priority=obj.priority,
                    tags=obj.tags,
                    actor=request.user,
                    request=request,
                )
                obj.pk = created.pk
        except DomainError as error:
            _report(self, request, error)

    @admin.action(description="Soft-delete the selected cases")
    def soft_delete_selected(self, request: HttpRequest, queryset: QuerySet[TestCase]) -> None:
        done = 0
        for case in queryset.filter(is_deleted=False):
            try:
                services.case_delete(case=case, actor=request.user, request=request)
                done += 1
            except DomainError as error:
                _report(self, request, error)
        self.message_user(request, f"{done} case(s) deleted.")

    @admin.action(description="Restore the selected cases")
    def restore_selected(self, request: HttpRequest, queryset: QuerySet[TestCase]) -> None:
        done = 0
        for case in queryset.filter(is_deleted=True):
            try:
                services.case_restore(case=case, actor=request.user, request=request)
                done += 1
            except DomainError as error:
                _report(self, request, error)
        self.message_user(request, f"{done} case(s) restored.")


@admin.register(TestRun)
class TestRunAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "case",
        "release_candidate",
        "status",
        "is_latest",
        "owner",
        "category",
        "executed_at",
        "executed_by",
    ]
    list_filter = ["status", "is_latest", "release_candidate"]
    search_fields = ["owner", "category", "notes"]
    list_select_related = ["case", "release_candidate", "executed_by"]
    date_hierarchy = None

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff


@admin.register(QualitySummary)
class QualitySummaryAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["release_candidate", "suite", "dimension", "key", "pass_count", "fail_count", "pending_count"]
    list_filter = ["dimension", "release_candidate"]
    search_fields = ["key"]
    actions = ["rebuild"]

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description="Rebuild the summaries of the selected rows' RCs from the raw runs")
    def rebuild(self, request: HttpRequest, queryset: QuerySet[QualitySummary]) -> None:
        rc_ids = sorted({row.release_candidate_id for row in queryset}, key=str)
        services.summaries_rebuild(release_candidate_ids=rc_ids)
        self.message_user(request, f"Rebuilt the summaries of {len(rc_ids)} RC(s).")


@admin.register(KnownIssue)
class KnownIssueAdmin(admin.ModelAdmin):
    """Failure signatures linked to a Mantis id. Linking goes through `services.known_issue_link` (one link per
    product and signature), unlinking through `services.known_issue_unlink`; a link is not edited in place (unlink
    and link again), so every change is one audit event."""

    list_display = ["product", "signature", "mantis_id", "created_by", "created_at"]
    list_filter = ["product"]
    search_fields = ["product", "signature"]  # and the Mantis id, exactly (get_search_results)
    fields = ["product", "signature", "mantis_id", "created_by", "created_at"]
    readonly_fields = ["created_by", "created_at"]
    list_select_related = ["created_by"]
    ordering = ["product", "signature"]

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)  # the list, not an edit form

    def get_search_results(self, request, queryset, search_term):
        # Django's "=mantis_id" is an `iexact` (a regex on MongoDB) that never matches a number: look it up here.
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip().lstrip("#")
        if term.isdigit() and len(term) < 12:
            found = found | queryset.filter(mantis_id=int(term))
        return found, may_have_duplicates

    def save_model(self, request, obj, form, change):
        try:
            created = services.known_issue_link(
                product=obj.product,
                signature=obj.signature,
                mantis_id=obj.mantis_id,
                actor=request.user,
                request=request,
            )
            obj.pk = created.pk
        except DomainError as error:
            _report(self, request, error)

    def delete_model(self, request, obj):
        try:
            services.known_issue_unlink(issue=obj, actor=request.user, request=request)
        except DomainError as error:
            _report(self, request, error)

    def delete_queryset(self, request, queryset):
        for issue in queryset:
            self.delete_model(request, issue)
