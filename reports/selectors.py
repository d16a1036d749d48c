"""Reads of the reports app."""

from __future__ import annotations

from dataclasses import dataclass

from bson import ObjectId
from django.db.models import QuerySet

from releases import selectors as releases_selectors
from report_platform.errors import NotFound
from reports.models import Report, ReportStatus

PAGE_SIZE = 50


def report_get(*, report_id: str) -> Report:
    """The report with this 24-hex id, or `NotFound` (also for malformed ids)."""
    if not ObjectId.is_valid(str(report_id or "")):
        raise NotFound("That report does not exist.", code="report_not_found")
    report = Report.objects.select_related("generated_by").filter(pk=ObjectId(str(report_id))).first()
    if report is None:
        raise NotFound("That report does not exist.", code="report_not_found")
    return report


@dataclass
class ReportFilters:
    product: str | None = None  # only reports of this product's RCs (None: every product)
    release_candidate: str = ""  # RC id
    suite: str = ""  # suite id, or "all" for all-suites reports
    status: str = ""
    mine_of: object = None  # a user: only their reports
    before: str = ""  # keyset cursor: the id of the last report of the previous page


def report_list(*, filters: ReportFilters, limit: int = PAGE_SIZE) -> tuple[list[Report], str | None]:
    """Newest reports first matching the filters, one page (keyset on the ObjectId, which grows with time).
    Returns (reports, cursor of the next page or None). Malformed ids in filters match nothing."""
    queryset: QuerySet[Report] = Report.objects.select_related("generated_by").order_by("-pk")
    if filters.product is not None:
        rc_ids = releases_selectors.release_candidate_ids(product=filters.product)
        queryset = queryset.filter(release_candidate_id__in=rc_ids)
    if filters.release_candidate:
        if not ObjectId.is_valid(filters.release_candidate):
            return [], None
        queryset = queryset.filter(release_candidate_id=ObjectId(filters.release_candidate))
    if filters.suite == "all":
        queryset = queryset.filter(suite__isnull=True)
    elif filters.suite:
        if not ObjectId.is_valid(filters.suite):
            return [], None
        queryset = queryset.filter(suite_id=ObjectId(filters.suite))
    if filters.status in ReportStatus.values:
        queryset = queryset.filter(status=filters.status)
    if filters.mine_of is not None:
        queryset = queryset.filter(generated_by=filters.mine_of)
    if filters.before and ObjectId.is_valid(filters.before):
        queryset = queryset.filter(pk__lt=ObjectId(filters.before))
    limit = max(1, min(int(limit), 200))
    rows = list(queryset[: limit + 1])
    cursor = str(rows[limit - 1].pk) if len(rows) > limit else None
    return rows[:limit], cursor
