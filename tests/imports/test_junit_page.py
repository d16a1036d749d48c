"""The JUnit upload form on the imports page: full page, upload as a reviewer, refused to viewers."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from imports.models import ImportJob
from releases.models import TestRun
from tests.imports.junit_helpers import fixture_bytes

pytestmark = pytest.mark.django_db


def test_it_shows_the_form(reviewer_client):
    page = reviewer_client.get(reverse("imports:import_list")).content.decode()
    assert 'id="junit-upload-form"' in page and reverse("imports:junit_upload") in page


def test_it_uploads_several_reports_and_shows_the_job(reviewer_client):
    response = reviewer_client.post(
        reverse("imports:junit_upload"),
        {
            "file": [
                SimpleUploadedFile("a.xml", fixture_bytes("gradle.xml")),
                SimpleUploadedFile("b.xml", fixture_bytes("robot-xunit.xml")),
            ],
            "rc": "RC-7",
            "product": "Web",
        },
    )
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("imports:import_detail", args=[job.pk])
    assert job.status == ImportJob.Status.SUCCEEDED and TestRun.objects.count() == 8
    page = reviewer_client.get(response["Location"]).content.decode()
    assert 'data-status="succeeded"' in page and "Imported 8 rows" in page


def test_it_shows_a_coded_error_for_a_hostile_file(reviewer_client):
    response = reviewer_client.post(
        reverse("imports:junit_upload"),
        {
            "file": SimpleUploadedFile("a.xml", b'<!DOCTYPE x [<!ENTITY a "b">]><testsuite/>'),
            "rc": "RC-7",
            "product": "Web",
        },
    )
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.INVALID
    page = reviewer_client.get(response["Location"]).content.decode()
    assert "xml_dtd_forbidden" in page


def test_viewers_cannot_upload(viewer_client):
    response = viewer_client.post(
        reverse("imports:junit_upload"),
        {"file": SimpleUploadedFile("a.xml", fixture_bytes("gradle.xml")), "rc": "R", "product": "P"},
    )
    assert response.status_code == 403 and ImportJob.objects.count() == 0


def test_it_heads_a_junit_jobs_errors_with_file_and_line(reviewer_client):
    response = reviewer_client.post(
        reverse("imports:junit_upload"),
        {
            "file": SimpleUploadedFile("nightly.xml", b'<testsuite name="S">\n<testcase name="a">\n<failure>'),
            "rc": "RC-7",
            "product": "Web",
        },
    )
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.INVALID
    error = job.errors[0]
    assert error["column"] == "nightly.xml" and error["row"]
    page = reviewer_client.get(response["Location"]).content.decode()
    assert "<th>File</th><th>Line</th><th>Code</th>" in page and "<th>Row</th><th>Column</th>" not in page
    assert f"<tr><td>nightly.xml</td><td>{error['row']}</td><td><code>{error['code']}</code></td>" in page


def test_it_keeps_row_and_column_headings_for_csv_jobs(reviewer_client):
    reviewer_client.post(
        reverse("imports:import_list"), {"file": SimpleUploadedFile("cases.csv", b"product,suite\nShop,\n")}
    )
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.INVALID
    page = reviewer_client.get(reverse("imports:import_detail", args=[job.pk])).content.decode()
    assert "<th>Row</th><th>Column</th><th>Code</th>" in page and "<th>File</th><th>Line</th>" not in page


def test_it_shows_another_reviewers_same_upload_without_its_buttons(reviewer_client, make_user, settings, monkeypatch):
    from django.test import Client

    from imports import services

    settings.JUNIT_INLINE_MAX_TESTCASES = 2
    queued = []
    monkeypatch.setattr(services, "import_job_enqueue", queued.append)
    data = {"rc": "RC-7", "product": "Web"}
    first = reviewer_client.post(
        reverse("imports:junit_upload"), {"file": SimpleUploadedFile("a.xml", fixture_bytes("gradle.xml")), **data}
    )
    other = Client()
    other.force_login(make_user("reviewer"))
    again = other.post(
        reverse("imports:junit_upload"), {"file": SimpleUploadedFile("b.xml", fixture_bytes("gradle.xml")), **data}
    )
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.QUEUED and len(queued) == 1
    assert again["Location"] == first["Location"] == reverse("imports:import_detail", args=[job.pk])
    assert 'id="import-cancel"' in reviewer_client.get(first["Location"]).content.decode()
    page = other.get(again["Location"]).content.decode()
    assert 'data-status="queued"' in page and 'id="import-cancel"' not in page
