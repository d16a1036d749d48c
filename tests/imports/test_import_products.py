"""The CSV import creates RCs in the file's product, refuses an RC under two products, and moves coverage."""

from __future__ import annotations

import pytest

from imports.models import ImportJob
from releases import selectors, services
from releases.models import ReleaseCandidate, TestRun
from tests.imports.conftest import case_row, csv_bytes, db_snapshot

pytestmark = pytest.mark.django_db


def test_it_creates_the_rcs_of_a_file_in_its_rows_product(upload, run_job):
    data = csv_bytes([case_row(1, rc="shop-9"), case_row(2, rc="shop-9"), case_row(3, rc="")])
    job, _ = run_job(upload(data))
    assert job.status == ImportJob.Status.SUCCEEDED, job.failure_message
    rc = ReleaseCandidate.objects.get(name="shop-9")
    assert rc.product == "Shop"
    # The imported cases count in scope (coverage), also the one without a run.
    totals = selectors.quality_summary(release_candidate=rc)["totals"]
    assert (totals["in_scope"], totals["executed"], totals["not_run"]) == (3, 2, 1)


def test_it_refuses_an_rc_named_under_two_products_or_of_another_product(upload, reviewer):
    before = db_snapshot()
    mixed = upload(csv_bytes([case_row(1, rc="rc-x"), case_row(2, rc="rc-x", product="App", suite="Sync")]))
    assert mixed.status == ImportJob.Status.INVALID
    assert [(error["code"], error["row"]) for error in mixed.errors] == [("rc_product_mismatch", 3)]
    services.release_candidate_create(name="app-1", product="App", actor=reviewer)
    other = upload(csv_bytes([case_row(1, rc="app-1")]))
    assert other.status == ImportJob.Status.INVALID
    assert [error["code"] for error in other.errors] == ["rc_product_mismatch"]
    assert "belongs to 'App'" in other.errors[0]["message"]
    after = db_snapshot()
    assert after["testRuns"] == before["testRuns"] and TestRun.objects.count() == 0
    assert after["testCases"] == before["testCases"]
