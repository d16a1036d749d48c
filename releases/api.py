"""JSON endpoints of the releases app, mounted under /api/v1 by report_platform/api.py. Thin: parse, call one
service or selector, shape the answer. Roles are enforced by the services (writes) and `require_role` (reads)."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Field as NinjaField
from ninja import Query, Router, Schema, Status

from accounts.api_auth import CI_AUTH
from accounts.permissions import require_role
from releases import product_scope, selectors, services
from releases.models import TestCase
from releases.schemas import (
    BulkRunsIn,
    BulkRunsOut,
    CaseIn,
    CaseOut,
    CasePageOut,
    CasePatch,
    QualityOut,
    ReleaseCandidateIn,
    ReleaseCandidateOut,
    RunIn,
    RunOut,
)
from report_platform.errors import ValidationFailed

router = Router(tags=["releases"])


class CaseListQuery(Schema):
    suite: str = NinjaField("", max_length=24, description="Suite id.")
    category: str = NinjaField("", max_length=100)
    owner: str = NinjaField("", max_length=150)
    rc: str = NinjaField("", max_length=64, description="RC name or id; rows then carry the latest run in it.")
    status: str = NinjaField("", max_length=16, description="pass, fail, pending or not_run (needs rc).")
    search: str = NinjaField("", max_length=100, description="Case-insensitive text in key, title or task.")
    sort: str = NinjaField(
        "key",
        max_length=16,
        description="key, -key, priority, -priority (most critical first: P1, P2, ...), updated, -updated.",
    )
    cursor: str = NinjaField("", max_length=400, description="`next_cursor` of the previous page.")
    limit: int = NinjaField(50, ge=1, le=200, description="Page size (capped at 200).")
    include_deleted: bool = False


class QualityQuery(Schema):
    product: str = NinjaField(
        "",
        max_length=120,
        description="Product whose current RC to show (its newest RC in testing, else its newest); ignored when rc "
        "is given. Default: the product of the newest RC in testing.",
    )
    rc: str = NinjaField("", max_length=64, description="RC name or id; default: the product's current RC.")
    baseline: str = NinjaField(
        "", max_length=64, description="RC of the same product to compare with; default: its previous RC."
    )
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
    if not TestCase.suite.is_cached(case):
        selectors.suites_attach(cases=[case])
    return CaseOut.of(case)


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
    """Counts, coverage (in scope, executed, not run) and pass rates by owner, category and suite; the pass-rate
    trend of the RC's product; the delta to the baseline RC (same product); the gate."""
    require_role(request.user, "viewer")
    if query.rc:
        rc = selectors.release_candidate_by_name_or_id(value=query.rc)
    else:
        product = product_scope.product_check(query.product) if query.product else selectors.product_default()
        rc = selectors.release_candidate_current(product=product)
    if rc is None:
        raise ValidationFailed("There are no RCs yet.", code="no_release_candidate")
    suite = selectors.suite_get(suite_id=query.suite) if query.suite else None
    product_scope.suite_check(release_candidate=rc, suite=suite)
    baseline = selectors.release_candidate_by_name_or_id(value=query.baseline) if query.baseline else None
    summary = selectors.quality_summary(release_candidate=rc, suite=suite)
    return {
        **summary,
        "trend": selectors.pass_rate_trend(product=rc.product, suite=suite, limit=query.trend_limit),
        "delta": selectors.rc_delta(release_candidate=rc, baseline=baseline, suite=suite) if query.delta else None,
        "gate": selectors.release_gate(release_candidate=rc, suite=suite),
    }


@router.post(
    "/runs/bulk",
    response={201: BulkRunsOut},
    url_name="runs_bulk",
    auth=CI_AUTH,
    summary="Record many runs of an RC at once, all or nothing (CI token accepted)",
)
def runs_bulk(request: HttpRequest, payload: BulkRunsIn):
    """Up to BULK_RUNS_MAX runs, each of a case given by id or by product + suite + key; validated like single
    runs (problems reported by index, nothing recorded); one audit event for the whole call."""
    rc = selectors.release_candidate_by_name_or_id(value=payload.rc)
    stored = services.test_run_batch_record(
        release_candidate=rc, runs=[run.dict() for run in payload.runs], actor=request.user, request=request
    )
    return Status(
        201, {"release_candidate": rc.name, "recorded": len(stored), "runs": [str(run.run_id) for run in stored]}
    )


class ReleaseCandidateQuery(Schema):
    product: str = NinjaField("", max_length=120, description="Only this product's RCs.")


@router.get(
    "/release-candidates",
    response=list[ReleaseCandidateOut],
    url_name="release_candidate_list",
    summary="RCs in release order (of one product)",
)
def release_candidate_list(request: HttpRequest, query: Query[ReleaseCandidateQuery]):
    require_role(request.user, "viewer")
    product = product_scope.product_check(query.product) if query.product else None
    return [ReleaseCandidateOut.of(rc) for rc in selectors.release_candidate_list(product=product)]


@router.post(
    "/release-candidates",
    response={201: ReleaseCandidateOut},
    url_name="release_candidate_list",
    summary="Create an RC of a product",
)
def release_candidate_create(request: HttpRequest, payload: ReleaseCandidateIn):
    """A new RC of `product` (one of the products that have suites; code "unknown_product" otherwise), placed after
    the newest RC."""
    require_role(request.user, "viewer")  # signed in; the service checks the reviewer role (and audits a refusal)
    product = product_scope.product_check(payload.product.strip())
    rc = services.release_candidate_create(
        name=payload.name, product=product, state=payload.state, actor=request.user, request=request
    )
    return Status(201, ReleaseCandidateOut.of(rc))
