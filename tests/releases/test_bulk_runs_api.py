"""POST /api/v1/runs/bulk: many runs of an RC by case id or natural key, all or nothing, one audit event, the same
validation as single runs; accepted with a CI token."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts import services as account_services
from audit.models import AuditEvent
from releases.models import QualitySummary, TestRun

pytestmark = pytest.mark.django_db

URL = "/api/v1/runs/bulk"


def _post(client, payload):
    return client.post(URL, payload, content_type="application/json")


def test_it_records_runs_by_id_and_natural_key(reviewer_client, make_case, make_rc):
    first, second = make_case(), make_case()
    rc = make_rc()
    response = _post(
        reviewer_client,
        {
            "rc": rc.name,
            "runs": [
                {"case": str(first.pk), "status": "pass", "duration_ms": 120},
                {
                    "product": "Web Shop",
                    "suite": "Checkout",
                    "key": second.key,
                    "status": "fail",
                    "failure_type": "AssertionError",
                    "failure_message": "expected 3 got 4 for user 77",
                },
            ],
        },
    )
    assert response.status_code == 201, response.content
    assert response.json()["recorded"] == 2
    failed = TestRun.objects.get(case=second)
    assert failed.failure_signature == "AssertionError: expected <n> got <n> for user <n>"
    assert TestRun.objects.get(case=first).duration_ms == 120
    assert AuditEvent.objects.filter(action="run.bulk_record").count() == 1
    totals = QualitySummary.objects.filter(release_candidate=rc, dimension="all").first()
    assert (totals.pass_count, totals.fail_count) == (1, 1)


def test_it_records_nothing_when_one_run_is_invalid(reviewer_client, make_case, make_rc):
    case = make_case()
    rc = make_rc()
    response = _post(
        reviewer_client,
        {
            "rc": rc.name,
            "runs": [
                {"case": str(case.pk), "status": "pass"},
                {"case": str(case.pk), "status": "pass", "mantis_ids": ["abc"]},
                {"product": "Web Shop", "suite": "Checkout", "key": "NOPE-1", "status": "pass"},
            ],
        },
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "case_not_found"
    assert set(error["fields"]) == {"runs.1.mantis_ids", "runs.2.case"}
    assert TestRun.objects.count() == 0
    assert AuditEvent.objects.filter(action="run.bulk_record").count() == 0


def test_it_refuses_more_runs_than_the_limit(reviewer_client, make_case, make_rc, settings):
    settings.BULK_RUNS_MAX = 2
    case = make_case()
    response = _post(reviewer_client, {"rc": make_rc().name, "runs": [{"case": str(case.pk), "status": "pass"}] * 3})
    assert response.status_code == 400 and response.json()["error"]["code"] == "bulk_too_large"
    assert TestRun.objects.count() == 0


def test_it_refuses_a_case_of_another_product(reviewer_client, make_case, make_rc):
    case = make_case()
    response = _post(
        reviewer_client, {"rc": make_rc(product="Mobile").name, "runs": [{"case": str(case.pk), "status": "pass"}]}
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "rc_product_mismatch"
    assert TestRun.objects.count() == 0


def test_it_accepts_a_ci_token_and_refuses_viewers(reviewer, viewer_client, make_case, make_rc):
    case, rc = make_case(), make_rc()
    payload = {"rc": rc.name, "runs": [{"case": str(case.pk), "status": "pass", "flaky": True}]}
    assert _post(viewer_client, payload).status_code == 403
    _token, text = account_services.api_token_create(actor=reviewer, name="scripts")
    response = _post(Client(HTTP_AUTHORIZATION=f"Bearer {text}"), payload)
    assert response.status_code == 201
    assert TestRun.objects.get().flaky is True
