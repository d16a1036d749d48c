"""Pages of the releases app. Each view parses input, calls one selector or service and renders; when the request
comes from htmx it renders only the page's live partial."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from accounts.permissions import role_required
from releases import selectors, services
from releases.forms import (
    BulkStatusForm,
    CaseFilterForm,
    CaseForm,
    GridStatusForm,
    ReleaseCandidateForm,
    RunForm,
    SuiteForm,
)
from releases.models import ReleaseCandidate, RunStatus, TestSuite
from report_platform.errors import DomainError, NotFound, ValidationFailed

# --- helpers -----------------------------------------------------------------------------------------------------


def _form_errors(form) -> dict[str, list[str]]:
    return {name: [str(message) for message in errors] for name, errors in form.errors.items()}


def _invalid(form) -> ValidationFailed:
    return ValidationFailed(fields=_form_errors(form))


def _render_form(request: HttpRequest, template: str, context: dict[str, Any], *, error: DomainError | None = None):
    """Re-render a form page (or its htmx partial) with the error's code, message and field errors."""
    if error is not None:
        form = context["form"]
        for name, messages in error.fields.items():
            for message in messages:
                form.add_error(name if name in form.fields else None, message)
        context = {**context, "error": error}
    status = error.status if error is not None else 200
    partial = template.replace("releases/", "releases/partials/", 1) if request.htmx else template
    return render(request, partial, context, status=status)


def _form_page(request: HttpRequest, template: str, context: dict[str, Any], *, save, success_url):
    """The form cycle of every create/edit page: show, validate, call the service, redirect or re-render the error.

    `save(cleaned_data)` calls the service and returns the saved object; `success_url(obj)` is where to go next."""
    form = context["form"]
    if request.method == "POST":
        if not form.is_valid():
            return _render_form(request, template, context, error=_invalid(form))
        try:
            saved = save(form.cleaned_data)
        except DomainError as error:
            return _render_form(request, template, context, error=error)
        return redirect(success_url(saved))
    return _render_form(request, template, context)


def _rc_from(value: str, *, default_current: bool = True) -> ReleaseCandidate | None:
    if value:
        return selectors.release_candidate_by_name_or_id(value=value)
    return selectors.release_candidate_current() if default_current else None


def _suite_from(value: str) -> TestSuite | None:
    return selectors.suite_get(suite_id=value) if value else None


def _filters(form: CaseFilterForm, *, default_rc: bool = False) -> selectors.CaseFilters:
    data = form.cleaned_data
    return selectors.CaseFilters(
        suite=_suite_from(data["suite"]),
        category=data["category"].strip(),
        owner=data["owner"].strip(),
        release_candidate=_rc_from(data["rc"], default_current=default_rc),
        status=data["status"],
        search=data["q"].strip(),
        include_deleted=bool(data["deleted"]),
    )


def _parse_filters(request: HttpRequest, *, default_rc: bool = False) -> tuple[CaseFilterForm, selectors.CaseFilters]:
    form = CaseFilterForm(request.GET)
    if not form.is_valid():
        raise _invalid(form)
    return form, _filters(form, default_rc=default_rc)


# --- dashboard ---------------------------------------------------------------------------------------------------


@role_required("viewer")
def dashboard(request: HttpRequest) -> HttpResponse:
    """Quality dashboard of one RC (default: the newest in testing): counts, pass rates, trend, gate."""
    rc = _rc_from(request.GET.get("rc", ""))
    suite = _suite_from(request.GET.get("suite", ""))
    context: dict[str, Any] = {
        "rc": rc,
        "suite": suite,
        "rcs": selectors.release_candidate_list(),
        "suites": TestSuite.objects.all(),
        "poll_seconds": settings.RELEASES_DASHBOARD_POLL_SECONDS,
        "query": urlencode(
            {k: v for k, v in {"rc": rc.name if rc else "", "suite": suite.pk if suite else ""}.items() if v}
        ),
    }
    if rc is not None:
        summary = selectors.quality_summary(release_candidate=rc, suite=suite)
        trend = selectors.pass_rate_trend(suite=suite, limit=10)
        chart_data = {"trend": trend, "by_owner": summary["by_owner"], "by_category": summary["by_category"]}
        context.update(
            summary=summary,
            trend=trend,
            gate=selectors.release_gate(release_candidate=rc, suite=suite),
            previous=selectors.release_candidate_previous(release_candidate=rc),
            chart_data=chart_data,
            chart_json=json.dumps(chart_data),
        )
    template = "releases/partials/dashboard_live.html" if request.htmx else "releases/dashboard.html"
    return render(request, template, context)


# --- cases -------------------------------------------------------------------------------------------------------


@role_required("viewer")
def case_list(request: HttpRequest) -> HttpResponse:
    """Filterable, sortable, keyset-paginated case list; filters live in the URL."""
    form, filters = _parse_filters(request)
    sort = form.cleaned_data["sort"] or "key"
    page = selectors.case_list(
        filters=filters, sort=sort, cursor=form.cleaned_data["cursor"] or None, limit=form.cleaned_data["limit"]
    )
    base = {**filters.as_query(), "sort": sort}
    context = {
        "form": form,
        "page": page,
        "filters": filters,
        "rcs": selectors.release_candidate_list(),
        "suites": TestSuite.objects.all(),
        "choices": selectors.distinct_values(),
        "status_filters": selectors.STATUS_FILTERS,
        "query": urlencode(base),
        "next_query": urlencode({**base, "cursor": page.next_cursor}) if page.next_cursor else "",
        "sort_links": [(name, urlencode({**filters.as_query(), "sort": name})) for name in selectors.CASE_SORTS],
    }
    template = "releases/partials/case_table.html" if request.htmx else "releases/case_list.html"
    return render(request, template, context)


@role_required("viewer")
def case_detail(request: HttpRequest, pk: str) -> HttpResponse:
    """A case with its full run history across RCs, and the form to record a run."""
    case = selectors.case_get(case_id=pk, include_deleted=request.user.has_role("admin"))
    context = {
        "case": case,
        "history": selectors.case_history(case=case),
        "run_form": RunForm(initial={"release_candidate": selectors.release_candidate_current()}),
        "mantis_base_url": settings.MANTIS_BASE_URL,
    }
    template = "releases/partials/case_history.html" if request.htmx else "releases/case_detail.html"
    return render(request, template, context)


@role_required("reviewer")
@require_http_methods(["GET", "POST"])
def case_create(request: HttpRequest) -> HttpResponse:
    initial = {"suite": request.GET.get("suite")} if request.GET.get("suite") else {}
    form = CaseForm(request.POST or None, initial=initial)
    return _form_page(
        request,
        "releases/case_form.html",
        {"form": form, "mode": "create"},
        save=lambda data: services.case_create(**data, actor=request.user, request=request),
        success_url=lambda case: reverse("releases:case_detail", kwargs={"pk": str(case.pk)}),
    )


@role_required("reviewer")
@require_http_methods(["GET", "POST"])
def case_edit(request: HttpRequest, pk: str) -> HttpResponse:
    case = selectors.case_get(case_id=pk)
    initial = {
        "suite": case.suite_id,
        "key": case.key,
        "title": case.title,
        "category": case.category,
        "owner": case.owner,
        "task": case.task,
        "priority": case.priority,
        "tags": ", ".join(case.tags),
    }
    form = CaseForm(request.POST or None, initial=initial)
    return _form_page(
        request,
        "releases/case_form.html",
        {"form": form, "case": case, "mode": "edit"},
        save=lambda data: services.case_update(case=case, actor=request.user, request=request, **data),
        success_url=lambda _saved: reverse("releases:case_detail", kwargs={"pk": str(case.pk)}),
    )


@role_required("viewer")  # the service checks for admin, so a refusal is audited
@require_POST
def case_delete(request: HttpRequest, pk: str) -> HttpResponse:
    case = selectors.case_get(case_id=pk)
    services.case_delete(case=case, actor=request.user, request=request)
    return redirect(reverse("releases:case_detail", kwargs={"pk": pk}))


@role_required("viewer")  # the service checks for admin, so a refusal is audited
@require_POST
def case_restore(request: HttpRequest, pk: str) -> HttpResponse:
    case = selectors.case_get(case_id=pk, include_deleted=True)
    services.case_restore(case=case, actor=request.user, request=request)
    return redirect(reverse("releases:case_detail", kwargs={"pk": pk}))


@role_required("reviewer")
@require_POST
def run_record(request: HttpRequest, pk: str) -> HttpResponse:
    """Record a run from the case page; htmx gets the refreshed history, others a redirect."""
    case = selectors.case_get(case_id=pk)
    form = RunForm(request.POST)
    if not form.is_valid():
        raise _invalid(form)
    services.test_run_record(
        case=case,
        release_candidate=form.cleaned_data["release_candidate"],
        status=form.cleaned_data["status"],
        mantis_ids=form.cleaned_data["mantis_ids"],
        notes=form.cleaned_data["notes"],
        actor=request.user,
        request=request,
    )
    if request.htmx:
        context = {
            "case": case,
            "history": selectors.case_history(case=case),
            "mantis_base_url": settings.MANTIS_BASE_URL,
        }
        return render(request, "releases/partials/case_history.html", context)
    return redirect("releases:case_detail", pk=pk)


# --- suites ------------------------------------------------------------------------------------------------------


@role_required("viewer")
def suite_list(request: HttpRequest) -> HttpResponse:
    context = {"suites": selectors.suite_list()}
    template = "releases/partials/suite_table.html" if request.htmx else "releases/suite_list.html"
    return render(request, template, context)


@role_required("viewer")
def suite_detail(request: HttpRequest, pk: str) -> HttpResponse:
    suite = selectors.suite_get(suite_id=pk)
    rc = selectors.release_candidate_current()
    context = {
        "suite": suite,
        "rc": rc,
        "summary": selectors.quality_summary(release_candidate=rc, suite=suite) if rc else None,
        "page": selectors.case_list(filters=selectors.CaseFilters(suite=suite, release_candidate=rc), limit=50),
    }
    template = "releases/partials/suite_summary.html" if request.htmx else "releases/suite_detail.html"
    return render(request, template, context)


@role_required("reviewer")
@require_http_methods(["GET", "POST"])
def suite_create(request: HttpRequest) -> HttpResponse:
    form = SuiteForm(request.POST or None)
    return _form_page(
        request,
        "releases/suite_form.html",
        {"form": form, "mode": "create"},
        save=lambda data: services.suite_create(**data, actor=request.user, request=request),
        success_url=lambda suite: reverse("releases:suite_detail", kwargs={"pk": str(suite.pk)}),
    )


@role_required("reviewer")
@require_http_methods(["GET", "POST"])
def suite_edit(request: HttpRequest, pk: str) -> HttpResponse:
    suite = selectors.suite_get(suite_id=pk)
    form = SuiteForm(
        request.POST or None,
        initial={"name": suite.name, "product": suite.product, "description": suite.description},
    )
    return _form_page(
        request,
        "releases/suite_form.html",
        {"form": form, "suite": suite, "mode": "edit"},
        save=lambda data: services.suite_update(suite=suite, actor=request.user, request=request, **data),
        success_url=lambda _saved: reverse("releases:suite_detail", kwargs={"pk": pk}),
    )


# --- release candidates ------------------------------------------------------------------------------------------


def _rc_table(request: HttpRequest, *, form: ReleaseCandidateForm | None = None, status: int = 200, error=None):
    context = {
        "rcs": selectors.release_candidate_list(),
        "form": form or ReleaseCandidateForm(),
        "states": ReleaseCandidate.State.choices,
        "error": error,
    }
    template = "releases/partials/rc_table.html" if request.htmx else "releases/rc_list.html"
    return render(request, template, context, status=status)


@role_required("viewer")
def rc_list(request: HttpRequest) -> HttpResponse:
    """RCs in release order, with their state; reviewers reorder, rename and change state here."""
    return _rc_table(request)


@role_required("reviewer")
@require_POST
def rc_create(request: HttpRequest) -> HttpResponse:
    form = ReleaseCandidateForm(request.POST)
    if not form.is_valid():
        error = _invalid(form)
        return _rc_table(request, form=form, status=error.status, error=error)
    try:
        services.release_candidate_create(**form.cleaned_data, actor=request.user, request=request)
    except DomainError as error:
        for name, messages in error.fields.items():
            for message in messages:
                form.add_error(name if name in form.fields else None, message)
        return _rc_table(request, form=form, status=error.status, error=error)
    return _rc_table(request) if request.htmx else redirect("releases:rc_list")


@role_required("reviewer")
@require_POST
def rc_edit(request: HttpRequest, pk: str) -> HttpResponse:
    rc = selectors.release_candidate_get(release_candidate_id=pk)
    form = ReleaseCandidateForm(request.POST)
    if not form.is_valid():
        raise _invalid(form)
    services.release_candidate_update(release_candidate=rc, actor=request.user, request=request, **form.cleaned_data)
    return _rc_table(request) if request.htmx else redirect("releases:rc_list")


@role_required("reviewer")
@require_POST
def rc_move(request: HttpRequest, pk: str) -> HttpResponse:
    rc = selectors.release_candidate_get(release_candidate_id=pk)
    services.release_candidate_move(
        release_candidate=rc, direction=request.POST.get("direction", ""), actor=request.user, request=request
    )
    return _rc_table(request) if request.htmx else redirect("releases:rc_list")


# --- run grid ----------------------------------------------------------------------------------------------------


def _grid_context(request: HttpRequest, form: CaseFilterForm, filters: selectors.CaseFilters) -> dict[str, Any]:
    sort = form.cleaned_data["sort"] or "key"
    page = selectors.case_list(
        filters=filters, sort=sort, cursor=form.cleaned_data["cursor"] or None, limit=form.cleaned_data["limit"]
    )
    query = {**filters.as_query(), "sort": sort}
    return {
        "form": form,
        "filters": filters,
        "page": page,
        "rc": filters.release_candidate,
        "statuses": RunStatus.choices,
        "rcs": selectors.release_candidate_list(),
        "suites": TestSuite.objects.all(),
        "choices": selectors.distinct_values(),
        "status_filters": selectors.STATUS_FILTERS,
        "query": urlencode(query),
        "next_query": urlencode({**query, "cursor": page.next_cursor}) if page.next_cursor else "",
        "can_edit": request.user.has_role("reviewer"),
    }


@role_required("viewer")
def run_grid(request: HttpRequest) -> HttpResponse:
    """Every case of the filtered selection with its status for an RC (default: the current RC); reviewers set a
    status with one click per row or for the whole filtered selection."""
    form, filters = _parse_filters(request, default_rc=True)
    if filters.release_candidate is None:
        raise NotFound("Create an RC first.", code="no_release_candidate")
    context = _grid_context(request, form, filters)
    template = "releases/partials/run_grid_table.html" if request.htmx else "releases/run_grid.html"
    return render(request, template, context)


@role_required("reviewer")
@require_POST
def run_grid_set(request: HttpRequest) -> HttpResponse:
    """One click in the grid: record a run and return the refreshed row."""
    form = GridStatusForm(request.POST)
    if not form.is_valid():
        raise _invalid(form)
    case = selectors.case_get(case_id=form.cleaned_data["case"])
    rc = form.cleaned_data["release_candidate"]
    run = services.test_run_record(
        case=case, release_candidate=rc, status=form.cleaned_data["status"], actor=request.user, request=request
    )
    context = {"row": {"case": case, "run": run}, "rc": rc, "statuses": RunStatus.choices, "can_edit": True}
    return render(request, "releases/partials/run_grid_row.html", context)


@role_required("reviewer")
@require_POST
def run_grid_bulk(request: HttpRequest) -> HttpResponse:
    """Set one status for every case matching the grid's filters (capped); returns the refreshed grid."""
    form, filters = _parse_filters(request)
    bulk = BulkStatusForm(request.POST)
    if not bulk.is_valid():
        raise _invalid(bulk)
    filters.release_candidate = bulk.cleaned_data["release_candidate"]
    status_filter = filters.status
    cases = list(selectors.case_filter_queryset(filters=filters)[: services.BULK_RECORD_MAX + 1])
    services.test_run_bulk_record(
        cases=cases,
        release_candidate=filters.release_candidate,
        status=bulk.cleaned_data["status"],
        actor=request.user,
        request=request,
    )
    filters.status = status_filter
    context = _grid_context(request, form, filters)
    if request.htmx:
        return render(request, "releases/partials/run_grid_table.html", context)
    return redirect(f"{reverse('releases:run_grid')}?{context['query']}")


# --- comparisons -------------------------------------------------------------------------------------------------


@role_required("viewer")
def rc_delta(request: HttpRequest) -> HttpResponse:
    """RC-to-RC delta for any two RCs (default baseline: the previous RC)."""
    rc = _rc_from(request.GET.get("rc", ""))
    baseline = _rc_from(request.GET.get("baseline", ""), default_current=False)
    suite = _suite_from(request.GET.get("suite", ""))
    context: dict[str, Any] = {
        "rc": rc,
        "suite": suite,
        "rcs": selectors.release_candidate_list(),
        "suites": TestSuite.objects.all(),
    }
    if rc is not None:
        context["delta"] = selectors.rc_delta(release_candidate=rc, baseline=baseline, suite=suite)
        titles = {
            "new_failures": "New failures",
            "fixed": "Fixed",
            "still_failing": "Still failing",
            "newly_not_run": "Newly not run",
        }
        context["sections"] = [(key, title, context["delta"][key]) for key, title in titles.items()]
    template = "releases/partials/delta_lists.html" if request.htmx else "releases/rc_delta.html"
    return render(request, template, context)


@role_required("viewer")
def flaky_cases(request: HttpRequest) -> HttpResponse:
    """Cases flipping between pass and fail across the last N RCs, with a flakiness score."""
    rc = _rc_from(request.GET.get("rc", ""))
    suite = _suite_from(request.GET.get("suite", ""))
    try:
        window = int(request.GET.get("window") or 5)
    except ValueError:
        raise ValidationFailed(code="invalid_window", fields={"window": ["Give a whole number of RCs (2-50)."]})
    if not 2 <= window <= 50:
        raise ValidationFailed(code="invalid_window", fields={"window": ["Give a whole number of RCs (2-50)."]})
    context: dict[str, Any] = {
        "rc": rc,
        "suite": suite,
        "window": window,
        "rcs": selectors.release_candidate_list(),
        "suites": TestSuite.objects.all(),
        "cases": selectors.flaky_cases(release_candidate=rc, window=window, suite=suite) if rc else [],
    }
    template = "releases/partials/flaky_table.html" if request.htmx else "releases/flaky_cases.html"
    return render(request, template, context)
