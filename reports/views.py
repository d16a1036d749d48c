"""Pages of the reports app: list (filters), generate, detail (htmx-polled progress and summary), downloads
through signed links, delete. Each view parses input, calls one selector or service, and renders; htmx requests get
only the page's live partial."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.permissions import require_role, role_required
from releases import product_scope
from releases import selectors as releases_selectors
from report_platform.errors import ValidationFailed
from reports import selectors, services
from reports.forms import ReportFilterForm, ReportForm
from reports.models import ReportEdition


@role_required("viewer")
@require_GET
def report_list(request: HttpRequest) -> HttpResponse:
    # An RC named in the filter decides the product (an unknown id names none: the form then says so).
    release_candidate = releases_selectors.release_candidate_find(
        release_candidate_id=request.GET.get("release_candidate", "")
    )
    product = product_scope.request_product(request, release_candidate=release_candidate)
    form = ReportFilterForm(request.GET or None, product=product)
    data = form.cleaned_data if form.is_valid() else {}
    filters = selectors.ReportFilters(
        product=product,
        release_candidate=data.get("release_candidate", ""),
        suite=data.get("suite", ""),
        status=data.get("status", ""),
        mine_of=request.user if data.get("mine") else None,
        before=data.get("before", ""),
    )
    reports, cursor = selectors.report_list(filters=filters)
    next_query = None
    if cursor:
        next_query = urlencode({**{k: v for k, v in request.GET.items() if k != "before"}, "before": cursor})
    context = {"form": form, "reports": reports, "next_query": next_query}
    template = "reports/partials/report_rows.html" if request.htmx else "reports/report_list.html"
    return render(request, template, context)


@role_required("viewer")
@require_http_methods(["GET", "POST"])
def report_create(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        require_role(request.user, "reviewer")
    product = product_scope.request_product(request)
    form = ReportForm(request.POST or None, product=product, initial={"suite": "all", "edition": "short"})
    if request.method == "POST":
        try:
            if not form.is_valid():
                raise ValidationFailed(
                    fields={name: [str(m) for m in messages] for name, messages in form.errors.items()}
                )
            report = services.report_request(
                actor=request.user,
                release_candidate=form.cleaned_data["release_candidate"],
                suite=form.cleaned_data["suite"] or None,
                baseline=form.cleaned_data["baseline"] or None,
                edition=form.cleaned_data["edition"] or ReportEdition.FULL,
                request=request,
            )
        except ValidationFailed as error:
            for name, messages in error.fields.items():
                for message in messages:
                    form.add_error(name if name in form.fields else None, message)
            return render(request, "reports/report_form.html", {"form": form, "error": error}, status=error.status)
        return redirect("reports:report_detail", pk=str(report.pk))
    return render(request, "reports/report_form.html", {"form": form})


@role_required("viewer")
@require_GET
def report_detail(request: HttpRequest, pk: str) -> HttpResponse:
    report = selectors.report_get(report_id=pk)
    context = {"report": report, "figures": report.figures}
    template = "reports/partials/report_status.html" if request.htmx else "reports/report_detail.html"
    return render(request, template, context)


@role_required("viewer")
@require_GET
def report_download_link(request: HttpRequest, pk: str, fmt: str) -> HttpResponse:
    """Sign a fresh 5-minute link for this user and send the browser to it (a page may be open for hours)."""
    report = selectors.report_get(report_id=pk)
    return redirect(services.report_download_url(report=report, user=request.user, fmt=fmt))


@role_required("viewer")
@require_GET
def report_download(request: HttpRequest, token: str) -> HttpResponse:
    download = services.report_download_open(token=token, user=request.user, request=request)
    response = FileResponse(download.file, as_attachment=True, filename=download.filename)
    response["Content-Type"] = download.content_type
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store, private"
    if download.size:
        response["Content-Length"] = str(download.size)
    return response


@role_required("viewer")
@require_POST
def report_delete(request: HttpRequest, pk: str) -> HttpResponse:
    report = selectors.report_get(report_id=pk)
    services.report_delete(report=report, actor=request.user, request=request)
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = reverse("reports:report_list")
        return response
    return redirect("reports:report_list")
