"""The imports pages: upload -> preview page, htmx progress partial, confirm/cancel, roles, size limit."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from imports import services
from imports.models import ImportJob
from tests.imports.conftest import case_row, csv_bytes, valid_file

pytestmark = pytest.mark.django_db


def test_it_shows_the_upload_page_to_reviewers_only(client, reviewer_client, make_user):
    page = reviewer_client.get(reverse("imports:import_list"))
    assert page.status_code == 200
    assert b'enctype="multipart/form-data"' in page.content and b"template.csv" in page.content
    assert b"Export all cases" not in page.content
    viewer = make_user("viewer")
    client.force_login(viewer)
    assert client.get(reverse("imports:import_list")).status_code == 403
    client.logout()
    assert client.get(reverse("imports:import_list")).status_code == 302


def test_it_shows_exports_to_admins(admin_client):
    page = admin_client.get(reverse("imports:import_list"))
    assert b"Export all cases" in page.content


def test_it_uploads_and_shows_the_preview_with_errors(reviewer_client):
    data = csv_bytes([case_row(1), case_row(2, status="maybe")])
    response = reviewer_client.post(reverse("imports:import_list"), {"file": SimpleUploadedFile("x.csv", data)})
    assert response.status_code == 302
    page = reviewer_client.get(response["Location"]).content.decode()
    assert "invalid_status" in page and "Row" in page and "Confirm import" not in page
    assert "CASE-00001" in page  # the preview rows
    assert ImportJob.objects.get().status == "invalid"


def test_it_confirms_through_htmx_and_renders_the_progress_partial(reviewer_client, monkeypatch):
    monkeypatch.setattr(services, "import_job_enqueue", lambda job_id: None)
    response = reviewer_client.post(
        reverse("imports:import_list"), {"file": SimpleUploadedFile("x.csv", valid_file(3))}
    )
    job = ImportJob.objects.get()
    page = reviewer_client.get(response["Location"]).content.decode()
    assert "Confirm import" in page and "<html" in page
    partial = reviewer_client.post(reverse("imports:import_confirm", args=[job.pk]), HTTP_HX_REQUEST="true")
    body = partial.content.decode()
    assert partial.status_code == 200 and "<html" not in body
    assert 'id="import-job"' in body and 'hx-trigger="every 1s"' in body and "<progress" in body
    services.import_job_process(job_id=str(job.pk), worker="w")
    done = reviewer_client.get(reverse("imports:import_detail", args=[job.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert 'value="100"' in done and "hx-trigger" not in done and "Imported." in done


def test_it_cancels_from_the_page(reviewer_client):
    reviewer_client.post(reverse("imports:import_list"), {"file": SimpleUploadedFile("x.csv", valid_file(2))})
    job = ImportJob.objects.get()
    response = reviewer_client.post(reverse("imports:import_cancel", args=[job.pk]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == "cancelled"


def test_it_refuses_an_oversized_upload_on_the_page(settings, reviewer_client):
    settings.CSV_MAX_UPLOAD_BYTES = 100
    response = reviewer_client.post(
        reverse("imports:import_list"), {"file": SimpleUploadedFile("x.csv", valid_file(3))}
    )
    assert response.status_code == 413
    assert ImportJob.objects.count() == 0


def test_it_returns_404_for_unknown_or_foreign_jobs(reviewer_client, make_user, upload):
    assert reviewer_client.get(reverse("imports:import_detail", args=["0" * 24])).status_code == 404
    assert reviewer_client.get(reverse("imports:import_detail", args=["zzz"])).status_code == 404
    job = upload(valid_file(1), user=make_user("reviewer"))
    assert reviewer_client.get(reverse("imports:import_detail", args=[job.pk])).status_code == 404


def test_it_lists_jobs_read_only_in_the_django_admin(admin_client, upload):
    job = upload(valid_file(1))
    page = admin_client.get(reverse("admin:imports_importjob_changelist"))
    assert page.status_code == 200 and job.filename in page.content.decode()
    assert admin_client.get(reverse("admin:imports_importjob_add")).status_code == 403


def test_it_confirms_a_waiting_duplicate_when_uploaded_again_without_dry_run(reviewer_client, monkeypatch):
    sent = []
    monkeypatch.setattr(services, "import_job_enqueue", lambda job_id: sent.append(str(job_id)))
    first = reviewer_client.post(
        "/api/v1/imports/csv", {"file": SimpleUploadedFile("a.csv", valid_file(2)), "dry_run": "1"}
    )
    assert first.json()["status"] == "previewed"
    second = reviewer_client.post("/api/v1/imports/csv", {"file": SimpleUploadedFile("a.csv", valid_file(2))})
    assert second.json()["id"] == first.json()["id"] and second.json()["status"] == "queued"
    assert sent == [first.json()["id"]]
