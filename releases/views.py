"""Pages of the releases app. Each view parses input, calls one selector or service and renders; when the request
comes from htmx it renders only the page's live partial."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import NON_FIELD_ERRORS
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from accounts.permissions import role_required
from releases import failure_selectors, product_scope, rules, selectors, services
from releases.forms import (
    BulkStatusForm,
    CaseFilterForm,
    CaseForm,
    GridStatusForm,
    ReleaseCandidateCreateForm,
    ReleaseCandidateForm,
    RunForm,
    SuiteForm,
)
from releases.models import ReleaseCandidate, RunStatus, TestSuite
from report_platform.errors import DomainError, NotFound, ValidationFailed, field_messages

# --- helpers -----------------------------------------------------------------------------------------------------


def _form_errors(form) -> dict[str, list[str]]:
    return {name: [str(message) for message in errors] for name, errors in form.errors.items()}


def _invalid(form) -> ValidationFailed:
    return ValidationFailed(fields=_form_errors(form))


def _form_errors_add(form, error: DomainError) -> None:
    """Put a refusal's field errors on the form's fields (unknown names become form-wide errors), so each shows
    next to its field."""
    for name, field_errors in error.fields.items():
        target = name if name in form.fields else None
        present = form.errors.get(target or NON_FIELD_ERRORS, [])
        for message in field_errors:
            if message not in present:  # the form's own errors are already there
                form.add_error(target, message)


def _render_form(request: HttpRequest, template: str, context: dict[str, Any], *, error: DomainError | None = None):
    """Re-render a form page (or its htmx partial) with the error's code, message and field errors."""
    if error is not None:
        _form_errors_add(context["form"], error)
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


def _suite_from(value: str) -> TestSuite | None:
    return selectors.suite_get(suite_id=value) if value else None


def _scope(
    request: HttpRequest, *, rc: str, suite: str = "", default_rc: bool = True
) -> tuple[str, ReleaseCandidate | None, TestSuite | None]:
    """(product, RC, suite) of a page: the RC and suite named in the request, the product they (or the chooser)
    decide (releases/product_scope.py), and by default the product's current RC."""
    release_candidate = selectors.release_candidate_by_name_or_id(value=rc) if rc else None
    chosen_suite = _suite_from(suite)
    product = product_scope.request_product(request, release_candidate=release_candidate, suite=chosen_suite)
    if release_candidate is None and default_rc:
        release_candidate = selectors.release_candidate_current(product=product)
    return product, release_candidate, chosen_suite


def _product_choices(product: str) -> dict[str, Any]:
    """The RC and suite choices of a page's filters: the product's only."""
    return {
        "product": product,
        "rcs": selectors.release_candidate_list(product=product),
        "suites": TestSuite.objects.filter(product=product),
    }


def _parse_filters(request: HttpRequest, *, default_rc: bool = False) -> tuple[CaseFilterForm, selectors.CaseFilters]:
    form = CaseFilterForm(request.GET)
    if not form.is_valid():
        raise _invalid(form)
    data = form.cleaned_data
    product, rc, suite = _scope(request, rc=data["rc"], suite=data["suite"], default_rc=default_rc)
    filters = selectors.CaseFilters(
        suite=suite,
        category=data["category"].strip(),
        owner=data["owner"].strip(),
        release_candidate=rc,
        status=data["status"],
        search=data["q"].strip(),
        include_deleted=bool(data["deleted"]),
        product=product,
    )
    return form, filters


# --- dashboard ---------------------------------------------------------------------------------------------------


@role_required("viewer")
def dashboard(request: HttpRequest) -> HttpResponse:
    """Quality dashboard of one RC (default: the product's newest in testing): counts, coverage, pass rates, the
    product's trend, gate."""
    product, rc, suite = _scope(request, rc=request.GET.get("rc", ""), suite=request.GET.get("suite", ""))
    context: dict[str, Any] = {
        **_product_choices(product),
        "rc": rc,
        "suite": suite,
        "poll_seconds": settings.RELEASES_DASHBOARD_POLL_SECONDS,
        "query": urlencode(
            {k: v for k, v in {"rc": rc.name if rc else "", "suite": suite.pk if suite else ""}.items() if v}
        ),
    }
    if rc is not None:
        summary = selectors.quality_summary(release_candidate=rc, suite=suite)
        trend = selectors.pass_rate_trend(product=rc.product, suite=suite, limit=10)
        gate = selectors.release_gate(release_candidate=rc, suite=suite)
        chart_data = {
            "trend": trend,
            "by_owner": summary["by_owner"],
            "by_category": summary["by_category"],
            "threshold": gate["thresholds"]["min_pass_rate"],  # drawn as the gate's line on the trend
        }
        previous = selectors.release_candidate_previous(release_candidate=rc)
        context.update(
            summary=summary,
            trend=trend,
            gate=gate,
            failures=failure_selectors.failure_groups(release_candidate=rc, baseline=previous, suite=suite),
            previous=previous,
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
        **_product_choices(filters.product),
        "form": form,
        "page": page,
        "filters": filters,
        "choices": selectors.distinct_values(product=filters.product or None),
        "status_filters": selectors.STATUS_FILTER_LABELS.items(),
        "query": urlencode(base),
        "next_query": urlencode({**base, "cursor": page.next_cursor}) if page.next_cursor else "",
        "sort_links": [
            (name, label, urlencode({**filters.as_query(), "sort": name}))
            for name, label in selectors.CASE_SORT_LABELS.items()
        ],
    }
    template = "releases/partials/case_table.html" if request.htmx else "releases/case_list.html"
    return render(request, template, context)


@role_required("viewer")
def case_detail(request: HttpRequest, pk: str) -> HttpResponse:
    """A case with its full run history across RCs, and the form to record a run."""
    case = selectors.case_get(case_id=pk, include_deleted=request.user.has_role("admin"))
    product = product_scope.request_product(request, suite=case.suite)
    history = selectors.case_history(case=case)
    failure_selectors.known_issues_attach(runs=history, product=case.suite.product)
    context = {
        "case": case,
        "history": history,
        "run_form": RunForm(
            product=product, initial={"release_candidate": selectors.release_candidate_current(product=product)}
        ),
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
    error: DomainError | None = None if form.is_valid() else _invalid(form)
    if error is None:
        try:
            services.test_run_record(
                case=case,
                release_candidate=form.cleaned_data["release_candidate"],
                status=form.cleaned_data["status"],
                mantis_ids=form.cleaned_data["mantis_ids"],
                notes=form.cleaned_data["notes"],
                actor=request.user,
                request=request,
            )
        except DomainError as refused:
            error = refused
    if error is not None:
        # The errors go next to their fields in the form, which the response replaces (so a later valid save,
        # which replaces it again, leaves no stale message behind).
        _form_errors_add(form, error)
        context = {"case": case, "run_form": form, "error": error}
        if request.htmx:
            response = render(request, "releases/partials/run_form.html", context, status=error.status)
            response["HX-Retarget"] = "#run-form"
            response["HX-Reswap"] = "outerHTML"
            return response
        context.update(history=selectors.case_history(case=case), mantis_base_url=settings.MANTIS_BASE_URL)
        return render(request, "releases/case_detail.html", context, status=error.status)
    if request.htmx:
        context = {
            "case": case,
            "history": selectors.case_history(case=case),
            "mantis_base_url": settings.MANTIS_BASE_URL,
            # A fresh form (same RC) replaces the one that may still show errors of an earlier attempt.
            "run_form": RunForm(
                product=case.suite.product, initial={"release_candidate": form.cleaned_data["release_candidate"]}
            ),
            "oob": True,
        }
        return render(request, "releases/partials/case_history_after_run.html", context)
    return redirect("releases:case_detail", pk=pk)


# --- suites ------------------------------------------------------------------------------------------------------


@role_required("viewer")
def suite_list(request: HttpRequest) -> HttpResponse:
    product = product_scope.request_product(request)
    context = {"suites": selectors.suite_list(product=product), "product": product}
    template = "releases/partials/suite_table.html" if request.htmx else "releases/suite_list.html"
    return render(request, template, context)


@role_required("viewer")
def suite_detail(request: HttpRequest, pk: str) -> HttpResponse:
    suite = selectors.suite_get(suite_id=pk)
    product = product_scope.request_product(request, suite=suite)
    rc = selectors.release_candidate_current(product=product)
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


def _rc_table(request: HttpRequest, *, form: ReleaseCandidateCreateForm | None = None, status: int = 200, error=None):
    product = product_scope.request_product(request)
    context = {
        "product": product,
        "rcs": selectors.release_candidate_list(product=product),
        "form": form or ReleaseCandidateCreateForm(initial={"product": product}),
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
    form = ReleaseCandidateCreateForm(request.POST)
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
    can_edit = request.user.has_role("reviewer")
    return {
        "form": form,
        "filters": filters,
        "page": page,
        **_product_choices(filters.product),
        "rc": filters.release_candidate,
        "statuses": RunStatus.choices,
        "choices": selectors.distinct_values(product=filters.product or None),
        "status_filters": selectors.STATUS_FILTER_LABELS.items(),
        "query": urlencode(query),
        "next_query": urlencode({**query, "cursor": page.next_cursor}) if page.next_cursor else "",
        "can_edit": can_edit,
        # How many cases the bulk action would set (capped: past the cap the service refuses).
        "bulk_count": selectors.case_count(filters=filters, cap=services.BULK_RECORD_MAX + 1)
        if can_edit and page.rows
        else selectors.CaseCount(count=0),
        "bulk_max": services.BULK_RECORD_MAX,
        "notes_max_length": rules.NOTES_MAX_LENGTH,
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
    context: dict[str, Any] = {
        "rc": rc,
        "statuses": RunStatus.choices,
        "can_edit": True,
        "notes_max_length": rules.NOTES_MAX_LENGTH,
    }
    try:
        run = services.test_run_record(
            case=case,
            release_candidate=rc,
            status=form.cleaned_data["status"],
            mantis_ids=form.cleaned_data["mantis_ids"],
            notes=form.cleaned_data["notes"],
            actor=request.user,
            request=request,
        )
    except ValidationFailed as error:
        # A bad Mantis id or note: the row comes back with its fail form open, the values kept and the problem
        # written beside the field (the row is the error area this request owns).
        latest = selectors.latest_runs_for(case_ids=[case.pk], release_candidate=rc).get(case.pk)
        context.update(
            row={"case": case, "run": latest},
            fail_error=error,
            fail_errors=field_messages(error.fields),
            fail_values={"mantis_ids": request.POST.get("mantis_ids", ""), "notes": request.POST.get("notes", "")},
        )
        return render(request, "releases/partials/run_grid_row.html", context, status=error.status)
    context["row"] = {"case": case, "run": run}
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
    cases = selectors.cases_matching(filters=filters, cap=services.BULK_RECORD_MAX + 1)
    status = bulk.cleaned_data["status"]
    written = services.test_run_bulk_record(
        cases=cases,
        release_candidate=filters.release_candidate,
        status=status,
        actor=request.user,
        request=request,
    )
    filters.status = status_filter
    result = (
        f"Recorded {RunStatus(status).label} for {written} case{'' if written == 1 else 's'} "
        f"in {filters.release_candidate.name}."
    )
    if request.htmx:
        context = {**_grid_context(request, form, filters), "bulk_result": result}
        return render(request, "releases/partials/run_grid_table.html", context)
    messages.success(request, result)
    query = urlencode({**filters.as_query(), "sort": form.cleaned_data["sort"] or "key"})
    return redirect(f"{reverse('releases:run_grid')}?{query}")


# --- comparisons -------------------------------------------------------------------------------------------------


@role_required("viewer")
def rc_delta(request: HttpRequest) -> HttpResponse:
    """RC-to-RC delta for two RCs of one product (default baseline: the product's previous RC); comparing an RC
    with itself shows a warning."""
    product, rc, suite = _scope(request, rc=request.GET.get("rc", ""), suite=request.GET.get("suite", ""))
    value = request.GET.get("baseline", "")
    baseline = selectors.release_candidate_by_name_or_id(value=value) if value else None
    context: dict[str, Any] = {**_product_choices(product), "rc": rc, "suite": suite}
    if rc is not None:
        context["delta"] = selectors.rc_delta(release_candidate=rc, baseline=baseline, suite=suite)
        titles = {
            "new_failures": "New failures",
            "fixed": "Fixed",
            "still_failing": "Still failing",
            "newly_not_run": "Newly not run",
        }
        context["sections"] = [(key, title, context["delta"][key]) for key, title in titles.items()]
        compared = baseline or selectors.release_candidate_previous(release_candidate=rc)
        context["failures"] = failure_selectors.failure_groups(release_candidate=rc, baseline=compared, suite=suite)
    template = "releases/partials/delta_lists.html" if request.htmx else "releases/rc_delta.html"
    return render(request, template, context)


@role_required("viewer")
def flaky_cases(request: HttpRequest) -> HttpResponse:
    """Cases flipping between pass and fail across the last N RCs, with a flakiness score."""
    product, rc, suite = _scope(request, rc=request.GET.get("rc", ""), suite=request.GET.get("suite", ""))
    try:
        window = int(request.GET.get("window") or 5)
    except ValueError:
        raise ValidationFailed(code="invalid_window", fields={"window": ["Give a whole number of RCs (2-50)."]})
    if not 2 <= window <= 50:
        raise ValidationFailed(code="invalid_window", fields={"window": ["Give a whole number of RCs (2-50)."]})
    context: dict[str, Any] = {
        **_product_choices(product),
        "rc": rc,
        "suite": suite,
        "window": window,
        "cases": selectors.flaky_cases(release_candidate=rc, window=window, suite=suite) if rc else [],
    }
    template = "releases/partials/flaky_table.html" if request.htmx else "releases/flaky_cases.html"
    return render(request, template, context)


@require_POST
@role_required("reviewer")
def known_issue_link(request: HttpRequest) -> HttpResponse:
    """Link a failure signature (dashboard / delta page) to a Mantis id, then back to the page it came from."""
    services.known_issue_link(
        product=request.POST.get("product", ""),
        signature=request.POST.get("signature", ""),
        mantis_id=request.POST.get("mantis_id", ""),
        actor=request.user,
        request=request,
    )
    messages.success(request, "Linked: failures with this error now show the Mantis issue.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("releases:dashboard")
    return redirect(target)
