"""POST /api/v1/reports and GET /api/v1/reports/{id}: job id and status URL, coded errors, roles, audit."""

from __future__ import annotations

import pytest
from kombu.exceptions import OperationalError

from audit.models import AuditEvent
from reports import services
from reports.models import Report
from reports.tasks import report_generate_task

pytestmark = pytest.mark.django_db


def _post(client, **body):
    return client.post("/api/v1/reports", body, content_type="application/json")


def test_it_queues_a_report_and_returns_its_status_url(reviewer_client, reviewer, report_data, enqueued):
    response = _post(
        reviewer_client, release_candidate="RC-3", suite=str(report_data.suite.pk), baseline=str(report_data.rc1.pk)
    )

    assert response.status_code == 202
    body = response.json()
    report = Report.objects.get()
    assert body["id"] == str(report.pk) and body["status"] == "queued" and body["progress"] == 0
    assert body["status_url"] == f"/api/v1/reports/{report.pk}"
    assert enqueued == [str(report.pk)]
    assert (report.release_candidate_name, report.suite_name, report.baseline_name) == (
        "RC-3",
        report.suite.name,
        "RC-1",
    )
    assert report.generated_by == reviewer
    event = AuditEvent.objects.get(action="report.generate")
    assert event.outcome == "success" and event.resource == f"report:{report.pk}" and event.actor_id == str(reviewer.pk)

    status = reviewer_client.get(body["status_url"]).json()
    assert status["status"] == "queued" and status["downloads"] is None and status["suite"] == report.suite.name


def test_it_reports_progress_then_the_summary_and_links(reviewer_client, report_data, enqueued, media_root):
    report_id = _post(reviewer_client, release_candidate=str(report_data.rc3.pk)).json()["id"]
    services.report_generate(report_id=report_id)

    body = reviewer_client.get(f"/api/v1/reports/{report_id}").json()
    assert body["status"] == "ready" and body["progress"] == 100 and body["suite"] is None
    assert body["figures"]["totals"]["total"] == 7
    assert body["summary"] and body["summary_source"] == "ai"
    assert set(body["downloads"]) == {"pdf", "docx"}
    assert body["downloads"]["pdf"].startswith("/reports/file/")
    listing = reviewer_client.get("/api/v1/reports?status=ready").json()
    assert [item["id"] for item in listing["items"]] == [report_id]


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"release_candidate": "RC-404"}, "report_unknown_release_candidate", "release_candidate"),
        ({"release_candidate": "RC-3", "suite": "0123456789abcdef01234567"}, "report_unknown_suite", "suite"),
        ({"release_candidate": "RC-3", "suite": "<b>nope</b>"}, "report_unknown_suite", "suite"),
        ({"release_candidate": "RC-3", "baseline": "RC-99"}, "report_unknown_baseline", "baseline"),
        ({"release_candidate": "RC-3", "baseline": "RC-3"}, "report_baseline_same", "baseline"),
        ({"release_candidate": "RC-4"}, "report_no_runs", "release_candidate"),
        ({"release_candidate": ""}, "validation_failed", "release_candidate"),
        ({"release_candidate": "x" * 65}, "validation_failed", "release_candidate"),
    ],
)
def test_it_refuses_bad_input_with_a_code_and_stores_nothing(reviewer_client, report_data, enqueued, body, code, field):
    response = _post(reviewer_client, **body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code and field in error["fields"]
    assert Report.objects.count() == 0 and enqueued == []
    assert not AuditEvent.objects.filter(action="report.generate").exists()


def test_it_refuses_an_rc_without_runs_in_the_chosen_suite(reviewer_client, report_data, enqueued):
    from releases.models import TestSuite

    empty_suite = TestSuite.objects.create(name="Nothing here", product="Shop")
    response = _post(reviewer_client, release_candidate="RC-3", suite=str(empty_suite.pk))

    assert response.status_code == 400 and response.json()["error"]["code"] == "report_no_runs"
    assert Report.objects.count() == 0


def test_it_lets_viewers_read_but_not_generate(viewer_client, viewer, report_data, enqueued):
    response = _post(viewer_client, release_candidate="RC-3")

    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert Report.objects.count() == 0 and enqueued == []
    event = AuditEvent.objects.get(action="report.generate")
    assert event.outcome == "denied" and event.actor_id == str(viewer.pk)
    assert viewer_client.get("/api/v1/reports").status_code == 200


def test_it_requires_a_login(client, report_data):
    assert _post(client, release_candidate="RC-3").status_code in (401, 403)
    assert client.get("/api/v1/reports").status_code == 401
    assert Report.objects.count() == 0


def test_it_answers_404_for_unknown_or_malformed_ids(viewer_client, db):
    for report_id in ("0123456789abcdef01234567", "not-an-id", "<script>"):
        response = viewer_client.get(f"/api/v1/reports/{report_id}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "report_not_found"


def test_it_fails_the_job_cleanly_when_the_queue_is_down(reviewer_client, report_data, monkeypatch):
    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6389. Connection refused.")

    monkeypatch.setattr(report_generate_task, "apply_async", broker_down)
    response = _post(reviewer_client, release_candidate="RC-3")

    assert response.status_code == 503 and response.json()["error"]["code"] == "report_queue_unavailable"
    report = Report.objects.get()  # kept as a record of the attempt, never "accepted, then lost"
    assert report.status == "failed" and report.error_code == "report_queue_unavailable"
    event = AuditEvent.objects.get(action="report.generate")
    assert event.outcome == "failure"


def test_it_lets_only_admins_delete(reviewer_client, admin_user, report_data, generate, reviewer, client, media_root):
    report = generate(reviewer, report_data.rc3)
    files = [media_root / report.pdf_file.name, media_root / report.docx_file.name]

    response = reviewer_client.delete(f"/api/v1/reports/{report.pk}")
    assert response.status_code == 403
    assert Report.objects.filter(pk=report.pk).exists() and all(path.exists() for path in files)
    assert AuditEvent.objects.get(action="report.delete").outcome == "denied"

    client.force_login(admin_user)
    assert client.delete(f"/api/v1/reports/{report.pk}").status_code == 204
    assert not Report.objects.filter(pk=report.pk).exists() and not any(path.exists() for path in files)
    assert AuditEvent.objects.filter(action="report.delete", outcome="success").count() == 1
