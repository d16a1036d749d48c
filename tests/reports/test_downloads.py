"""Signed download links: 5-minute expiry, bound to the user, tamper-proof, served as attachments, audited."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def ready_report(report_data, reviewer, generate):
    with time_machine.travel(START - dt.timedelta(minutes=1), tick=False):
        return generate(reviewer, report_data.rc3, suite=report_data.suite)


def _link(client, report, fmt="pdf") -> str:
    response = client.get(f"/reports/{report.pk}/download/{fmt}/")
    assert response.status_code == 302
    return response["Location"]


def _downloads(outcome: str) -> int:
    return AuditEvent.objects.filter(action="report.download", outcome=outcome).count()


def test_it_serves_the_pdf_as_an_attachment_that_is_never_cached(viewer_client, viewer, ready_report):
    with time_machine.travel(START, tick=False):
        url = _link(viewer_client, ready_report)
        response = viewer_client.get(url)

    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert body.startswith(b"%PDF-") and len(body) == ready_report.pdf_size
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment;")
    assert 'filename="report-rc-3-checkout-b-payb-unicode.pdf"' in response["Content-Disposition"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response["Cache-Control"]
    event = AuditEvent.objects.get(action="report.download")
    assert event.outcome == "success" and event.actor_id == str(viewer.pk)
    assert event.resource == f"report:{ready_report.pk}" and event.metadata["format"] == "pdf"


def test_it_serves_the_docx_too(viewer_client, ready_report):
    with time_machine.travel(START, tick=False):
        response = viewer_client.get(_link(viewer_client, ready_report, "docx"))
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"PK")  # a zip container: Office Open XML
    assert response["Content-Type"].startswith("application/vnd.openxmlformats-officedocument.wordprocessingml")


def test_it_expires_links_after_five_minutes(viewer_client, ready_report):
    with time_machine.travel(START, tick=False) as traveller:
        url = _link(viewer_client, ready_report)
        traveller.shift(dt.timedelta(minutes=4, seconds=59))
        assert viewer_client.get(url).status_code == 200
        traveller.shift(dt.timedelta(seconds=2))
        response = viewer_client.get(url)

    assert response.status_code == 403 and b"report_link_expired" in response.content
    assert _downloads("success") == 1 and _downloads("denied") == 1


def test_it_binds_links_to_the_user_they_were_made_for(viewer_client, make_user, ready_report, client):
    with time_machine.travel(START, tick=False):
        url = _link(viewer_client, ready_report)
        other = make_user("admin")
        client.force_login(other)
        response = client.get(url)

    assert response.status_code == 403 and b"report_link_not_yours" in response.content
    event = AuditEvent.objects.get(action="report.download")
    assert event.outcome == "denied" and event.actor_id == str(other.pk)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),  # signature changed
        lambda token: token.replace(token.split(":")[0], token.split(":")[0][:-2] + "xx", 1),  # payload edited
        lambda token: "eyJyIjoiMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3In0:1vNf3a:forged",
    ],
)
def test_it_refuses_tampered_links(viewer_client, ready_report, tamper):
    with time_machine.travel(START, tick=False):
        url = _link(viewer_client, ready_report)
        token = url.rstrip("/").rsplit("/", 1)[1]
        response = viewer_client.get(f"/reports/file/{tamper(token)}/")

    assert response.status_code == 403 and b"report_link_invalid" in response.content
    assert _downloads("denied") == 1 and _downloads("success") == 0


def test_it_sends_anonymous_visitors_to_the_login_page(viewer_client, ready_report, client):
    with time_machine.travel(START, tick=False):
        url = _link(viewer_client, ready_report)
        client.logout()
        response = client.get(url)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert AuditEvent.objects.filter(action="report.download").count() == 0


def test_it_refuses_unknown_formats_and_deleted_reports(viewer_client, admin_user, ready_report):
    from reports import services

    with time_machine.travel(START, tick=False):
        assert viewer_client.get(f"/reports/{ready_report.pk}/download/exe/").status_code == 404
        url = _link(viewer_client, ready_report)
        services.report_delete(report=ready_report, actor=admin_user)
        response = viewer_client.get(url)
    assert response.status_code == 404 and b"report_not_found" in response.content
