"""Upload -> preview -> confirm -> process, idempotent re-import, natural keys, is_latest and summaries."""

from __future__ import annotations

import pytest

from imports.models import ImportJob
from releases import rules
from releases.models import ReleaseCandidate, TestCase, TestRun
from tests.imports.conftest import case_row, csv_bytes, db_snapshot, valid_file

pytestmark = pytest.mark.django_db


def test_it_previews_without_writing_then_imports_on_confirm(upload, run_job):
    job = upload(valid_file(3))
    assert job.status == ImportJob.Status.PREVIEWED
    assert job.total == 3 and job.error_count == 0
    assert job.preview[0][2] == "CASE-00001"
    assert [column["field"] for column in job.mapping][:3] == ["product", "suite", "key"]
    assert TestCase.objects.count() == 0 and TestRun.objects.count() == 0
    job, outcome = run_job(job)
    assert outcome.retry_in is None
    assert job.status == ImportJob.Status.SUCCEEDED and job.processed == 3 and job.percent == 100
    assert job.result["cases_created"] == 3 and job.result["runs_created"] == 3
    assert TestCase.objects.count() == 3
    assert TestRun.objects.filter(is_latest=True).count() == 3
    # Each run carries its case's key (the status pages' key order).
    assert all(run.case_key == run.case.key for run in TestRun.objects.select_related("case"))
    # A new RC goes after the newest one (the rule lives in releases.rules).
    assert ReleaseCandidate.objects.get(name="RC-1").sequence == rules.next_rc_sequence(None)


def test_it_reimports_the_same_file_without_duplicates(upload, run_job):
    data = valid_file(5)
    run_job(upload(data))
    before = db_snapshot()
    job, _ = run_job(upload(data))
    assert job.status == ImportJob.Status.SUCCEEDED
    assert job.result["cases_unchanged"] == 5 and job.result["runs_unchanged"] == 5
    assert job.result["cases_created"] == 0 and job.result["runs_created"] == 0
    assert db_snapshot() == before


def test_it_updates_cases_by_natural_key_and_keeps_is_latest(upload, run_job):
    run_job(upload(valid_file(2, day=1)))
    changed = csv_bytes([case_row(1, day=2, status="fail", title="Renamed"), case_row(2, day=1)])
    job, _ = run_job(upload(changed))
    assert job.result["cases_updated"] == 1 and job.result["runs_created"] == 1
    case = TestCase.objects.get(key="CASE-00001")
    assert case.title == "Renamed"
    runs = TestRun.objects.filter(case=case).order_by("executed_at")
    assert [(run.status, run.is_latest) for run in runs] == [("pass", False), ("fail", True)]
    # An older run imported later does not take the latest flag.
    job, _ = run_job(upload(csv_bytes([case_row(1, day=1, status="pending", title="Renamed")])))
    latest = TestRun.objects.get(case=case, is_latest=True)
    assert latest.status == "fail"


def test_it_creates_missing_release_candidates_with_the_next_sequence(upload, run_job):
    ReleaseCandidate.objects.create(name="RC-7", sequence=7)
    data = csv_bytes([case_row(1, rc="RC-9"), case_row(2, rc="RC-8")])
    run_job(upload(data))
    nine = rules.next_rc_sequence(7)
    assert dict(ReleaseCandidate.objects.values_list("name", "sequence")) == {
        "RC-7": 7,
        "RC-9": nine,
        "RC-8": rules.next_rc_sequence(nine),
    }
