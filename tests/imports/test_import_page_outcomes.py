"""The import page says what happened, lists every problem of a row at once and marks the bad cells in the
preview (issue 15)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from imports import services
from imports.models import ImportJob
from tests.imports.conftest import case_row, csv_bytes, valid_file

pytestmark = pytest.mark.django_db


def test_it_reports_every_problem_of_a_row_at_once_unknown_executed_by_included(upload):
    data = csv_bytes(
        [
            case_row(1, status="maybe", executed_by="ghost@example.com"),
            case_row(2),
            case_row(3, priority="9", executed_by="ghost@example.com"),
        ]
    )
    job = upload(data)
    assert job.status == "invalid"
    problems = {(error["row"], error["column"], error["code"]) for error in job.errors}
    assert problems == {
        (2, "status", "invalid_status"),
        (2, "executed_by", "unknown_user"),
        (4, "priority", "invalid_priority"),
        (4, "executed_by", "unknown_user"),
    }
    assert job.error_count == 4 and [error["row"] for error in job.errors] == [2, 2, 4, 4]


def test_it_marks_the_bad_cells_in_the_preview(reviewer_client):
    data = csv_bytes([case_row(1), case_row(2, status="maybe")])
    response = reviewer_client.post(reverse("imports:import_list"), {"file": SimpleUploadedFile("x.csv", data)})
    page = reviewer_client.get(response["Location"]).content.decode()
    preview = page[page.index('class="import-preview"') :]
    rows = preview.split("<tr")
    bad_row = next(row for row in rows if "CASE-00002" in row)
    good_row = next(row for row in rows if "CASE-00001" in row)
    assert '<td class="cell-error">maybe<span class="cell-problem">' in bad_row
    assert "cell-error" not in good_row
    assert 'class="table-scroll"' in page  # the wide preview scrolls inside its box


def test_it_states_previewed_then_imported_with_counts_never_dry_run(reviewer_client, monkeypatch):
    monkeypatch.setattr(services, "import_job_enqueue", lambda job_id: None)
    response = reviewer_client.post(
        reverse("imports:import_list"), {"file": SimpleUploadedFile("x.csv", valid_file(3))}
    )
    job = ImportJob.objects.get()
    page = reviewer_client.get(response["Location"]).content.decode()
    assert "Previewed: nothing is imported until you confirm." in page
    assert 'id="import-confirm" class="primary"' in page and 'class="secondary" id="import-cancel"' in page
    reviewer_client.post(reverse("imports:import_confirm", args=[job.pk]), HTTP_HX_REQUEST="true")
    services.import_job_process(job_id=str(job.pk), worker="w")
    done = reviewer_client.get(reverse("imports:import_detail", args=[job.pk])).content.decode()
    assert "Imported 3 rows." in done and "3 created, 0 updated" in done and "dry run" not in done


def test_it_states_that_a_cancelled_import_imported_nothing(reviewer_client):
    response = reviewer_client.post(
        reverse("imports:import_list"), {"file": SimpleUploadedFile("x.csv", valid_file(2))}
    )
    job = ImportJob.objects.get()
    reviewer_client.post(reverse("imports:import_cancel", args=[job.pk]))
    page = reviewer_client.get(response["Location"]).content.decode()
    assert "Cancelled: nothing was imported." in page
