"""JSON endpoints of the releases app, mounted under /api/v1 by report_platform/api.py. Thin: parse, call one
service or selector, shape the answer. Roles are enforced by the services (writes) and `require_role` (reads)."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Field as NinjaField
from ninja import Query, Router, Schema, Status

from accounts.permissions import require_role
from releases import selectors, services
from releases.schemas import CaseIn, CaseOut, CasePageOut, CasePatch, QualityOut, RunIn, RunOut
from report_platform.errors import ValidationFailed

router = Router(tags=["releases"])


class CaseListQuery(Schema):
    suite: str = NinjaField("", max_length=24, description="Suite id.")
    category: str = NinjaField("", max_length=100)
    owner: str = NinjaField("", max_length=150)
    rc: str = NinjaField("", max_length=64, description="RC name or id; rows then carry the latest run in it.")
    status: str = NinjaField("", max_length=16, description="pass, fail, pending or not_run (needs rc).")
    search: str = NinjaField("", max_length=100, description="Case-insensitive text in key, title or task.")
    sort: str = NinjaField("key", max_length=16, description="key, -key, title, -title, priority, -priority, ...")
    cursor: str = NinjaField("", max_length=400, description="`next_cursor` of the previous page.")
    limit: int = NinjaField(50, ge=1, le=200, description="Page size (capped at 200).")
    include_deleted: bool = False


class QualityQuery(Schema):
    rc: str = NinjaField("", max_length=64, description="RC name or id; default: the newest RC in testing.")
    baseline: str = NinjaField("", max_length=64, description="RC to compare with; default: the previous RC.")
    suite: str = NinjaField("", max_length=24)
    trend_limit: int = NinjaField(10, ge=1, le=100)
    delta: bool = NinjaField(True, description="Include the RC-to-RC delta lists.")


def _filters(query: CaseListQuery, user) -> selectors.CaseFilters:
    if query.include_deleted:
        require_role(user, "admin")
    return selectors.CaseFilters(
        suite=selectors.suite_get(suite_id=query.suite) if query.suite else None,
        category=query.category,
        owner=query.owner,
        release_candidate=selectors.release_candidate_by_name_or_id(value=query.rc) if query.rc else None,
        status=query.status,
        search=query.search,
        include_deleted=query.include_deleted,
    )


@router.get("/tests", response=CasePageOut, url_name="test_list", summary="List cases (filters, keyset pages)")
def test_list(request: HttpRequest, query: Query[CaseListQuery]):
    """Cases matching the filters, `limit` per page; follow `next_cursor` for the next page."""
    require_role(request.user, "viewer")
    page = selectors.case_list(
        filters=_filters(query, request.user), sort=query.sort, cursor=query.cursor or None, limit=query.limit
    )
    return {
        "items": [CaseOut.of(row["case"], row["run"]) for row in page.rows],
        "next_cursor": page.next_cursor,
        "limit": page.limit,
        "sort": page.sort,
    }


@router.post("/tests", response={201: CaseOut}, url_name="test_list", summary="Create a case")
def test_create(request: HttpRequest, payload: CaseIn):
    suite = selectors.suite_get(suite_id=payload.suite)
    data = payload.model_dump()
    data.pop("suite")
    case = services.case_create(suite=suite, **data, actor=request.user, request=request)
    return Status(201, CaseOut.of(case))


@router.get("/tests/{case_id}", response=CaseOut, url_name="test_detail", summary="One case")
def test_detail(request: HttpRequest, case_id: str):
    require_role(request.user, "viewer")
    return CaseOut.of(selectors.case_get(case_id=case_id))


@router.patch("/tests/{case_id}", response=CaseOut, url_name="test_detail", summary="Change some fields of a case")
def test_update(request: HttpRequest, case_id: str, payload: CasePatch):
    case = selectors.case_get(case_id=case_id)
    changes = payload.model_dump(exclude_unset=True)
    if any(value is None for value in changes.values()):
        raise ValidationFailed(
            code="null_field", fields={name: ["May not be null."] for name, value in changes.items() if value is None}
        )
    if "suite" in changes:
        changes["suite"] = selectors.suite_get(suite_id=changes["suite"])
    case = services.case_update(case=case, actor=request.user, request=request, **changes)
    return CaseOut.of(selectors.case_get(case_id=str(case.pk)))


@router.delete("/tests/{case_id}", response={204: None}, url_name="test_detail", summary="Soft-delete a case (admin)")
def test_delete(request: HttpRequest, case_id: str):
    case = selectors.case_get(case_id=case_id)
    services.case_delete(case=case, actor=request.user, request=request)
    return Status(204, None)


@router.post("/tests/{case_id}/runs", response={201: RunOut}, url_name="test_run_create", summary="Record a run")
def test_run_create(request: HttpRequest, case_id: str, payload: RunIn):
    """Append a run (status, Mantis ids, notes) of the case for an RC; it becomes the case's status in that RC."""
    case = selectors.case_get(case_id=case_id)
    rc = selectors.release_candidate_by_name_or_id(value=payload.rc)
    run = services.test_run_record(
        case=case,
        release_candidate=rc,
        status=payload.status,
        mantis_ids=payload.mantis_ids,
        notes=payload.notes,
        executed_at=payload.executed_at,
        actor=request.user,
        request=request,
    )
    return Status(201, RunOut.of(run))


@router.get("/metrics/quality", response=QualityOut, url_name="metrics_quality", summary="Quality metrics of an RC")
def metrics_quality(request: HttpRequest, query: Query[QualityQuery]):
    """Counts and pass rates by RC (trend), owner, category and suite; the delta to the baseline RC; the gate."""
    require_role(request.user, "viewer")
    rc = (
        selectors.release_candidate_by_name_or_id(value=query.rc) if query.rc else selectors.release_candidate_current()
    )
    if rc is None:
        raise ValidationFailed("There are no RCs yet.", code="no_release_candidate")
    suite = selectors.suite_get(suite_id=query.suite) if query.suite else None
    baseline = selectors.release_candidate_by_name_or_id(value=query.baseline) if query.baseline else None
    summary = selectors.quality_summary(release_candidate=rc, suite=suite)
    return {
        **summary,
        "trend": selectors.pass_rate_trend(suite=suite, limit=query.trend_limit),
        "delta": selectors.rc_delta(release_candidate=rc, baseline=baseline, suite=suite) if query.delta else None,
        "gate": selectors.release_gate(release_candidate=rc, suite=suite),
    }
