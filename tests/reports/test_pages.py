"""The report pages: list with filters, generate form, detail with htmx-polled progress, delete; roles."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from reports import services
from reports.models import Report

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_it_lists_reports_with_filters(viewer_client, reviewer, report_data, generate):
    ready = generate(reviewer, report_data.rc3, suite=report_data.suite)
    queued = services.report_request(actor=reviewer, release_candidate="RC-2")

    page = viewer_client.get("/reports/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Release reports" in html and f"/reports/{ready.pk}/" in html and f"/reports/{queued.pk}/" in html
    assert "Checkout &lt;b&gt;&amp; Pay&lt;/b&gt; Ünïcödé" in html  # escaped, never markup
    assert "Generate a report" not in html  # viewers cannot generate

    partial = viewer_client.get(f"/reports/?status=ready&release_candidate={report_data.rc3.pk}", **HTMX)
    body = partial.content.decode()
    assert partial.status_code == 200 and "<html" not in body
    assert f"/reports/{ready.pk}/" in body and f"/reports/{queued.pk}/" not in body
    only_all = viewer_client.get("/reports/?suite=all", **HTMX).content.decode()
    assert f"/reports/{queued.pk}/" in only_all and f"/reports/{ready.pk}/" not in only_all


def test_it_pages_through_long_lists(viewer_client, reviewer, report_data):
    Report.objects.bulk_create(
        Report(release_candidate=report_data.rc3, release_candidate_name="RC-3", generated_by=reviewer)
        for _ in range(52)
    )
    newest_first = [str(pk) for pk in Report.objects.order_by("-pk").values_list("pk", flat=True)]
    first = viewer_client.get("/reports/").content.decode()
    assert [pk for pk in newest_first if f'href="/reports/{pk}/"' in first] == newest_first[:50]
    cursor = first.split("before=")[1].split('"')[0]
    assert cursor == newest_first[49]
    second = viewer_client.get(f"/reports/?before={cursor}").content.decode()
    assert [pk for pk in newest_first if f'href="/reports/{pk}/"' in second] == newest_first[50:]
    assert "Older reports" not in second


def test_it_generates_from_the_form(reviewer_client, reviewer, report_data, enqueued):
    form = reviewer_client.get("/reports/new/")
    assert form.status_code == 200 and b"js/reports.js" in form.content and b"RC-3" in form.content

    response = reviewer_client.post(
        "/reports/new/",
        {"release_candidate": str(report_data.rc3.pk), "suite": str(report_data.suite.pk), "baseline": ""},
    )
    report = Report.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/reports/{report.pk}/"
    assert report.suite == report_data.suite and report.baseline is None and enqueued == [str(report.pk)]
    assert AuditEvent.objects.filter(action="report.generate", outcome="success").count() == 1


def test_it_shows_form_errors_for_bad_input(reviewer_client, report_data, enqueued):
    response = reviewer_client.post(
        "/reports/new/", {"release_candidate": str(report_data.empty_rc.pk), "suite": "all"}
    )
    assert response.status_code == 400
    assert b'data-code="report_no_runs"' in response.content and b"has no runs" in response.content
    response = reviewer_client.post("/reports/new/", {"release_candidate": "0123456789abcdef01234567"})
    assert response.status_code == 400 and b"Select a valid choice" in response.content
    assert Report.objects.count() == 0


def test_it_keeps_viewers_away_from_generating(viewer_client, viewer, report_data, enqueued):
    assert viewer_client.get("/reports/new/").status_code == 403
    response = viewer_client.post("/reports/new/", {"release_candidate": str(report_data.rc3.pk), "suite": "all"})
    assert response.status_code == 403 and Report.objects.count() == 0
    assert AuditEvent.objects.get(action="report.generate").outcome == "denied"


def test_it_polls_progress_until_the_report_is_ready(viewer_client, reviewer, report_data, enqueued, media_root):
    report = services.report_request(actor=reviewer, release_candidate="RC-3")
    page = viewer_client.get(f"/reports/{report.pk}/")
    assert page.status_code == 200 and b'hx-trigger="every 1s"' in page.content
    assert b"Waiting for a worker" in page.content

    Report.objects.filter(pk=report.pk).update(
        status="running", progress=45, stage="Rendering the PDF", summary="RC-3: 7 cases"
    )
    partial = viewer_client.get(f"/reports/{report.pk}/", **HTMX)
    body = partial.content.decode()
    assert "<html" not in body and 'value="45"' in body and "Rendering the PDF" in body
    assert "RC-3: 7 cases" in body and 'hx-trigger="every 1s"' in body

    Report.objects.filter(pk=report.pk).update(status="queued")
    services.report_generate(report_id=str(report.pk))
    done = viewer_client.get(f"/reports/{report.pk}/", **HTMX).content.decode()
    assert "hx-trigger" not in done  # polling stops
    assert "Download PDF" in done and "Download DOCX" in done and "NO-GO" in done
    assert "Narrative written by" in done and "AI cost of this report" in done


def test_it_shows_why_generation_failed(viewer_client, reviewer, report_data, enqueued):
    report = services.report_request(actor=reviewer, release_candidate="RC-3")
    Report.objects.filter(pk=report.pk).update(
        status="failed", error_code="report_generation_failed", error_message="The report could not be generated."
    )
    body = viewer_client.get(f"/reports/{report.pk}/").content.decode()
    assert 'data-code="report_generation_failed"' in body and "hx-trigger" not in body


def test_it_answers_404_for_unknown_reports(viewer_client, db):
    assert viewer_client.get("/reports/0123456789abcdef01234567/").status_code == 404
    assert viewer_client.get("/reports/nope/").status_code == 404
    assert viewer_client.get("/reports/nope/", **HTMX).status_code == 404


def test_it_lets_admins_delete_from_the_page(client, admin_user, reviewer, report_data, generate):
    report = generate(reviewer, report_data.rc3)
    client.force_login(reviewer)
    assert "Delete report" not in client.get(f"/reports/{report.pk}/").content.decode()
    assert client.post(f"/reports/{report.pk}/delete/").status_code == 403
    assert Report.objects.filter(pk=report.pk).exists()

    client.force_login(admin_user)
    assert "Delete report" in client.get(f"/reports/{report.pk}/").content.decode()
    response = client.post(f"/reports/{report.pk}/delete/")
    assert response.status_code == 302 and response["Location"] == "/reports/"
    assert not Report.objects.filter(pk=report.pk).exists()
    assert [e.outcome for e in AuditEvent.objects.filter(action="report.delete").order_by("sequence")] == [
        "denied",
        "success",
    ]


def test_it_links_the_page_from_the_navigation(viewer_client, db):
    assert b'href="/reports/"' in viewer_client.get("/").content


def test_a_filter_naming_no_rc_says_so_instead_of_filtering_silently(viewer_client, reviewer, report_data):
    Report.objects.create(release_candidate=report_data.rc3, release_candidate_name="RC-3", generated_by=reviewer)
    for unknown in ("5f00000000000000000000aa", "not-an-id"):
        response = viewer_client.get("/reports/", {"release_candidate": unknown})
        html = response.content.decode()
        assert response.status_code == 200
        assert 'role="alert"' in html and "Release candidate: Select a valid choice" in html, unknown
        assert "The list below is not filtered." in html and "RC-3" in html
    assert 'role="alert"' not in viewer_client.get("/reports/").content.decode()
