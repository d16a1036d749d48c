"""Audit pages (admins only): the filtered, keyset-paginated event list and its CSV export."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.permissions import role_required
from audit.forms import AuditFilterForm
from audit.selectors import audit_event_filter, audit_event_page, audit_last_sequence
from audit.services import audit_events_export_csv
from report_platform.errors import ValidationFailed


@role_required("admin")
def event_list(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    page = None
    params: dict[str, str] = {}
    if form.is_valid():
        params = form.filter_params()
        page = audit_event_page(events=audit_event_filter(**form.filters()), before=form.cleaned_data["before"])
    context = {
        "form": form,
        "page": page,
        "query": urlencode(params),
        "next_query": urlencode({**params, "before": page.next_before}) if page and page.next_before else "",
    }
    template = "audit/partials/event_table.html" if request.htmx else "audit/event_list.html"
    return render(request, template, context)


@role_required("admin")
def event_export(request: HttpRequest) -> StreamingHttpResponse:
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        raise ValidationFailed(fields={name: [str(error) for error in errors] for name, errors in form.errors.items()})
    # The snapshot bound keeps the file consistent while events keep arriving (the export's own event included).
    events = audit_event_filter(**form.filters(), up_to_sequence=audit_last_sequence())
    chunks = audit_events_export_csv(
        events=events.iterator(chunk_size=2000),
        actor=request.user,
        request=request,
        filters=form.filter_params(),
        count=events.count(),
    )
    response = StreamingHttpResponse(chunks, content_type="text/csv; charset=utf-8")
    filename = f"audit-events-{timezone.now():%Y%m%dT%H%M%SZ}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
